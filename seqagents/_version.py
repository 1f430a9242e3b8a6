"""The library version: one place, read by the package, the saved checkpoints and pyproject."""

__all__ = ["__version__"]

__version__ = "0.1.0"
