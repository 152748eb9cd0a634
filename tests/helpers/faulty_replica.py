"""A replica process with a fault: ``python -m tests.helpers.faulty_replica step|exchange N`` serves
like engine.replica_process but raises inside its N-th training step, or at its N-th batch-norm
exchange of sums (counted over the process's life)."""

from __future__ import annotations

import itertools
import sys

from engine import replica_process


def main() -> None:
    where, nth = sys.argv[1], int(sys.argv[2])
    calls = itertools.count(1)
    if where == "step":
        step = replica_process.Replica.step

        def faulty_step(self, *args, **kwargs):
            if next(calls) == nth:
                raise RuntimeError(f"injected fault in step {nth}")
            return step(self, *args, **kwargs)

        replica_process.Replica.step = faulty_step
    else:
        exchange = replica_process.exchange

        def faulty_exchange(*args, **kwargs):
            if next(calls) == nth:
                raise RuntimeError(f"injected fault at exchange {nth}")
            return exchange(*args, **kwargs)

        replica_process.exchange = faulty_exchange
    replica_process.main()


if __name__ == "__main__":
    main()
