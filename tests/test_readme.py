"""The README's API tour runs as written (on the built-in model organism)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
MAIN_EXPORT = "python -m saewidgets.export notebooks/quickstart.ipynb --execute -o build/quickstart.html"


def _tour() -> str:
    text = README.read_text()
    section = text.split("## A short tour", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's tour has no python block"
    return match.group(1)


def test_readme_commands_match_ci():
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    assert "python3 -m pytest" in text and ci.strip().endswith("python3 -m pytest")
    assert 'pip install torch==2.13.0 && pip install -e ".[dev]"' in text
    assert MAIN_EXPORT in text  # the page tests/browser/test_readme_page.py opens offline


def test_readme_tour_runs(tmp_path, monkeypatch):
    pytest.importorskip("vl_convert")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_tour(), "README.md tour", "exec"), namespace)
    explorer = namespace["explorer"]
    assert explorer.feature == 12
    out = namespace["out"]
    assert isinstance(out.baseline, str) and isinstance(out.steered, str)
    assert (tmp_path / "feature3.html").stat().st_size > 10_000
    assert (tmp_path / "hist.svg").read_text().lstrip().startswith("<")
    explorer.close()
