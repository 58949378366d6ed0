"""``Saved``: what an export wrote, and how big it is."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


def human_size(n_bytes: int) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units)."""
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Saved:
    """A written file: ``path``, ``bytes`` (its size) and ``parts`` (bytes per component, when known)."""

    path: Path
    bytes: int
    parts: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        detail = ", ".join(f"{name} {human_size(n)}" for name, n in self.parts.items())
        return f"{self.path} ({human_size(self.bytes)}{'; ' + detail if detail else ''})"

    def __repr__(self) -> str:
        return f"Saved({str(self)!r})"

    def __fspath__(self) -> str:
        return str(self.path)
