"""Where the bundled assets (templates, the mini dataset, icons) live.

In a source checkout or an editable install they sit in ``assets/`` beside ``engine/``; a wheel
installs the same folder as the data package ``cnn_studio_assets``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def assets_dir() -> Path:
    beside = Path(__file__).resolve().parent.parent / "assets"
    if beside.is_dir():
        return beside
    return Path(str(resources.files("cnn_studio_assets")))


def asset_path(*parts: str) -> Path:
    return assets_dir().joinpath(*parts)
