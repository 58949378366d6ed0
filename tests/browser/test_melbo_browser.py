"""MelboExplorer in a real JupyterLab with a live kernel, driven through Chromium.

One notebook session on the model organism: the gallery shows a card per vector and the
selected vector's continuations on every prompt (baseline vs steered) with a slider over
multiples of R; picking another card shows its SAE features, logit lens and self-explanation;
"Train more" trains two more vectors with a progress bar (saved in the store as they finish);
"Open in FeatureExplorer" shows the vector in a FeatureExplorer below the gallery; the vectors
come back from the store in a new widget; a hostile held-out prompt stays text. Screenshots
go to test-artifacts/. No request may leave 127.0.0.1.
"""

from __future__ import annotations

import re

import pytest

from lab_page import open_notebook, run_cell, watched_page

pytestmark = pytest.mark.browser

TIMEOUT = 120_000
HOSTILE = '<img src=x onerror="window.__swXss=1"><b>bold</b> Then'
PROMPTS = ["Yesterday I saw", "She told me about", "Then I thought of", "My friend said"]


def _steered(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll('.sw-melbo-steered')].map(td => td.textContent)")


def test_melbo_explorer_live_in_jupyterlab(lab, browser, artifacts, tmp_path):
    store = tmp_path / "melbo.sqlite"
    setup = (
        "import saewidgets as sw\nmodel, sae = sw.organism()\n"
        f"PROMPTS = {PROMPTS!r}\nHELD = ['It was a quiet day.', {HOSTILE!r}]\n"
        "SETTINGS = dict(source_layer=1, target_layer=3, radius=8.0, steps=40, lr=5e-2, prepend_bos=True)\n"
        f"gallery = sw.MelboExplorer(model, sae, PROMPTS, n_vectors=3, held_out=HELD, path={str(store)!r}, "
        "progress=False, **SETTINGS)\ngallery"
    )
    lab.write_notebook("melbo.ipynb", [
        setup,
        "print('STATE', gallery.selected, gallery.multiple, len(gallery.vectors), gallery.training.get('status'))",
        f"again = sw.MelboExplorer(model, sae, PROMPTS, path={str(store)!r}, progress=False, **SETTINGS)\n"
        "print('AGAIN', len(again.vectors), [round(o, 3) for o in again.vectors.objectives] == "
        "[round(o, 3) for o in gallery.vectors.objectives])",
    ])
    context, page, outside, errors = watched_page(browser, 1500, 1200)
    try:
        open_notebook(page, lab.notebook_url("melbo.ipynb"), timeout=TIMEOUT)
        run_cell(page, 0, timeout=TIMEOUT)
        page.wait_for_selector(".sw-melbo", timeout=TIMEOUT)
        page.wait_for_function("() => document.querySelectorAll('.sw-melbo-card').length === 3", timeout=TIMEOUT)
        page.wait_for_selector(".sw-melbo-table[data-status=done]", timeout=TIMEOUT)
        assert page.locator(".sw-melbo-card.sw-current").get_attribute("data-index") == "0"
        assert page.locator(".sw-melbo-table tbody tr").count() == len(PROMPTS) + 2
        assert page.locator(".sw-melbo-table tr[data-split=held_out]").count() == 2
        assert "vectors saved in" in page.locator(".sw-melbo-saved").text_content()
        assert page.locator(".sw-melbo-card").first.locator(".sw-melbo-features li").count() == 3
        page.locator(".sw-melbo").screenshot(path=str(artifacts / "melbo-gallery.png"))

        # the radius slider: End = the largest multiple; the steered column changes, baselines stay
        baselines = page.evaluate("() => [...document.querySelectorAll('.sw-melbo-baseline')].map(td => td.textContent)")
        before = _steered(page)
        slider = page.locator(".sw-melbo-radius")
        slider.focus()
        slider.press("End")
        page.wait_for_function("(m) => document.querySelector('.sw-melbo-table').dataset.multiple === m",
                               arg="2", timeout=TIMEOUT)
        assert _steered(page) != before
        assert page.evaluate("() => [...document.querySelectorAll('.sw-melbo-baseline')].map(td => td.textContent)") == baselines
        assert "2 × R (norm 16)" in page.locator(".sw-melbo-multiple").text_content()

        # another card: its details and its self-explanation
        page.locator(".sw-melbo-card[data-index='2']").click()
        page.wait_for_selector(".sw-melbo-detail[data-index='2']", timeout=TIMEOUT)
        page.wait_for_selector(".sw-melbo-table[data-status=done]", timeout=TIMEOUT)
        page.wait_for_selector(".sw-melbo-explain[data-status=done]", timeout=TIMEOUT)
        assert page.locator(".sw-melbo-explain .sw-se-quote").text_content().strip()
        assert page.locator(".sw-melbo-lens .sw-melbo-tok").count() >= 5
        assert page.locator(".sw-melbo-feature-list li").count() >= 3
        page.locator(".sw-melbo-detail").screenshot(path=str(artifacts / "melbo-detail.png"))

        # the Python side followed the view
        out = run_cell(page, 1, timeout=TIMEOUT)
        state = re.search(r"STATE (\d+) (\S+) (\d+)", out)
        assert state and state.group(1) == "2" and float(state.group(2)) == 2.0 and state.group(3) == "3", out

        # train two more from the view: a progress bar, then five cards
        count = page.locator(".sw-melbo-training input[type=number]")
        count.fill("2")
        count.press("Enter")
        count.blur()
        page.locator(".sw-melbo-train").click()
        page.wait_for_selector(".sw-melbo-training[data-status=running]", timeout=TIMEOUT)
        page.wait_for_function("() => document.querySelector('.sw-melbo-progress').value > 0", timeout=TIMEOUT)
        page.locator(".sw-melbo-top").screenshot(path=str(artifacts / "melbo-training.png"))
        page.wait_for_selector(".sw-melbo-training[data-status=done]", timeout=TIMEOUT)
        page.wait_for_function("() => document.querySelectorAll('.sw-melbo-card').length === 5", timeout=TIMEOUT)
        assert "trained 2 vectors" in page.locator(".sw-melbo-progress-text").text_content()

        # open vector 4 in a FeatureExplorer, shown below the gallery
        page.locator(".sw-melbo-card[data-index='4']").click()
        page.wait_for_selector(".sw-melbo-detail[data-index='4']", timeout=TIMEOUT)
        page.locator(".sw-melbo-open").click()
        page.wait_for_selector(".sw-explorer", timeout=TIMEOUT)
        page.wait_for_selector(".sw-explorer .sw-generation[data-status=done]", timeout=TIMEOUT)
        assert "MELBO 4" in page.locator(".sw-explorer .sw-title").text_content()
        page.locator(".sw-explorer").screenshot(path=str(artifacts / "melbo-open-in-explorer.png"))

        # model-facing text is text: the hostile held-out prompt is shown literally
        prompts = page.evaluate("() => [...document.querySelectorAll('.sw-melbo-prompt')].map(td => td.textContent)")
        assert any(HOSTILE in p for p in prompts), prompts
        assert page.locator(".sw-melbo img, .sw-melbo b").count() == 0
        assert page.evaluate("() => window.__swXss") is None

        # the vectors survive in the store: a new widget on the same file finds all five
        out = run_cell(page, 2, timeout=TIMEOUT)
        assert "AGAIN 5 True" in out, out
    finally:
        page.screenshot(path=str(artifacts / "melbo-last.png"), full_page=True)
        context.close()
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert not [e for e in errors if "saewidgets" in e or "sw-" in e], errors
