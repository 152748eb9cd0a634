"""The engine's speed with one of its optional kernel paths on and off, in one process.

Each network trains one step at a time on one thread, batch 32, timed in CPU time; rounds
alternate the path on and off (the order flipping every round) on the same model and batches,
and the script prints each setting's median milliseconds per step and the median of the paired
per-round ratios (off / on: above 1 = the path is faster). Pairing in one process keeps the
comparison honest on a shared, noisy machine, where two separate runs can differ by more than
the change measured.

Paths: ``spectral`` (convolutions through the Fourier transform, engine/kernels/spectral.py),
``winograd`` (wide 3x3 convolutions by Winograd's F(2x2, 3x3), engine/kernels/winograd.py) and
``stacks`` (tall products as stacks of short ones, engine/kernels/products.py).

    python benchmarks/paths_ab.py --path spectral --nets k5 k7
    python benchmarks/paths_ab.py --path winograd --nets wide256 vgg32
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_vs_torch as bench  # noqa: E402  (the networks)


def switch(path: str):
    """A function turning ``path`` on (True) or off (False)."""
    from engine.kernels import products, spectral, winograd

    module = {"spectral": spectral, "winograd": winograd, "stacks": products}[path]

    def turn(on: bool) -> None:
        module.enabled = on

    return turn


def measure(name: str, args: argparse.Namespace) -> dict[bool, list[float]]:
    """Milliseconds per training step with the path on and off, one figure per round each."""
    from engine import parallel
    from engine.training import train_step

    turn = switch(args.path)
    runner = bench.EngineRunner(bench.NETWORKS[name](), 0.01, 0.9, processes=1)
    model = runner.model
    xs, ys = bench.make_batches(tuple(model.input_shape), args.batch, 16, model.output_shape[-1])
    times: dict[bool, list[float]] = {True: [], False: []}
    k = 0
    with parallel.serial():
        for on in (True, False):  # warm up both paths (scratch arrays, transform matrices)
            turn(on)
            train_step(model, runner.optimizer, xs[0], ys[0])
        for r in range(args.rounds):
            for on in ((True, False) if r % 2 else (False, True)):
                turn(on)
                start = time.process_time()
                for _ in range(args.steps):
                    train_step(model, runner.optimizer, xs[k % 16], ys[k % 16])
                    k += 1
                times[on].append((time.process_time() - start) / args.steps * 1e3)
    turn(True)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", choices=["spectral", "winograd", "stacks"], required=True)
    parser.add_argument("--nets", nargs="+", default=["k5", "k7"], choices=list(bench.NETWORKS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3, help="steps per setting per round")
    args = parser.parse_args(argv)

    from engine import parallel

    parallel.set_num_threads(1)
    print(f"path '{args.path}' on and off, one thread, batch {args.batch}, CPU time per training step; "
          f"{bench.load_average()}")
    for name in args.nets:
        times = measure(name, args)
        ratio = statistics.median(off / on for on, off in zip(times[True], times[False]))
        print(f"{name:<8} on {statistics.median(times[True]):7.1f} ms   off {statistics.median(times[False]):7.1f} ms"
              f"   speed on/off median {ratio:.2f}", flush=True)
    print(f"finished, {bench.load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
