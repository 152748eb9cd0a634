"""The package list in pyproject.toml covers every package of the source tree."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def asset_packages() -> set[str]:
    """The assets folder and every sub-folder Python could import (an identifier name) that holds files
    to install: setuptools warns at each install that such a folder "would be ignored" unless listed."""
    excluded = {pattern.split("/")[0] for pattern in setuptools_config()["exclude-package-data"]["cnn_studio_assets"]}
    found = {"cnn_studio_assets"}
    for folder in (ROOT / "assets").rglob("*"):
        parts = folder.relative_to(ROOT / "assets").parts
        if (folder.is_dir() and all(part.isidentifier() for part in parts) and parts[0] not in excluded
                and any(f.is_file() for f in folder.rglob("*"))):
            found.add(".".join(("cnn_studio_assets", *parts)))
    return found


def test_every_package_is_listed_for_installation():
    config = setuptools_config()
    listed = set(config["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("engine", "cnn_studio")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found | asset_packages() == listed
    assert config["package-dir"] == {"cnn_studio_assets": "assets"}


def test_the_assets_sub_folders_are_listed_so_installing_warns_about_none():
    assert {"cnn_studio_assets.templates", "cnn_studio_assets.icons", "cnn_studio_assets.architectures",
            "cnn_studio_assets.datasets"} <= asset_packages() <= set(setuptools_config()["packages"])
