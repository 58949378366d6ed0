"""The front end's pure functions, run with node's test runner against Python's answers."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_js_fixtures_are_what_python_computes_now():
    from tools.js_fixtures import FIXTURES, fixtures

    assert json.loads(FIXTURES.read_text()) == json.loads(json.dumps(fixtures())), \
        "js/test/fixtures.json is stale: run python tools/js_fixtures.py"


def test_js_unit_tests_pass():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: the front end's unit tests need Node.js (it also builds the bundle)")
    if not (ROOT / "js" / "node_modules").is_dir():
        pytest.fail("js/node_modules is missing: run npm install in js/ (pip install -e . does it)")
    run = subprocess.run([node, "--test", "test"], cwd=ROOT / "js", capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout
