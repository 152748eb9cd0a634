"""What the training doctor costs: epochs of the seed network with and without it, interleaved.

The doctor samples gradient norms and weight changes on about 25 steps per epoch and runs one
inference pass over its probe images at each epoch's end (engine.doctor). Each round trains one
epoch without it and one with it, the order flipping each round; the median of the per-round ratios
(with / without) is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from engine import load_dataset
from engine.doctor import TrainingDoctor
from engine.training import TrainConfig, prepare

SEED = Path(__file__).resolve().parents[1] / "assets" / "architectures" / "seed_sample.json"


def epoch_seconds(data, with_doctor: bool, processes: int) -> float:
    _model, trainer = prepare(SEED, data, TrainConfig(epochs=1, batch_size=64, processes=processes))
    doctor = TrainingDoctor(trainer) if with_doctor else None
    start = time.perf_counter()
    for event in trainer.run():
        if doctor is not None:
            doctor.observe(event)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--images", type=int, default=12000, help="training images per epoch (bundled subset)")
    parser.add_argument("--processes", type=int, default=1, choices=(1, 2))
    args = parser.parse_args()
    data = load_dataset("fashion-mnist-mini").subset(args.images, 100, seed=0)
    ratios = []
    for round_ in range(args.rounds):
        order = (False, True) if round_ % 2 == 0 else (True, False)
        times = {flag: epoch_seconds(data, flag, args.processes) for flag in order}
        ratios.append(times[True] / times[False])
        print(f"round {round_ + 1}: without {times[False]:.2f} s, with the doctor {times[True]:.2f} s, "
              f"ratio {ratios[-1]:.3f}")
    print(f"median ratio (with / without): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
