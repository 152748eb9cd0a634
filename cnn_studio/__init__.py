"""CNN Studio: the PySide6 app. Views of a document model; the engine runs in a worker thread."""

__version__ = "0.1.0"
