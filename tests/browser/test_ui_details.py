"""Details of the explorer seen in a real JupyterLab (Chromium), one notebook session:
text contrast (WCAG AA, 4.5:1, from the rendered colours) in the light and the dark theme,
the scale box and its limits, the slider's symlog ticks, the feature box, a token class added
from the form, the self-explanation chart's legend, control characters in model text, and no
stderr box in the explorer's cell. Screenshots and the measured contrasts go to test-artifacts/.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from contrast import AA, below_aa, text_contrasts
from lab_page import open_notebook, run_cell

pytestmark = pytest.mark.browser

TIMEOUT = 90_000
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'
PLANT = "ctrl\x01bell\x07 flip\u202e end"  # control characters in a self-explanation

CELLS = [
    # 0: the explorer
    "import json\nimport saewidgets as sw\nmodel, sae = sw.organism()\nFEATURE = sw.organism_ground_truth().feature('animal')\n"
    "ex = sw.FeatureExplorer(model, sae, feature=FEATURE, prompt='The quick brown', max_new_tokens=12)\nex",
    # 1: the Python side, read back
    "print('STATE', json.dumps({'scale': ex.scale, 'feature': ex.feature, 'token_class': ex.token_class,"
    " 'classes': ex.class_names, 'error': ex.error}))",
    # 2: a scale with many digits, from Python
    "ex.scale = 3.4963912345",
    # 3: control characters in the self-explanation panel's texts
    "se = dict(ex.self_explanation)\n"
    f"se['rows'] = [[r[0], {PLANT!r}, r[2], False] for r in se['rows']]\n"
    f"se['best'] = [{PLANT!r}]\nse['explanation'] = {PLANT!r}\nex.self_explanation = se",
    # 4: bad values from Python raise; a word class added in Python prints nothing
    "try:\n    ex.scale = float('nan')\nexcept ValueError as error:\n    print('REFUSED', error)\n"
    "classes = sw.token_classes(model)\nclasses.add_words('colours', ['red', 'green', 'blue'])",
]


def _state(page) -> dict:
    out = run_cell(page, 1, timeout=TIMEOUT)
    return json.loads(re.search(r"STATE (\{.*\})", out).group(1))


def set_theme(page, name: str) -> None:
    """Switch JupyterLab's theme through its Settings menu (no-op when already on)."""
    if page.evaluate("() => document.body.dataset.jpThemeName") == name:
        return
    page.locator(".lm-MenuBar-item", has_text="Settings").click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^Theme$")).hover()
    page.locator(".lm-Menu-item", has_text=re.compile(f"^{re.escape(name)}$")).click()
    page.wait_for_function("(n) => document.body.dataset.jpThemeName === n", arg=name, timeout=TIMEOUT)
    page.wait_for_timeout(800)  # the theme's stylesheet, then the charts drawn again


@pytest.fixture(scope="module")
def explorer_page(lab, browser):
    lab.write_notebook("ui_details.ipynb", CELLS)
    context = browser.new_context(viewport={"width": 1400, "height": 1300})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_notebook(page, lab.notebook_url("ui_details.ipynb"), timeout=TIMEOUT)
    set_theme(page, "JupyterLab Light")
    run_cell(page, 0, timeout=TIMEOUT)
    page.wait_for_selector(".sw-generation[data-status=done]", timeout=TIMEOUT)
    page.wait_for_selector(".sw-selfexplain[data-status=done] .sw-se-chart svg", timeout=TIMEOUT)
    page.errors = errors
    yield page
    set_theme(page, "JupyterLab Light")  # the Lab's settings outlive this module
    context.close()
    assert not [e for e in errors if "saewidgets" in e or "sw-" in e], errors


def _generated_after(page, request: str) -> None:
    page.wait_for_function(
        "(old) => { const g = document.querySelector('.sw-generation');"
        " return g.dataset.status === 'done' && g.dataset.request !== old; }",
        arg=request, timeout=TIMEOUT)


def _request(page) -> str:
    return page.locator(".sw-generation").get_attribute("data-request")


def test_no_stderr_box_in_the_explorer_cell(explorer_page):
    """transformers' attention-mask warning (filtered in saewidgets.engine.run) leaves no red box."""
    cell = explorer_page.locator(".jp-Notebook .jp-Cell").nth(0)
    assert cell.locator(STDERR).count() == 0, cell.locator(".jp-OutputArea").inner_text()


def test_scale_box_refuses_beyond_the_limit_and_says_when_beyond_the_slider(explorer_page):
    page = explorer_page
    row = page.locator(".sw-scale-row")
    box, slider, note = row.locator(".sw-scale-box"), row.locator(".sw-slider"), row.locator(".sw-scale-note")
    top = float(re.search(r"reaching ±([\d.]+)", row.locator(".sw-scale-caption").inner_text()).group(1))

    box.fill("1e9")  # beyond the shared limit (limits.json: ±1e6): refused in the page
    box.press("Enter")
    assert "1.00e+9 is beyond the steering limit ±1,000,000" in note.inner_text()
    assert box.input_value() == "0" and _state(page)["scale"] == 0.0

    box.fill("")
    box.press_sequentially("1e")  # a number input cannot parse it: refused, the box shows the scale in use
    box.press("Enter")
    assert "type a number" in note.inner_text() and box.input_value() == "0"

    before = _request(page)
    box.fill(str(5 * top))  # within the limit, beyond this slider's range: kept as typed
    box.press("Enter")
    _generated_after(page, before)
    page.wait_for_function("() => document.querySelector('.sw-scale-row .sw-scale').dataset.beyond === 'true'")
    assert f"beyond this slider's ±{top:g}" in note.inner_text() and "steering uses" in note.inner_text()
    assert slider.input_value() == "100"  # the slider stays at its end
    assert _state(page)["scale"] == 5 * top
    assert f"× {5 * top:g}" in page.locator(".sw-steered .sw-col-title").inner_text()

    run_cell(page, 2, timeout=TIMEOUT)  # a scale with many digits, set from Python
    page.wait_for_function("() => document.querySelector('.sw-scale-row .sw-scale-box').value === '3.49639'")
    assert box.evaluate("el => el.scrollWidth <= el.clientWidth")  # shown whole, not cut off
    assert box.get_attribute("title") == "scale 3.4963912345"
    assert note.is_hidden()
    box.press("Enter")  # Enter on the shown (rounded) text changes nothing
    assert _state(page)["scale"] == 3.4963912345


def test_slider_shows_its_symlog_mapping(explorer_page):
    row = explorer_page.locator(".sw-scale-row")
    ticks = row.locator(".sw-tick").all_inner_texts()
    caption = row.locator(".sw-scale-caption").inner_text()
    match = re.search(r"symlog: fine steps below ±([\d.]+), reaching ±([\d.]+)", caption)
    assert match, caption
    linear, top = map(float, match.groups())
    half = linear * math.expm1(0.5 * math.log1p(top / linear))  # the scale at the slider's half-way mark
    assert len(ticks) == 5 and float(ticks[2]) == 0 and float(ticks[4]) == top and float(ticks[0]) == -top
    assert float(ticks[3]) == pytest.approx(half, rel=0.05) and float(ticks[1]) == -float(ticks[3])
    boxes = [row.locator(".sw-tick").nth(i).bounding_box() for i in range(5)]
    assert all(a["x"] + a["width"] <= b["x"] for a, b in zip(boxes, boxes[1:]))  # left to right, not overlapping


def test_feature_box_never_shows_a_refused_entry(explorer_page):
    page = explorer_page
    index, note = page.locator(".sw-index"), page.locator(".sw-index-note")
    feature = _state(page)["feature"]
    title = f"Feature {feature}"
    for typed in ("3.5", ""):
        index.fill(typed)
        index.press("Enter")
        assert index.input_value() == str(feature)
        assert "type a whole number from 0 to 255" in note.inner_text()
        assert page.locator(".sw-title").inner_text() == title
    index.fill("7")
    index.press("Tab")  # a change commits too; the note goes
    page.wait_for_function("() => document.querySelector('.sw-title').textContent === 'Feature 7'", timeout=TIMEOUT)
    assert note.is_hidden()
    index.fill(str(feature))
    index.press("Enter")
    page.wait_for_function("(t) => document.querySelector('.sw-title').textContent === t", arg=title, timeout=TIMEOUT)
    page.wait_for_selector(".sw-selfexplain[data-status=done] .sw-se-chart svg", timeout=TIMEOUT)


def test_a_word_class_added_from_the_form(explorer_page):
    page = explorer_page
    panel = page.locator(".sw-feature")
    toggle = panel.locator(".sw-class-toggle")
    form = panel.locator(".sw-class-form")
    assert form.is_hidden()
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    hostile = '<img src=x onerror="window.__swXss=1">'
    form.locator(".sw-class-name").fill(hostile)  # text from the page: shown as text, never as HTML
    form.locator(".sw-class-words").fill("cat, dog, zzqxv, ,  fox")
    form.locator(".sw-class-words").press("Enter")
    page.wait_for_function("() => document.querySelector('.sw-class-form').dataset.status === 'added'", timeout=TIMEOUT)
    status = form.locator(".sw-class-status").inner_text()
    assert f"added class {hostile!r}" in status and "from 4 words" in status
    assert "'zzqxv'" in status  # the word that is no token, reported
    assert page.locator(".sw-histogram select").input_value() == hostile
    page.wait_for_function("(c) => document.querySelector('.sw-chart').dataset.tokenClass === c", arg=hostile,
                           timeout=TIMEOUT)
    assert page.locator(".sw-explorer img").count() == 0 and page.evaluate("() => window.__swXss") is None
    state = _state(page)
    assert state["token_class"] == hostile and hostile in state["classes"]

    form.locator(".sw-class-name").fill(hostile)  # the same name again: refused, said in the form
    form.locator(".sw-class-words").fill("cat")
    form.locator("button[type=submit]").click()
    page.wait_for_function("() => document.querySelector('.sw-class-form').dataset.status === 'error'", timeout=TIMEOUT)
    assert "already exists" in form.locator(".sw-class-status").inner_text()
    form.locator(".sw-class-name").fill("empty")
    form.locator(".sw-class-words").fill(" , ")
    form.locator(".sw-class-words").press("Enter")
    assert "at least one word" in form.locator(".sw-class-status").inner_text()
    page.locator(".sw-histogram select").select_option("starts_with_space")
    page.wait_for_selector(".sw-chart[data-token-class='starts_with_space'] svg", timeout=TIMEOUT)


def test_self_explanation_legend_and_control_characters(explorer_page, artifacts):
    page = explorer_page
    chart = page.locator(".sw-se-chart svg")
    legend = chart.locator(".role-legend").text_content()
    assert "chosen scale" in legend and "slider's scale" in legend
    run_cell(page, 3, timeout=TIMEOUT)
    page.wait_for_function("() => document.querySelector('.sw-se-current').textContent.includes('ctrl')", timeout=TIMEOUT)
    for where in (".sw-se-current", ".sw-se-best", ".sw-se-chosen"):
        text = page.locator(where).inner_text()
        assert "ctrl\\x01bell\\x07 flip\\u202e end" in text, (where, text)
    assert page.locator(".sw-se-current .sw-ctrl").count() == 3
    page.locator(".sw-selfexplain").screenshot(path=str(artifacts / "ui-self-explanation-controls.png"))


def test_text_contrast_meets_wcag_aa_in_light_and_dark(explorer_page, artifacts):
    page = explorer_page
    before = _request(page)
    slider = page.locator(".sw-scale-row .sw-slider")
    slider.focus()
    slider.press("End")  # steer hard: the steered tokens that differ are highlighted
    _generated_after(page, before)
    page.wait_for_selector(".sw-steered .sw-diff")
    page.locator(".sw-index").fill("99999")  # an error banner, to measure it too
    page.locator(".sw-index").press("Enter")
    page.locator(".sw-error").wait_for(state="visible", timeout=TIMEOUT)
    root = page.locator(".sw-explorer")
    measured = {}
    for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
        set_theme(page, theme)
        page.wait_for_selector(".sw-chart svg", timeout=TIMEOUT)
        rows = text_contrasts(root)
        diff = [r for r in rows if r["element"].startswith("span.sw-tok.sw-diff")]
        assert diff, rows
        measured[name] = {"steered highlight": min(r["ratio"] for r in diff),
                          "error banner": min(r["ratio"] for r in rows if r["element"].startswith("span.sw-error-message")),
                          "lowest": min(rows, key=lambda r: r["ratio"]), "texts": len(rows)}
        root.screenshot(path=str(artifacts / f"ui-explorer-{name}.png"))
        failing = below_aa(rows)
        assert not failing, (theme, failing)
    (artifacts / "contrast.json").write_text(json.dumps(measured, indent=1))
    print(json.dumps({k: {m: v for m, v in d.items() if m != "texts"} for k, d in measured.items()}))
    page.locator(".sw-error button").click()
    assert min(measured["dark"]["steered highlight"], measured["light"]["steered highlight"]) >= AA


def test_python_side_refuses_nan_and_add_words_prints_nothing(explorer_page):
    cell = explorer_page.locator(".jp-Notebook .jp-Cell").nth(4)
    out = run_cell(explorer_page, 4, timeout=TIMEOUT)
    assert "REFUSED the steering scale must be a finite number" in out
    assert "array" not in out and "True" not in out  # no 2,969-long mask printed at the end of the cell
    assert cell.locator(".jp-OutputArea-executeResult").count() == 0
