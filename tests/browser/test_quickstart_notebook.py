"""notebooks/quickstart.ipynb executes headless (nbclient), offline, on the model organism.

Not a browser test: it lives here beside the other notebook-driven tests to keep
tests/test_explorer.py fast.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slow


def test_quickstart_notebook_executes_headless():
    """notebooks/quickstart.ipynb runs start to end with nbclient, offline, on the organism."""
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    root = Path(__file__).resolve().parents[2]
    nb = nbformat.read(root / "notebooks" / "quickstart.ipynb", as_version=4)
    setup = nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(root)!r})")
    nb.cells.insert(0, setup)  # the checkout's package, installed or not
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    baseline = re.findall(r"baseline: (.*)", printed)
    steered = re.findall(r"steered: +(.*)", printed)
    assert len(baseline) == len(steered) == 2 and baseline[0] != steered[0]
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widgets, "the explorer was not displayed"
