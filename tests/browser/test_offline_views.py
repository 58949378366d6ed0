"""Saved views in a real Chromium with the network cut: standalone HTML, offline nbconvert HTML, a
gallery, and JupyterLab reopened without a kernel. The slider walks the precomputed grid, the
texts follow, and a planted ``<img onerror>`` token shows as text without running."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from kernel_run import execute_notebook
from pages import assert_side_matches, offline_context, rendered_side, walk_grid

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
PAYLOAD = "<img src=x onerror=window.__pwned=1>"
SHOWN_TOKEN = PAYLOAD.replace(" ", "·")  # the top-tokens table makes spaces visible

# The model organism (a small GPT-2 trained here) stands in for GPT-2 small and its SAE.
LOAD = """import saewidgets as sw
model, sae = sw.organism()"""

PARAMETERS = """truth = sw.organism_ground_truth()
FEATURE = truth.feature("number")
FEATURES = [FEATURE, truth.feature("colour")]
PROMPT = "I saw a"
MAX_NEW_TOKENS = 8
N_SCALES = 5
OUT = "exported" """

# Appended to the notebook: a hostile token string, as a generated token at the top of the
# grid and as the most promoted token in every token class, then a standalone file of it.
PLANT = """import copy
PAYLOAD = __PAYLOAD__
doc = copy.deepcopy(explorer.precomputed)
item = doc["items"][str(FEATURE)]
item["steered"][-1]["tokens"] = [" planted", PAYLOAD, " end"]
item["info"]["top_positive"][0][0] = PAYLOAD
for info in item.get("infos", {}).values():
    info["top_positive"][0][0] = PAYLOAD
explorer.precomputed = doc
info = dict(explorer.feature_info)
info["top_positive"] = [[PAYLOAD, 9.5]] + info["top_positive"][1:]
explorer.feature_info = info
print(explorer.save_html("planted.html"))
from pathlib import Path
from saewidgets.export.packing import unpack
Path("snapshot.json").write_text(json.dumps(unpack(explorer.precomputed, explorer.precomputed_data)))
print(json.dumps(FEATURES))
print(json.dumps(item["scales"]))
display(explorer)""".replace("__PAYLOAD__", repr(PAYLOAD))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The GPT-2 notebook run by nbclient on the model organism (widget state saved), plus the planted cell."""
    import nbformat

    folder = tmp_path_factory.mktemp("executed")
    nb = nbformat.read(REPO / "notebooks" / "gpt2_small_res_jb.ipynb", as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "load" in tags:
            cell.source = LOAD
        elif "parameters" in tags:
            cell.source = PARAMETERS
    nb.cells.append(nbformat.v4.new_code_cell("import json\n" + PLANT))
    execute_notebook(nb, folder, timeout=300, paths=[TESTS])
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    printed = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    scales = json.loads(printed.strip().splitlines()[-1])
    path = folder / "gpt2_small_res_jb.ipynb"
    nbformat.write(nb, path)
    features = json.loads(printed.strip().splitlines()[-2])
    snapshot = json.loads((folder / "snapshot.json").read_text())
    return {"folder": folder, "notebook": path, "scales": scales, "features": features, "snapshot": snapshot}


def check_view(page, root, executed, artifacts: Path, name: str) -> None:
    root.locator(".sw-snapshot-note[data-offline='true']").wait_for(timeout=20_000)
    root.locator(".sw-chart svg").first.wait_for(timeout=20_000)
    snapshot = executed["snapshot"]
    item = snapshot["items"][str(executed["features"][0])]
    assert item["scales"] == executed["scales"]

    def check(i):  # each grid scale shows that row of the snapshot, token by token, with its log-probs
        where = f"scale {item['scales'][i]}"
        side, baseline = item["steered"][i], snapshot["baseline"]
        assert_side_matches(rendered_side(root, "steered"), side["tokens"], side["logprobs"], where)
        assert_side_matches(rendered_side(root, "baseline"), baseline["tokens"], baseline["logprobs"], where)

    walk_grid(page, root, item["scales"], item["traits"]["scale_range"]["max"], check)
    top = root.locator(".sw-steered .sw-text").inner_text()
    assert PAYLOAD in top and "planted" in top  # the hostile token shows as text
    assert SHOWN_TOKEN in root.locator(".sw-top-tokens").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert root.locator(".sw-steered img, .sw-top-tokens img").count() == 0
    # the token-class menu and the search answer from the snapshot too
    select = root.locator(".sw-histogram select")
    other = select.locator("option").nth(1).get_attribute("value")
    select.select_option(other)
    root.locator(f".sw-chart[data-token-class='{other}']").wait_for(timeout=10_000)
    search = root.locator(".sw-picker input[type=search]")
    search.fill("onerror")
    search.press("Enter")
    root.locator(".sw-search-results button").first.wait_for(timeout=5_000)
    assert SHOWN_TOKEN[:8] in root.locator(".sw-search-results").inner_text() or "onerror" in root.locator(".sw-search-results").inner_text()
    assert page.evaluate("window.__pwned") is None
    root.screenshot(path=str(artifacts / f"{name}.png"))


def test_standalone_file_works_offline(executed, browser, artifacts):
    context, outside, errors = offline_context(browser)
    page = context.new_page()
    page.goto((executed["folder"] / "planted.html").as_uri())
    root = page.locator(".sw-root").first
    check_view(page, root, executed, artifacts, "offline-standalone")
    # a feature outside the snapshot is refused with a message; a precomputed one is shown
    index = root.locator(".sw-index")
    other = executed["features"][1]
    absent = next(f for f in range(500) if f not in executed["features"])
    index.fill(str(absent))
    index.press("Enter")
    assert "not precomputed" in root.locator(".sw-error").inner_text()
    index.fill(str(other))
    index.press("Enter")
    page.wait_for_function(f"() => document.querySelector('.sw-title').textContent === 'Feature {other}'")
    assert outside == [] and errors == []
    context.close()


def test_offline_nbconvert_html_of_an_executed_notebook(executed, browser, artifacts, tmp_path):
    from saewidgets.export import offline_html

    saved = offline_html(executed["notebook"], tmp_path / "notebook.html")
    context, outside, errors = offline_context(browser)
    page = context.new_page()
    page.goto(saved.path.as_uri())
    views = page.locator(".sw-root.sw-explorer")
    # the notebook shows the explorer twice, the planted cell once more (its chart cell is a chart view)
    page.wait_for_function("() => document.querySelectorAll('.sw-root.sw-explorer').length === 3", timeout=30_000)
    page.locator(".sw-chart-view svg").first.wait_for(timeout=20_000)
    check_view(page, views.last, executed, artifacts, "offline-nbconvert")
    assert outside == [] and errors == []
    context.close()


def test_gallery_renders_every_feature_offline(executed, browser, artifacts):
    context, outside, errors = offline_context(browser)
    page = context.new_page()
    page.goto((executed["folder"] / "exported" / "gallery.html").as_uri())
    page.wait_for_function("() => document.querySelectorAll('.sw-root .sw-chart svg').length === 2", timeout=30_000)
    titles = page.locator(".sw-title").all_inner_texts()
    assert titles == [f"Feature {f}" for f in executed["features"]]
    page.screenshot(path=str(artifacts / "offline-gallery.png"), full_page=True)
    assert outside == [] and errors == []
    context.close()


def open_in_lab(lab, browser, nb, name: str, *, trusted: bool):
    """Write ``nb`` into the Lab root (signed as by `jupyter trust` when ``trusted``) and open it
    with everything but the Lab server cut off; returns (context, page, outside requests, page errors)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    if trusted:
        NotebookNotary().sign(nb)  # JupyterLab renders widgets of trusted notebooks only
    nbformat.write(nb, lab.root / name)
    origin = "{0.scheme}://{0.netloc}".format(urlparse(lab.url))
    context, outside, errors = offline_context(browser, allow_origin=origin)
    page = context.new_page()
    page.goto(lab.notebook_url(name), wait_until="domcontentloaded")
    return context, page, outside, errors


def test_jupyterlab_reopened_renders_the_saved_view(executed, lab, browser, artifacts):
    """Reopened, its kernel fresh and no cell run: the widgets come from the saved state, with no
    Python object behind them; the precomputed results answer the slider."""
    import nbformat

    nb = nbformat.read(executed["notebook"], as_version=4)
    context, page, outside, errors = open_in_lab(lab, browser, nb, "reopened.ipynb", trusted=True)
    try:
        page.locator(".jp-Dialog .jp-mod-accept").first.click(timeout=5_000)
    except Exception:
        pass  # no kernel dialog this time
    root = page.locator(".jp-OutputArea .sw-root.sw-explorer").last
    root.wait_for(timeout=60_000)
    root.scroll_into_view_if_needed()
    check_view(page, root, executed, artifacts, "offline-jupyterlab-reopened")
    assert outside == [] and errors == []
    context.close()


def test_jupyterlab_untrusted_without_a_kernel_shows_the_static_picture(executed, lab, browser, artifacts):
    """With no kernel, JupyterLab 4 does not restore saved widgets (jupyterlab/jupyterlab#15361);
    an untrusted notebook shows the output's script-free HTML picture instead: chart, statistics,
    top tokens and texts, the planted token as text."""
    import nbformat

    nb = nbformat.read(executed["notebook"], as_version=4)
    # a kernel (and language) that does not exist: JupyterLab asks which kernel to start; we choose none
    nb.metadata["kernelspec"] = {"name": "no-such-kernel", "display_name": "absent", "language": "no-such-language"}
    nb.metadata.pop("language_info", None)
    context, page, outside, errors = open_in_lab(lab, browser, nb, "untrusted.ipynb", trusted=False)
    page.locator(".jp-Dialog button", has_text="No Kernel").first.click(timeout=60_000)
    picture = page.locator(".jp-OutputArea .saewidgets-static").last
    picture.wait_for(timeout=60_000)
    picture.scroll_into_view_if_needed()
    text = picture.inner_text()
    assert f"Feature {executed['features'][0]}" in text and "Promoted" in text and "Steered" in text
    assert SHOWN_TOKEN in text  # escaped by us, then sanitized by JupyterLab: shown as text
    histogram = picture.locator("img[alt='logit weight histogram']")
    assert histogram.evaluate("img => img.complete && img.naturalWidth > 0")  # the chart, drawn
    assert page.evaluate("window.__pwned") is None
    assert "No Kernel" in page.locator(".jp-Toolbar-kernelName").first.inner_text()
    page.screenshot(path=str(artifacts / "offline-jupyterlab-untrusted-static.png"))
    assert outside == [] and errors == []
    context.close()
