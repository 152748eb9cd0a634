"""Diagnosing training: the training doctor's findings (Diagnostics tab) and the per-layer profiler."""

from cnn_studio.diagnose.workspace import DiagnosticsWorkspace, install_diagnostics

__all__ = ["DiagnosticsWorkspace", "install_diagnostics"]
