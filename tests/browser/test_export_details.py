"""Exported pages in a real Chromium with the network cut: a notebook executed by nbclient (its
widget state saved) turned into offline HTML, and a standalone page. Arrow keys on the slider
step through the precomputed grid (they used to snap back to the nearest grid scale); progress
bars show their final state (they used to show the first frame, 0%) or nothing when they hid
themselves; no stderr box (transformers' attention-mask warning) in the explorer's cell."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from saewidgets.export import offline_html
from kernel_run import execute_notebook

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'

CELLS = [
    "import json\nimport saewidgets as sw\nmodel, sae = sw.organism()\n"
    "FEATURE = sw.organism_ground_truth().feature('colour')\n"
    "ex = sw.FeatureExplorer(model, sae, feature=FEATURE, prompt='I saw a', max_new_tokens=8, auto_self_explain=False)\n"
    "ex",
    # the snapshot's own tqdm bar ("precomputing generations"), left in the notebook when done
    "summary = ex.snapshot(n_scales=7, self_explain=False, token_classes='current')",
    "from tqdm.auto import tqdm\nfor _ in tqdm(range(5), desc='hidden when done', leave=False):\n    pass",
    "print(json.dumps(ex.precomputed['items'][str(FEATURE)]['scales']))\nex.save_html('standalone.html')\nex",
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exported")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    execute_notebook(nb, folder, timeout=300)
    printed = "".join(o.get("text", "") for o in nb.cells[3].outputs if o.get("output_type") == "stream")
    saved = offline_html(nb, folder / "notebook.html")
    return {"nb": nb, "html": saved.path, "standalone": folder / "standalone.html",
            "scales": json.loads(printed.strip().splitlines()[-1])}


def _offline_page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    outside: list[str] = []

    def route(r):
        if r.request.url.startswith(("file:", "data:", "blob:")):
            r.continue_()
        else:
            outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return context, context.new_page(), outside


def _step_with_arrow_keys(page, root, scales: list[float]) -> list[float]:
    """Press arrow keys (and Home/End) on the slider; the scale shown in the box after each."""
    root.locator(".sw-snapshot-note[data-offline='true']").wait_for(timeout=20_000)
    box = root.locator(".sw-steering .sw-scale-box").first
    slider = root.locator(".sw-steering .sw-slider").first
    slider.focus()
    seen = []

    def press(key, wanted):
        slider.press(key)
        page.wait_for_function("([el, s]) => Number(el.value) === s", arg=[box.element_handle(), wanted], timeout=5_000)
        seen.append(float(box.input_value()))

    start = scales.index(0.0)
    press("Home", scales[0])
    for i in range(1, len(scales)):  # one grid scale per key press, never snapping back
        press("ArrowRight", scales[i])
    press("ArrowRight", scales[-1])  # the top stays the top
    press("ArrowLeft", scales[-2])
    press("ArrowDown", scales[-3])
    press("ArrowUp", scales[-2])
    press("End", scales[-1])
    press("Home", scales[0])
    for i in range(1, start + 1):
        press("ArrowRight", scales[i])
    return seen


def test_offline_notebook_page_steps_the_grid_and_shows_final_progress(exported, browser, artifacts):
    nb, scales = exported["nb"], exported["scales"]
    assert len(scales) == 7 and 0.0 in scales
    # nbclient's run: the explorer's cell wrote nothing to stderr (no attention-mask warning)
    assert not [o for o in nb.cells[0].outputs if o.get("name") == "stderr"], nb.cells[0].outputs
    context, page, outside = _offline_page(browser)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(exported["html"].as_uri())
        views = page.locator(".sw-root")
        views.first.wait_for(timeout=20_000)
        assert views.count() == 2
        text = "\n".join(page.locator(".jp-OutputArea").all_inner_texts())  # the outputs, not the code
        assert "precomputing generations: 100%|██████████| 7/7" in text, text[-3000:]
        assert "Loading weights: 100%|██████████|" in text  # transformers' own bar, when sw.organism() loads
        assert not re.search(r"(?<!\d)0%\|", text) and "hidden when done" not in text  # no first frame, no hidden bar
        assert page.locator(STDERR).count() == 0
        seen = _step_with_arrow_keys(page, views.first, scales)
        assert seen[:len(scales)] == scales
        page.screenshot(path=str(artifacts / "export-notebook.png"), full_page=True)
    finally:
        context.close()
    assert outside == [] and errors == []


def test_standalone_page_steps_the_grid_with_arrow_keys(exported, browser, artifacts):
    scales = exported["scales"]
    context, page, outside = _offline_page(browser)
    try:
        page.goto(exported["standalone"].as_uri())
        root = page.locator(".sw-root").first
        seen = _step_with_arrow_keys(page, root, scales)
        assert seen[:len(scales)] == scales
        steered = root.locator(".sw-steered .sw-text").inner_text()
        assert steered  # the precomputed text at the grid scale reached
        root.screenshot(path=str(artifacts / "export-standalone.png"))
    finally:
        context.close()
    assert outside == []
