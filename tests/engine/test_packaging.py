"""The package list in pyproject.toml covers every package of the source tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_package_is_listed_for_installation():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("engine", "cnn_studio")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found | {"cnn_studio_assets"} == listed
    assert config["package-dir"] == {"cnn_studio_assets": "assets"}
