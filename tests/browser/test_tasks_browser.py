"""TaskExplorer in a real JupyterLab with a live kernel, driven through Chromium.

One notebook session on the model organism's `category` task: the overview, the layer-sweep
chart and the cleaned features come in; switching features off changes the zero-shot
completions (the Python side follows); clicking a feature's bar opens it in the FeatureExplorer
shown below; a typed task (with hostile text) runs and is shown as text; then the dark theme.
Screenshots go to test-artifacts/. No request may leave 127.0.0.1.
"""

from __future__ import annotations

import re

import pytest

from lab_page import open_notebook, run_cell, watched_page

pytestmark = pytest.mark.browser

TIMEOUT = 240_000
HOSTILE_X = '<img src=x onerror="window.__swXss=1">'


def _organism_available() -> bool:
    try:
        import saewidgets as sw

        sw.organism()
        return True
    except Exception:
        return False


def _stage_done(page, task: str, timeout: float = TIMEOUT) -> None:
    page.wait_for_selector(f".sw-tasks[data-task='{task}'][data-stage='done']", timeout=timeout)


def _completions(page) -> dict:
    return page.evaluate(
        """() => {
            const c = document.querySelector('.sw-tk-completions');
            return {selected: c.dataset.selected, accuracy: c.dataset.accuracy,
                    texts: [...c.querySelectorAll('.sw-tk-completion')].map(td => td.textContent)};
        }"""
    )


def test_task_explorer_live_in_jupyterlab(lab, browser, artifacts):
    if not _organism_available():
        pytest.skip("the model organism is not available")
    lab.write_notebook("tasks.ipynb", [
        "import saewidgets as sw\nmodel, sae = sw.organism()\n"
        "fe = sw.FeatureExplorer(model, sae, feature=0, max_new_tokens=6, auto_self_explain=False)\n"
        "tx = sw.TaskExplorer(model, sae, task='category', n_prompts=8, n_eval=16, n_show=6, explorer=fe,\n"
        "                     cleanup={'lr': 0.05, 'steps': 80, 'patience': 20})\ntx",
        "fe",
        "print('STATE', tx.task, tx.opened, fe.feature, ','.join(map(str, tx.selected)), tx.completions.get('accuracy'))",
    ])
    context, page, outside, errors = watched_page(browser, 1400, 1300)
    try:
        open_notebook(page, lab.notebook_url("tasks.ipynb"), timeout=TIMEOUT)
        run_cell(page, 0, timeout=TIMEOUT)
        run_cell(page, 1, timeout=TIMEOUT)
        page.wait_for_selector(".sw-tasks", timeout=TIMEOUT)
        _stage_done(page, "category")
        page.wait_for_selector(".sw-tk-sweep-chart[data-task='category'] svg", timeout=TIMEOUT)
        page.wait_for_selector(".sw-tk-features-chart[data-task='category'] svg", timeout=TIMEOUT)
        assert page.locator(".sw-tk-select").input_value() == "category"

        # the overview: percentages for zero-shot, few-shot, the task vector and the cleaned features
        cards = {page.locator(".sw-tk-card").nth(i).get_attribute("data-key"):
                 page.locator(".sw-tk-card .sw-tk-card-value").nth(i).text_content() for i in range(4)}
        assert all(re.fullmatch(r"\d+%", v) for v in cards.values()), cards
        assert int(cards["task_vector"][:-1]) > int(cards["zero_shot"][:-1])  # the organism's category vector works
        chips = page.locator(".sw-tk-chip")
        n = chips.count()
        assert n >= 1 and page.locator(".sw-tk-chip input:checked").count() == n
        sweep_text = page.locator(".sw-tk-sweep-chart svg").text_content()
        assert "task vector" in sweep_text and "zero-shot" in sweep_text and "gradient cleanup" in sweep_text
        first = _completions(page)
        assert len(first["texts"]) == 6 and first["selected"]
        page.locator(".sw-tasks").screenshot(path=str(artifacts / "tasks-light.png"))

        # switch every feature off: only b_dec is written at "->"; the completions change
        page.locator(".sw-tk-list button", has_text="none").click()
        page.wait_for_function("() => { const c = document.querySelector('.sw-tk-completions');"
                               " return c.dataset.selected === '' && c.dataset.accuracy !== ''; }", timeout=TIMEOUT)
        off = _completions(page)
        assert off["texts"] != first["texts"] and float(off["accuracy"]) < float(first["accuracy"])
        # ... and one back on (the strongest): the Python side follows the toggles
        strongest = chips.first.get_attribute("data-feature")
        chips.first.locator("input").check()
        page.wait_for_function("(f) => document.querySelector('.sw-tk-completions').dataset.selected === f",
                               arg=strongest, timeout=TIMEOUT)
        bars = page.locator(".sw-tk-features-chart svg path[aria-roledescription='bar']")
        assert bars.count() == n

        # click the strongest feature's bar: the FeatureExplorer below opens it
        bars.first.click()
        page.wait_for_function("(f) => document.querySelector('.sw-explorer .sw-title').textContent === `Feature ${f}`",
                               arg=strongest, timeout=TIMEOUT)
        out = run_cell(page, 2, timeout=TIMEOUT)
        state = re.search(r"STATE (\S+) (-?\d+) (\d+) (\S*) (\S+)", out)
        assert state, out
        assert state.group(1) == "category" and state.group(2) == strongest and state.group(3) == strongest
        assert state.group(4) == strongest

        # a typed task, with hostile text on the model side: shown as text, never parsed
        page.locator(".sw-tk-custom summary").click()
        pairs = "\n".join([f"{HOSTILE_X} -> colour", "red -> colour", "blue -> colour", "green -> colour", "cat -> animal",
                           "dog -> animal", "horse -> animal", "bread -> food", "cheese -> food", "apple -> food"])
        page.locator(".sw-tk-pairs").fill(pairs)
        page.locator(".sw-tk-name").fill("typed")
        page.locator(".sw-tk-use").click()
        page.wait_for_function("() => document.querySelector('.sw-tk-select').value === 'typed'", timeout=TIMEOUT)
        page.wait_for_selector(".sw-tk-overview[data-task='typed']", timeout=TIMEOUT)
        assert page.evaluate("() => window.__swXss") is None
        assert page.locator(".sw-tasks img").count() == 0

        # a bad typed task: a clear error in the widget, which stays usable
        page.locator(".sw-tk-pairs").fill("just one line")
        page.locator(".sw-tk-use").click()
        banner = page.locator(".sw-tasks .sw-error")
        banner.wait_for(state="visible", timeout=TIMEOUT)
        assert "not 'x -> y'" in banner.inner_text()
        page.locator(".sw-tasks .sw-error button").click()

        # back to category (cached: at once), then the dark theme
        page.locator(".sw-tk-select").select_option("category")
        _stage_done(page, "category")
        page.wait_for_selector(".sw-tk-features-chart[data-task='category'] svg", timeout=TIMEOUT)
        page.locator(".lm-MenuBar-item", has_text="Settings").click()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^Theme$")).hover()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^JupyterLab Dark$")).click()
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'", timeout=TIMEOUT)
        page.wait_for_timeout(800)
        background = page.evaluate("() => getComputedStyle(document.querySelector('.sw-tasks')).backgroundColor")
        assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")
        page.locator(".sw-tasks").screenshot(path=str(artifacts / "tasks-dark.png"))
    finally:
        page.screenshot(path=str(artifacts / "tasks-last.png"), full_page=True)
        context.close()
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert not [e for e in errors if "saewidgets" in e or "sw-" in e], errors
