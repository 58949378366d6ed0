"""The task explorer widget (``sw.TaskExplorer``)."""

from .widget import TaskExplorer

__all__ = ["TaskExplorer"]
