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


def _block_after(text: str, heading: str) -> str:
    match = re.search(r"```bash\n(.*?)```", text.split(heading, 1)[1], re.S)
    assert match, f"no bash block after {heading!r}"
    return match.group(1).strip()


def test_readme_commands_match_ci():
    """The README's install and test commands are what .ci/run runs, the test command as one of its
    lines (after it, .ci/run only runs the mutation check)."""
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    test = _block_after(text, "Run the tests")
    assert test == "python3 -m pytest" and test in lines
    assert lines[lines.index(test) + 1:] == ["python3 tools/mutants.py"]
    assert "export SAEWIDGETS_REQUIRE_BROWSER=1" in " ".join(lines[:lines.index(test)])
    assert "/usr/bin/chromium --version" in lines[:lines.index(test)]
    assert 'pip install torch==2.13.0 && pip install -e ".[dev]"' in text
    assert 'python3 -m pytest -m "not slow"' in text  # the fast loop
    assert MAIN_EXPORT in text  # the page tests/browser/test_readme_page.py opens offline


@pytest.mark.slow
def test_readme_tour_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # vl-convert (explorer.save_chart) is a dependency: never skipped
    namespace: dict = {}
    exec(compile(_tour(), "README.md tour", "exec"), namespace)
    explorer = namespace["explorer"]
    assert explorer.feature == 12
    out = namespace["out"]
    assert isinstance(out.baseline, str) and isinstance(out.steered, str)
    assert (tmp_path / "feature3.html").stat().st_size > 10_000
    assert (tmp_path / "hist.svg").read_text().lstrip().startswith("<")
    explorer.close()
