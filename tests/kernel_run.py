"""Executing a notebook in a real kernel that imports this checkout's package (and any other
test folders given), with the caller's PYTHONPATH restored afterwards."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[1]


def execute_notebook(nb: Any, cwd: Path, *, timeout: int = 300, paths: Sequence[Path] = ()) -> Any:
    """Run every cell of ``nb`` (an nbformat notebook, executed in place and returned) in a
    python3 kernel started in ``cwd``, with the repository and ``paths`` on its PYTHONPATH."""
    from nbclient import NotebookClient

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), *map(str, paths), old]))
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    return nb
