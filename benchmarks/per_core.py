"""Per-core training speed of the NumPy engine against PyTorch: one thread each, CPU time.

engine_vs_torch.py measures what a user gets from two cores (the engine's two processes against
PyTorch's two threads); its wall-clock ratio needs a quiet machine. This script answers a narrower
question that holds up under load: how fast is each side on one core? Both train the same network
(same weights, same batches) one step at a time on one thread, batch 32 by default (each of the
engine's two processes trains on half of a 64-image batch), and each step is timed in CPU time
(time.process_time), so other programs on the machine slow the figures far less than wall-clock
time. Rounds interleave (order flipping every round); it prints each side's median milliseconds
per step and the median of the per-round speed ratios (ours / PyTorch, above 1 = engine faster).

    python benchmarks/per_core.py                       # every network
    python benchmarks/per_core.py --nets resnet8 k5 --rounds 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import engine_vs_torch as bench  # noqa: E402  (the networks and both sides' runners)


def measure(name: str, args: argparse.Namespace, torch: Any) -> dict[str, list[float]]:
    """Milliseconds per training step of each side, one figure per round; torch None: ours only."""
    from engine.training import train_step

    architecture = bench.NETWORKS[name]()
    engine = bench.EngineRunner(architecture, 0.01, 0.9, processes=1)
    model = engine.model
    xs, ys = bench.make_batches(tuple(model.input_shape), args.batch, 64, model.output_shape[-1])
    sides: dict[str, Callable[[int], Any]] = {
        "ours": lambda i: train_step(model, engine.optimizer, xs[i % 64], ys[i % 64]),
    }
    if torch is not None:
        theirs = bench.TorchRunner(architecture, model.get_weights(), 0.01, 0.9)
        txs = [torch.from_numpy(x.transpose(0, 3, 1, 2).copy()) for x in xs]
        tys = [torch.from_numpy(y) for y in ys]
        sides["torch"] = lambda i: theirs.train_step(txs[i % 64], tys[i % 64])
    for i in range(2):
        for step in sides.values():
            step(i)
    times: dict[str, list[float]] = {side: [] for side in sides}
    k = 0
    for r in range(args.rounds):
        for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            start = time.process_time()
            for _ in range(args.steps):
                sides[side](k)
                k += 1
            times[side].append((time.process_time() - start) / args.steps * 1e3)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nets", nargs="+", default=list(bench.NETWORKS), choices=list(bench.NETWORKS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=3, help="steps per side per round")
    parser.add_argument("--no-torch", action="store_true", help="measure the engine alone")
    args = parser.parse_args(argv)

    from engine import parallel

    parallel.set_num_threads(1)
    torch = None if args.no_torch else bench.import_torch(1)
    print(f"one thread each, batch {args.batch}, CPU time per training step; {bench.load_average()}")
    for name in args.nets:
        times = measure(name, args, torch)
        line = f"{name:<8} ours {statistics.median(times['ours']):7.1f} ms"
        if "torch" in times:
            ratio = statistics.median(b / a for a, b in zip(times["ours"], times["torch"]))
            line += f"   torch {statistics.median(times['torch']):7.1f} ms   speed ratio ours/torch median {ratio:.2f}"
        print(line, flush=True)
    print(f"finished, {bench.load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
