"""The MELBO explorer widget."""

from .widget import MelboExplorer

__all__ = ["MelboExplorer"]
