"""notebooks/task_features.ipynb executes headless (nbclient), offline, on the model organism."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import saewidgets as sw

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_task_features_notebook_executes_headless():
    import nbformat
    from nbclient import NotebookClient

    try:
        sw.organism()
    except Exception as error:
        pytest.skip(f"the model organism is not available: {error}")
    nb = nbformat.read(ROOT / "notebooks" / "task_features.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(ROOT)!r})"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    accuracy = dict(re.findall(r"^(zero-shot|6-shot|task vector) +accuracy +(\d+)%", printed, re.M))
    assert set(accuracy) == {"zero-shot", "6-shot", "task vector"}
    assert int(accuracy["task vector"]) >= 80 > int(accuracy["zero-shot"])  # the target
    start, end, cleaned = map(int, re.search(r"cleanup: (\d+) -> (\d+) features in \d+ steps; zero-shot accuracy (\d+)%",
                                             printed).groups())
    assert end <= 10 < start and cleaned >= 80
    feature = re.search(r"explorer shows feature (\d+)", printed).group(1)
    assert f"feature {feature} alone" in printed
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) >= 4  # two charts, the task explorer and the feature explorer
    charts = [o for o in outputs if "data:image/svg+xml" in str(o.get("data", {}).get("text/html", ""))]
    assert len(charts) >= 2, "the sweep and feature charts were not drawn (offline: a chart view and its SVG)"
