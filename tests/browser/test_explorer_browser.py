"""FeatureExplorer in a real JupyterLab with a live kernel, driven through Chromium.

One notebook session: render the explorer, pick a feature (its self-explanation
panel fills in after the steered generation), change the token class, move the
slider (the steered text changes, the baseline stays, the self-explanation
moves to another row of its sweep), check the Python side follows, push a
change from Python, show an error and recover, and switch to the dark theme.
Screenshots go to test-artifacts/. No request may
leave 127.0.0.1 (the bundle carries vega; nothing comes from a CDN).
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import pytest

from lab_page import open_notebook, run_cell

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GEN = ".sw-generation"
HOSTILE = '<img src=x onerror="window.__swXss=1"><b>bold</b> The'  # model-facing text must stay text
TIMEOUT = 90_000


@pytest.fixture(scope="module")
def setup_code() -> str:
    """Code that loads the model organism in the kernel (shipped in the package: never replaced by
    a random model) and names its animal feature."""
    import saewidgets as sw

    feature = sw.organism_ground_truth().feature("animal")
    return f"model, sae = sw.organism()\nFEATURE = {feature}"


def _generation(page):
    return page.evaluate(
        """() => {
            const g = document.querySelector('.sw-generation');
            const text = (role) => [...g.querySelectorAll(`[data-role=${role}] .sw-tok`)].map(s => s.textContent).join('');
            return {status: g.dataset.status, request: g.dataset.request,
                    baseline: text('baseline'), steered: text('steered')};
        }"""
    )


def _wait_done_after(page, request: str, timeout: float = TIMEOUT) -> dict:
    page.wait_for_function(
        """(old) => {
            const g = document.querySelector('.sw-generation');
            return g && g.dataset.status === 'done' && g.dataset.request !== old;
        }""",
        arg=request,
        timeout=timeout,
    )
    return _generation(page)


def test_explorer_live_in_jupyterlab(lab, browser, artifacts, setup_code):
    lab.write_notebook("explorer.ipynb", [
        "import saewidgets as sw\n" + setup_code + "\n"
        "ex = sw.FeatureExplorer(model, sae, feature=0, prompt='The quick brown', max_new_tokens=12)\nex",
        "print('STATE', ex.feature, ex.token_class, round(ex.scale, 6), ex.generation['status'])",
        "ex.feature = 2",
        "ex.prompt = " + repr(HOSTILE),
        "import json\nprint('BEST', json.dumps(ex.self_explanation.get('best'), ensure_ascii=False))",
    ])
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if urlparse(r.url).hostname not in ("127.0.0.1", None) and not r.url.startswith(("data:", "blob:")) else None)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        open_notebook(page, lab.notebook_url("explorer.ipynb"), timeout=TIMEOUT)
        run_cell(page, 0, timeout=TIMEOUT)
        page.wait_for_selector(".sw-explorer", timeout=TIMEOUT)
        page.wait_for_selector(f"{GEN}[data-status=done]", timeout=TIMEOUT)
        page.wait_for_selector(".sw-chart svg", timeout=TIMEOUT)
        first = _generation(page)
        assert first["baseline"] and first["steered"] == first["baseline"]  # scale 0

        # pick a feature by index (Enter in the index box)
        feature = int(re.search(r"FEATURE = (\d+)", setup_code).group(1))
        index = page.locator(".sw-index")
        index.fill(str(feature))
        index.press("Enter")
        page.wait_for_function("(f) => document.querySelector('.sw-title').textContent === `Feature ${f}`",
                               arg=feature, timeout=TIMEOUT)
        page.wait_for_selector(f".sw-chart[data-feature='{feature}'] svg", timeout=TIMEOUT)

        # its self-explanation: one sweep, run after the steered generation, shown as text + chart
        panel = page.locator(".sw-selfexplain")
        page.wait_for_selector(f".sw-selfexplain[data-status=done][data-feature='{feature}']", timeout=TIMEOUT)
        page.wait_for_selector(f".sw-se-chart[data-feature='{feature}'] svg", timeout=TIMEOUT)
        assert page.locator(".sw-se-auto input").is_checked()
        assert page.locator(".sw-se-current").text_content().strip()
        best = page.locator(".sw-se-best li").all_text_contents()  # distinct non-empty texts, best first
        printed = re.search(r"BEST (.*)", run_cell(page, 4, timeout=TIMEOUT)).group(1)
        assert best == json.loads(printed) and 1 <= len(best) <= 3 and all(best), (best, printed)
        assert "sweep scale" in page.locator(".sw-se-where").text_content()
        assert page.locator(".sw-se-chart svg path").count() > 4  # four metric curves
        row = panel.get_attribute("data-row")
        rule = page.locator(".sw-se-chart").get_attribute("data-current")

        # search by a top token, typed key by key: letters must not reach JupyterLab's
        # command-mode shortcuts ("a" inserts a cell, "d d" deletes one)
        cells = page.locator(".jp-Notebook .jp-Cell").count()
        token = page.locator(".sw-top-tokens tbody tr td.sw-token").first.get_attribute("title")
        word = re.sub(r"[^A-Za-z]", "", token) or "a"
        page.locator(".sw-picker input[type=search]").press_sequentially(word, delay=30)
        page.wait_for_selector(f".sw-search-results .sw-item-index:text('#{feature}')", timeout=TIMEOUT)
        assert page.locator(".jp-Notebook .jp-Cell").count() == cells

        # change the token class
        select = page.locator(".sw-histogram select")
        select.select_option("case")
        page.wait_for_selector(".sw-chart[data-token-class='case'] svg", timeout=TIMEOUT)
        legend = page.locator(".sw-chart svg").text_content()
        assert "lower" in legend or "capitalised" in legend

        # move the slider with the keyboard: End = the top of the range
        before = _generation(page)
        slider = page.locator(".sw-scale-row .sw-slider")
        slider.focus()
        slider.press("End")
        moved = _wait_done_after(page, before["request"])
        assert moved["baseline"] == first["baseline"]
        assert moved["steered"] != moved["baseline"], moved
        page.wait_for_selector(".sw-steered .sw-diff")
        # the self-explanation follows the slider: another row of the same sweep, the rule moves
        page.wait_for_function("(r) => document.querySelector('.sw-selfexplain').dataset.row !== r", arg=row,
                               timeout=TIMEOUT)
        assert page.locator(".sw-se-chart").get_attribute("data-current") != rule
        assert page.locator(f".sw-se-chart[data-feature='{feature}'] svg").count() == 1
        panel.screenshot(path=str(artifacts / "self-explanation-light.png"))
        top = float(page.locator(".sw-scale-row .sw-scale-box").input_value())
        slider.press("ArrowLeft")  # one step down: a new scale, a new generation
        _wait_done_after(page, moved["request"])
        assert 0 < float(page.locator(".sw-scale-row .sw-scale-box").input_value()) < top

        # keep steering with this feature while looking at another one
        page.locator(".sw-scale-row button", has_text="keep this feature").click()
        page.wait_for_selector(f".sw-entry .sw-link:text('#{feature}')", timeout=TIMEOUT)

        # the Python side followed the view
        out = run_cell(page, 1, timeout=TIMEOUT)
        state = re.search(r"STATE (\d+) (\S+) (\S+) (\w+)", out)
        assert state, out
        assert int(state.group(1)) == feature and state.group(2) == "case" and float(state.group(3)) > 0

        # ... and the view follows Python; the kept feature still steers, with feature 2
        before = _generation(page)
        run_cell(page, 2, timeout=TIMEOUT)
        page.wait_for_function("() => document.querySelector('.sw-title').textContent === 'Feature 2'",
                               timeout=TIMEOUT)
        assert page.locator(".sw-index").input_value() == "2"
        _wait_done_after(page, before["request"])
        title = page.locator(".sw-steered .sw-col-title").text_content()
        assert f"#{feature} ×" in title and "#2 ×" in title, title  # the kept entry, then the slider
        page.locator(".sw-explorer").screenshot(path=str(artifacts / "explorer-light.png"))

        # a bad feature index: the error shows in the widget, the previous state stays
        index.fill("99999")
        index.press("Enter")
        banner = page.locator(".sw-error")
        banner.wait_for(state="visible", timeout=TIMEOUT)
        assert "out of range" in banner.inner_text()
        page.wait_for_function("() => document.querySelector('.sw-index').value === '2'", timeout=TIMEOUT)
        page.locator(".sw-error button").click()
        banner.wait_for(state="hidden", timeout=TIMEOUT)

        # still live after the error: stop steering with the kept feature, then back to
        # scale 0: the steered text is the baseline again
        before = _generation(page)
        page.locator(f".sw-entry button[aria-label='remove feature {feature}']").click()
        page.wait_for_selector(".sw-entry", state="detached", timeout=TIMEOUT)
        _wait_done_after(page, before["request"])
        before = _generation(page)
        page.locator(".sw-scale-row button[title='scale 0']").click()
        back = _wait_done_after(page, before["request"])
        assert back["steered"] == back["baseline"] == first["baseline"]

        # text from the model side is shown as text, never parsed as HTML
        before = _generation(page)
        run_cell(page, 3, timeout=TIMEOUT)
        _wait_done_after(page, before["request"])
        shown = page.locator(".sw-baseline .sw-prompt-text").text_content()
        assert shown == HOSTILE
        assert page.locator(".sw-explorer img, .sw-explorer b").count() == 0
        assert page.evaluate("() => window.__swXss") is None

        # dark theme
        page.locator(".lm-MenuBar-item", has_text="Settings").click()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^Theme$")).hover()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^JupyterLab Dark$")).click()
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=TIMEOUT)
        page.wait_for_timeout(500)
        background = page.evaluate("() => getComputedStyle(document.querySelector('.sw-root')).backgroundColor")
        assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")
        page.locator(".sw-explorer").screenshot(path=str(artifacts / "explorer-dark.png"))
        panel.screenshot(path=str(artifacts / "self-explanation-dark.png"))
    finally:
        page.screenshot(path=str(artifacts / "explorer-last.png"), full_page=True)
        context.close()
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert errors == [], errors  # every page error, JupyterLab's and the bundle's alike
