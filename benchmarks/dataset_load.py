"""How long loading the bundled Fashion-MNIST subset takes (the studio loads it when it opens).

    python benchmarks/dataset_load.py [--rounds 5]

Prints each round and the median; the target is under one second.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.data import load_dataset  # noqa: E402

TARGET_SECONDS = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    seconds = []
    for r in range(args.rounds):
        start = time.perf_counter()
        load_dataset("fashion-mnist-mini")
        seconds.append(time.perf_counter() - start)
        print(f"  round {r + 1}: {seconds[-1]:.3f} s")
    median = statistics.median(seconds)
    print(f"fashion-mnist-mini loads in {median:.3f} s (median of {args.rounds})   target < {TARGET_SECONDS:.0f} s")
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
