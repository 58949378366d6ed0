"""The FeatureExplorer widget."""

from .widget import FeatureExplorer

__all__ = ["FeatureExplorer"]
