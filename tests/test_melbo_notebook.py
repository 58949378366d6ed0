"""notebooks/melbo.ipynb executes headless (nbclient), offline, on the model organism."""

from __future__ import annotations

import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_melbo_notebook_runs_as_written(tmp_path, no_network):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "melbo.ipynb", as_version=4)
    nb.cells.insert(0, nbformat.v4.new_code_cell(f"import sys; sys.path.insert(0, {str(ROOT)!r})"))  # this checkout
    start = time.monotonic()
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.monotonic() - start
    print(f"notebooks/melbo.ipynb ran in {seconds:.0f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    share = re.search(r"vector 1: (\d+)% of the words are emotion words \(baselines: (\d+)%\)", printed)
    assert share and int(share.group(1)) >= 30 and int(share.group(2)) < 10, printed
    assert "self-explanation: 'an emotion'" in printed
    assert re.search(r"MelboVectors\(2 vectors, R=8", printed) and "['MELBO 0', 'MELBO 1']" in printed
    assert [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert (tmp_path / "melbo_vectors.sqlite").is_file()
