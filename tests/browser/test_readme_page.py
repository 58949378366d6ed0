"""The page the README's first command writes works offline: run exactly that export command, open
the file in Chromium with every request outside file:/data:/blob: refused, and check the explorer,
its charts and a slider move (steered text from the snapshot)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from test_readme import MAIN_EXPORT

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]


def test_the_readme_page_works_offline(browser, tmp_path, artifacts):
    args = shlex.split(MAIN_EXPORT)
    assert args[:3] == ["python", "-m", "saewidgets.export"]
    out = tmp_path / "build" / "quickstart.html"
    args = [sys.executable, *args[1:-1], str(out)]  # the same command, writing into the test's folder
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "warning" not in run.stderr.lower() or "MissingWidgetState" not in run.stderr
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    outside: list[str] = []
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
                  else (outside.append(r.request.url), r.abort()))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(out.as_uri())
        explorers = page.locator(".sw-root.sw-explorer")
        explorers.first.wait_for(timeout=30_000)
        root = explorers.last  # the snapshot's view
        root.locator(".sw-snapshot-note[data-offline='true']").wait_for(timeout=20_000)
        root.locator(".sw-chart svg").first.wait_for(timeout=20_000)  # the histogram (the one spec)
        assert page.locator("img[alt='chart'], .sw-chart-view svg, svg").count() > 1  # and the altair chart
        steered = root.locator(".sw-steered .sw-text")
        before = steered.inner_text()
        box = root.locator(".sw-steering .sw-scale-box").first
        slider = root.locator(".sw-steering .sw-slider").first
        slider.fill("100")
        slider.dispatch_event("change")
        page.wait_for_function("([el, t]) => el.innerText !== t", arg=[steered.element_handle(), before], timeout=10_000)
        assert float(box.input_value()) > 0
        assert "instrument" in root.locator(".sw-histogram select").input_value()
        page.screenshot(path=str(artifacts / "readme-page.png"), full_page=True)
    finally:
        context.close()
    assert not outside, f"the page asked the network for {outside[:5]}"
    assert not errors, errors
