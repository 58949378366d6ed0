"""The package's charts in live JupyterLab draw with the bundled Vega: no CDN, no request outside
127.0.0.1, both charts (logit histogram, self-explanation curves) rendered as SVG."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from lab_page import open_notebook, run_cell

pytestmark = [pytest.mark.browser, pytest.mark.slow]
TIMEOUT = 120_000


def test_charts_render_offline_in_jupyterlab(lab, browser, artifacts):
    lab.write_notebook("charts.ipynb", [
        "import saewidgets as sw\nmodel, sae = sw.organism()\ngt = sw.organism_ground_truth()\n"
        "sw.logit_histogram_chart(model, sae, gt.feature('colour'), classes='starts_with_space')",
        "df = sw.self_explain(model, sae, gt.feature('colour'), max_new_tokens=3, progress=False)\n"
        "sw.self_explanation_chart(df)",
    ])
    context = browser.new_context(viewport={"width": 1300, "height": 1100})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url)
            if urlparse(r.url).hostname not in ("127.0.0.1", None) and not r.url.startswith(("data:", "blob:")) else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        open_notebook(page, lab.notebook_url("charts.ipynb"), timeout=TIMEOUT)
        run_cell(page, 0, timeout=TIMEOUT)
        page.locator(".sw-chart-view svg").first.wait_for(timeout=TIMEOUT)
        run_cell(page, 1, timeout=TIMEOUT)
        page.locator(".sw-chart-view svg").nth(1).wait_for(timeout=TIMEOUT)
        first = page.locator(".sw-chart-view").first.inner_text()
        assert "square-root scale" in first and "logit weight" in first
        assert "self-similarity" in page.locator(".sw-chart-view").nth(1).inner_text()
        assert "Error loading script" not in page.content()
        page.screenshot(path=str(artifacts / "charts-jupyterlab.png"), full_page=True)
    finally:
        context.close()
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert not errors, errors
