"""The bundled starting points listed under File > New from template (JSON in assets/templates/)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.architecture import load_architecture_file
from engine.resources import asset_path

# Shown first, in this order; any other template file follows alphabetically.
PREFERRED_ORDER = ("seed_sample", "seed_sample_batchnorm", "lenet5", "small_vgg", "mlp_baseline", "resnet8",
                   "inception_lite")
DESCRIPTIVE_KEYS = ("name", "description")


@dataclass(frozen=True)
class Template:
    key: str
    name: str
    description: str
    path: Path


def templates_dir() -> Path:
    return asset_path("templates")


def list_templates(folder: Path | None = None) -> list[Template]:
    folder = folder or templates_dir()
    found: list[Template] = []
    for path in sorted(folder.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue  # a broken bundled file must not take the menu down; loading it reports why
        if not isinstance(doc, dict):
            continue
        found.append(Template(path.stem, str(doc.get("name") or path.stem), str(doc.get("description") or ""), path))
    rank = {key: i for i, key in enumerate(PREFERRED_ORDER)}
    return sorted(found, key=lambda t: (rank.get(t.key, len(rank)), t.key))


def load_template(path: str | Path) -> dict[str, Any]:
    """The template's architecture document, without its descriptive keys."""
    doc = load_architecture_file(path)
    return {k: v for k, v in doc.items() if k not in DESCRIPTIVE_KEYS}


def seed_architecture() -> dict[str, Any]:
    """The network the studio opens with: the seed document's sample CNN."""
    return load_template(asset_path("architectures", "seed_sample.json"))
