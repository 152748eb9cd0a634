"""Optional test packages: skipped where absent, unless the full suite says they are required.

``scripts/dev.sh test`` installs the test extras and sets ``CNN_STUDIO_REQUIRE_EXTRAS=1``: there a
missing or broken extra (onnx, onnxruntime, safetensors, hypothesis, scikit-learn) fails the tests that need it
instead of quietly skipping them. In a bare environment (numpy, Pillow, threadpoolctl and pytest
alone) the same tests skip, so tests/engine still passes there.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

REQUIRE_ENV = "CNN_STUDIO_REQUIRE_EXTRAS"
# Set by scripts/dev.sh test where it installs Debian's dataset-fashion-mnist.
REQUIRE_FASHION_MNIST_ENV = "CNN_STUDIO_REQUIRE_FASHION_MNIST"
# The packages of the "test" extra in pyproject.toml that tests import optionally.
TEST_EXTRAS = ("onnx", "onnxruntime", "safetensors", "hypothesis", "sklearn")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def extras_required() -> bool:
    return _flag(REQUIRE_ENV)


def require_full_fashion_mnist(present: bool) -> None:
    """Skip a test of the full Fashion-MNIST where it is absent, saying how to get it; fail instead where
    the test set-up promised to install it."""
    if present:
        return
    reason = ("the full Fashion-MNIST is not installed (Debian package dataset-fashion-mnist, "
              "/usr/share/datasets/fashion-mnist): scripts/dev.sh test installs it on Debian and Ubuntu")
    if _flag(REQUIRE_FASHION_MNIST_ENV):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def require(module: str, reason: str | None = None) -> ModuleType:
    """Import ``module``; where it cannot be imported, skip (bare environment) or fail (full suite)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = reason or f"needs the optional test package {module!r}"
        if extras_required():
            pytest.fail(f"{why}, a required test extra, but importing it failed ({exc}); "
                        f"install the test extras (pip install -e '.[test]') or unset {REQUIRE_ENV}",
                        pytrace=False)
        pytest.skip(f"{why} ({exc})", allow_module_level=True)
