"""The PyTorch training project: ``model.py``, ``train.py``, a README and the weights to start from.

``train.py`` is ``torch_train_template.py`` with its settings block filled in: the training settings
(a ``TrainConfig``), and the tensors of frozen layers. ``weights.npz`` holds the exported weights,
``initial.npz`` the engine's own initialisation with the settings' seed (``--from-scratch``).
Generating needs no PyTorch; running the result does.
"""

from __future__ import annotations

import pprint
from pathlib import Path
from typing import Any

import numpy as np

from engine.export.formats import ExportError
from engine.model import Model

TEMPLATE = Path(__file__).with_name("torch_train_template.py")
README_NAME = "README.md"
INITIAL_WEIGHTS = "initial.npz"


def frozen_tensors(model: Model) -> list[str]:
    """Parameter names ("<layer>.<param>") of the layers whose document says ``"trainable": false``."""
    specs = model.architecture.get("layers", [])
    names = []
    for spec, name, layer in zip(specs, model.names, model.layers):
        if isinstance(spec, dict) and spec.get("trainable") is False:
            names += [f"{name}.{key}" for key in layer.params]
    return names


def settings_block(settings: dict[str, Any], frozen: list[str]) -> str:
    lines = [
        "SETTINGS: dict = " + pprint.pformat(settings, width=100, sort_dicts=False),
        '# Engine tensors of the layers frozen in CNN Studio ("trainable": false): they are not updated.',
        "FROZEN: list[str] = " + pprint.pformat(frozen, width=100),
    ]
    return "\n".join(lines) + "\n"


def generate_train_script(settings: dict[str, Any], frozen: list[str]) -> str:
    text = TEMPLATE.read_text(encoding="utf-8")
    begin, end = "# --- generated settings: begin\n", "# --- generated settings: end\n"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ExportError(f"{TEMPLATE}: the training template has lost its settings markers")
    return text[: start + len(begin)] + settings_block(settings, frozen) + text[stop:]


def initial_weights(model: Model, seed: int) -> dict[str, np.ndarray]:
    """The engine's fresh initialisation of the same architecture with ``seed`` (He or Glorot)."""
    return Model(model.architecture, seed=seed, dtype=np.float32).get_weights()


def generate_readme(model: Model, settings: dict[str, Any], frozen: list[str]) -> str:
    rows = "\n".join(f"| `{key}` | `{value!r}` |" for key, value in settings.items())
    h, w, c = model.input_shape
    frozen_text = (f"{len(frozen)} tensors of frozen layers are not updated (`FROZEN` in `train.py`); frozen "
                   "batch norms keep their running statistics." if frozen else "Every layer is trained.")
    return f"""# Training this network with PyTorch

Exported by CNN Studio: the network ({len(model.layers)} layers, input {h}x{w}x{c}, output
{'x'.join(map(str, model.output_shape))}) and the settings it was trained with, ready for a bigger
machine or several of them.

| file | what it is |
| --- | --- |
| `model.py` | the network as a PyTorch `nn.Module` (`Net`), with loaders for CNN Studio's weight files |
| `train.py` | the training script: needs only `torch` and `numpy` (and Pillow for folders of image files) |
| `weights.npz` | the exported weights, where training starts by default |
| `{INITIAL_WEIGHTS}` | the engine's own initialisation (seed {settings.get('seed', 0)}), for `--from-scratch` |

## Run it

```bash
python train.py --data DATA                          # one process: a GPU if there is one, else the CPU
torchrun --nproc_per_node=4 train.py --data DATA     # 4 processes on this machine (DistributedDataParallel)
```

On several machines, start the same command on each with torchrun's rendezvous options, e.g. for two
machines with 8 GPUs each:

```bash
torchrun --nnodes=2 --nproc_per_node=8 --rdzv_id=job1 --rdzv_backend=c10d \\
         --rdzv_endpoint=HOST_OF_THE_FIRST:29500 train.py --data DATA
```

Processes talk through `gloo` on CPUs and `nccl` on GPUs. The batch size is the whole step's: each of
N processes computes every N-th image of a step and the gradients are averaged, so the updates are those
of one process with the whole batch (on GPUs batch norm is synchronised too; on CPUs each process
normalises with its own share).

`DATA` is the path of data CNN Studio reads (its names, such as `fashion-mnist-mini`, mean nothing
here: give the folder or file): an `.npz` file (`x` (N, H, W[, C]), `y` (N,), optionally `x_test`,
`y_test`, `class_names`), a folder of IDX files (MNIST, Fashion-MNIST, ...), a CIFAR-10 python folder, or
a folder with one sub-folder of images per class (read with Pillow, resized to {h}x{w}). Without a test
part, 20 % of the images are held out for the test, as in CNN Studio.

Options: `--epochs`, `--batch-size`, `--lr`, `--seed` override the settings below; `--out` names the result
(default `trained.safetensors`; `.npz` also works); `--from-scratch` starts from `{INITIAL_WEIGHTS}`,
`--weights FILE` from any CNN Studio weight file; `--device cpu` keeps off the GPU.

## The settings (from CNN Studio)

| setting | value |
| --- | --- |
{rows}

The optimizer, schedule (warm-up, step or cosine per step; reduce-on-plateau per epoch), early stopping
(ending on the best epoch's weights when `restore_best`), weight decay (kernels only), label smoothing,
augmentation (random shifts, flips, rotations with zero fill), validation split and seed work as in
CNN Studio's engine. {frozen_text}

## Back to CNN Studio

`train.py` writes the weights in the engine's layout and names (kernels (kh, kw, in, out), dense
(in, out)), with the architecture and the preprocessing inside, as `.safetensors` (written without the
safetensors package). Open them with File > Import Weights to look inside the trained network, or:

```python
from engine.export import load_weight_file
model = load_weight_file("trained.safetensors")
```
"""
