"""Whole training epochs of the seed network, the engine's and PyTorch's in turn.

    python benchmarks/epoch.py                      # 3 epochs each, full Fashion-MNIST when installed
    python benchmarks/epoch.py --dataset fashion-mnist-mini --epochs 2

Both start from the same weights and train with SGD (lr 0.01, momentum 0.9) at batch 64 on every
training image (no validation split), float32, with the same number of threads. The engine runs
through its real path: ``engine.training.Trainer`` drawing shuffled uint8 batches from
``engine.data.Dataset`` and normalising them per batch. PyTorch gets its fastest loop: the whole
normalised training set as one tensor, indexed by shuffled batches. The engine runs in a child
process (so that its peak RSS is its own) and the two alternate epoch by epoch, each after a
short rest. Printed per epoch: seconds each, the ratio (ours / PyTorch, below 1 means the engine
is faster) and test accuracy after the epoch; then the medians and the engine's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from engine_vs_torch import (  # noqa: E402
    import_torch,
    load_average,
    peak_rss_mb,
    processes_option,
    seed_network,
    set_engine_threads,
    torch_network,
)


def pick_dataset(name: str | None) -> str:
    """The full Fashion-MNIST when it is installed, else the bundled subset (or the given name)."""
    if name:
        return name
    from engine.data import known_datasets

    available = {info.name for info in known_datasets() if info.available}
    return "fashion-mnist" if "fashion-mnist" in available else "fashion-mnist-mini"


# -- the engine, in a child process driven over stdin/stdout ---------------------------------------------
def engine_child(args: argparse.Namespace) -> None:
    """Answers each "epoch" line with one JSON line: seconds of training, test accuracy."""
    from engine import replica
    from engine.data import load_dataset
    from engine.model import Model
    from engine.training import TrainConfig, Trainer, TrainingFinished

    set_engine_threads(args.threads)
    dataset = load_dataset(args.dataset)
    model = Model.from_architecture(seed_network(), seed=0)
    config = TrainConfig(epochs=1, batch_size=args.batch, optimizer="sgd", learning_rate=args.lr,
                         momentum=args.momentum, validation_split=0.0, seed=0, processes=args.processes)
    trainer = Trainer(model, dataset, config)
    print(json.dumps({"ready": True, "train_size": len(trainer.train_idx), "test_size": len(dataset.y_test),
                      "weights": {k: v.tolist() for k, v in model.get_weights().items()}}), flush=True)
    for line in sys.stdin:
        if line.strip() != "epoch":
            break
        start = time.perf_counter()
        finished = None
        for event in trainer.run(1):
            if isinstance(event, TrainingFinished):
                finished = event
        seconds = time.perf_counter() - start
        accuracy = trainer.evaluate("test").accuracy
        print(json.dumps({"seconds": seconds, "accuracy": accuracy, "reason": finished.reason,
                          "peak_rss_mb": peak_rss_mb(), "replica_rss_mb": replica.peak_rss_mb()}), flush=True)


class EngineProcess:
    def __init__(self, args: argparse.Namespace) -> None:
        command = [sys.executable, os.path.abspath(__file__), "--engine-child", "--dataset", args.dataset,
                   "--threads", str(args.threads), "--batch", str(args.batch), "--lr", str(args.lr),
                   "--momentum", str(args.momentum), "--processes", str(args.processes)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._reply()

    def _reply(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the engine process ended (exit code {self.process.wait()})")
        return json.loads(line)

    def epoch(self) -> dict[str, Any]:
        self.process.stdin.write("epoch\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


# -- PyTorch, in this process -----------------------------------------------------------------------------
class TorchTrainer:
    def __init__(self, args: argparse.Namespace, weights: dict[str, np.ndarray]) -> None:
        import torch

        from engine.data import load_dataset

        self.torch = torch
        dataset = load_dataset(args.dataset)
        to_nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))  # noqa: E731
        self.x_train = to_nchw(dataset.normalized("train"))
        self.y_train = torch.from_numpy(dataset.y_train.astype(np.int64))
        self.x_test = to_nchw(dataset.normalized("test"))
        self.y_test = torch.from_numpy(dataset.y_test.astype(np.int64))
        self.net = torch_network(seed_network(), weights)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=args.lr, momentum=args.momentum)
        self.loss = torch.nn.CrossEntropyLoss()
        self.batch = args.batch
        self.generator = torch.Generator().manual_seed(0)

    def epoch(self) -> dict[str, Any]:
        torch = self.torch
        start = time.perf_counter()
        self.net.train()
        order = torch.randperm(len(self.x_train), generator=self.generator)
        for i in range(0, len(order), self.batch):
            rows = order[i : i + self.batch]
            self.optimizer.zero_grad(set_to_none=True)
            self.loss(self.net(self.x_train[rows]), self.y_train[rows]).backward()
            self.optimizer.step()
        seconds = time.perf_counter() - start
        self.net.eval()
        with torch.inference_mode():
            predictions = torch.cat([self.net(self.x_test[i : i + 256]).argmax(1)
                                     for i in range(0, len(self.x_test), 256)])
        return {"seconds": seconds, "accuracy": float((predictions == self.y_test).float().mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=None, help="dataset name or path (default: the full Fashion-MNIST "
                                                        "when installed, else fashion-mnist-mini)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="threads for both the engine and PyTorch")
    parser.add_argument("--processes", type=processes_option, default="auto",
                        help="processes per engine training step: 1, 2 or auto (default, as the CLI and studio)")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of rest before each epoch")
    parser.add_argument("--no-torch", action="store_true", help="time the engine alone")
    parser.add_argument("--engine-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.dataset = pick_dataset(args.dataset)
    if args.engine_child:
        engine_child(args)
        return 0

    torch_side = None
    engine = EngineProcess(args)
    print(f"{args.dataset}: {engine.hello['train_size']} training and {engine.hello['test_size']} test images; "
          f"seed network, batch {args.batch}, SGD lr {args.lr} momentum {args.momentum}, float32; {load_average()}")
    torch = None if args.no_torch else import_torch(args.threads)
    if torch is not None:
        weights = {k: np.asarray(v, np.float32) for k, v in engine.hello["weights"].items()}
        torch_side = TorchTrainer(args, weights)
        print(f"engine: {args.threads} worker threads (in a child process); torch {torch.__version__}: "
              f"{torch.get_num_threads()} threads; both start from the same weights")
    ours_seconds, theirs_seconds, ratios = [], [], []
    result: dict[str, Any] = {}
    try:
        for epoch in range(1, args.epochs + 1):
            time.sleep(args.pause)
            result = engine.epoch()
            ours_seconds.append(result["seconds"])
            line = f"epoch {epoch}: ours {result['seconds']:6.2f} s (test accuracy {result['accuracy']:.4f})"
            if torch_side is not None:
                time.sleep(args.pause)
                theirs = torch_side.epoch()
                theirs_seconds.append(theirs["seconds"])
                ratios.append(result["seconds"] / theirs["seconds"])
                line += (f"   torch {theirs['seconds']:6.2f} s (test accuracy {theirs['accuracy']:.4f})   "
                         f"time ratio ours/torch {ratios[-1]:.2f}")
            print(line, flush=True)
    finally:
        engine.close()
    summary = f"median seconds per epoch: ours {statistics.median(ours_seconds):.2f}"
    if ratios:
        summary += (f", torch {statistics.median(theirs_seconds):.2f}; median time ratio ours/torch "
                    f"{statistics.median(ratios):.2f}")
    print(summary)
    own, other = result.get("peak_rss_mb", float("nan")), result.get("replica_rss_mb")
    memory = f"{own:.0f} MB" + (f" + {other:.0f} MB its replica process = {own + other:.0f} MB" if other else "")
    print(f"engine peak RSS (its own process): {memory}; {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
