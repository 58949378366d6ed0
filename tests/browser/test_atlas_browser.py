"""The atlas in a real JupyterLab: the explorer's examples panel and the all-features table.

The organism's atlas (collected once, copied into the lab's root) drives
``sw.FeatureExplorer(model, sae, atlas=...)``: top examples with per-token highlighting,
quantile groups, the density chart, similar features, the label box (written to the file),
clicking an example into the prompt, search over atlas tokens, the slider's measured range,
the All-features table (sort, filter, pick), and ``sw.FeatureTable`` on its own; light and
dark screenshots go to test-artifacts/. Labels are user text: shown as text, never HTML.
"""

from __future__ import annotations

import re
import shutil

import pytest
import torch

from lab_page import open_notebook, run_cell, watched_page

pytestmark = pytest.mark.browser

TIMEOUT = 120_000
HOSTILE_LABEL = '<img src=x onerror="window.__swXss=1">furry <b>things</b>'


@pytest.fixture(scope="module")
def atlas_file(tmp_path_factory, lab):
    import saewidgets as sw

    shared = tmp_path_factory.getbasetemp() / "organism-atlas.sqlite"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, sae = sw.organism()
        sw.collect_activations(model, sae, path=shared, progress=False).close()
    finally:
        torch.set_num_threads(threads)
    target = lab.root / "organism-atlas.sqlite"
    shutil.copy(shared, target)
    return target


def _theme(page, name: str) -> None:
    page.locator(".lm-MenuBar-item", has_text="Settings").click()
    page.locator(".lm-Menu-item", has_text=re.compile(r"^Theme$")).hover()
    page.locator(".lm-Menu-item", has_text=re.compile(rf"^{name}$")).click()
    light = "true" if "Light" in name else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=TIMEOUT)
    page.wait_for_timeout(700)


def test_examples_panel_and_feature_table_in_jupyterlab(lab, browser, artifacts, atlas_file):
    import saewidgets as sw

    gt = sw.organism_ground_truth()
    animal, colour = gt.feature("animal"), gt.feature("colour")
    lab.write_notebook("atlas.ipynb", [
        "import saewidgets as sw\nmodel, sae = sw.organism()\n"
        f"ex = sw.FeatureExplorer(model, sae, feature={animal}, atlas={atlas_file.name!r}, max_new_tokens=8, "
        "auto_self_explain=False)\nex",
        f"print('STATE', repr(ex.prompt), repr(sw.Atlas.open({atlas_file.name!r}).label({animal})), ex.feature)",
        f"table = sw.FeatureTable({atlas_file.name!r})\ntable",
        "print('PICKED', table.feature)",
        f"saved = ex.save_html('atlas-page.html', features=[{animal}, {colour}], n_scales=3, self_explain=False, progress=False)\n"
        "print('SAVED', saved.path)",
    ])
    context, page, outside, errors = watched_page(browser, 1400, 2600)  # tall: whole panels in shots
    try:
        open_notebook(page, lab.notebook_url("atlas.ipynb"), timeout=TIMEOUT)
        run_cell(page, 0, timeout=TIMEOUT)
        panel = page.locator(".sw-examples")
        page.wait_for_selector(f".sw-examples[data-feature='{animal}'] .sw-example", timeout=TIMEOUT)
        page.wait_for_selector(".sw-generation[data-status=done]", timeout=TIMEOUT)
        page.wait_for_selector(".sw-density svg", timeout=TIMEOUT)
        top = panel.locator(".sw-examples-main > .sw-examples-list .sw-example")
        assert top.count() == 20
        # per-token highlighting: the peak is an animal word (or its tail " soft"), shaded strongest
        peaks = [t.strip() for t in panel.locator(".sw-examples-main > .sw-examples-list .sw-atok-peak").all_text_contents()]
        assert sum(p in gt.concepts["animal"] for p in peaks[:10]) >= 5 and set(peaks[:10]) <= {*gt.concepts["animal"], "soft"}
        shaded = page.evaluate("""() => [...document.querySelectorAll('.sw-examples-list .sw-atok')]
            .filter(s => s.style.backgroundColor).length""")
        assert shaded >= 20
        assert "fires on" in panel.locator(".sw-examples-summary").text_content()
        assert panel.locator(".sw-quantile").count() >= 5
        assert panel.locator(".sw-similar-list").count() == 2  # decoder cosine and co-activation
        assert panel.locator(".sw-similar-list").first.locator(".sw-item").count() == 8
        # the slider spans about twice the measured peak, not +-100
        caption = page.locator(".sw-scale-caption").first.text_content()  # the slider reaches the measured range
        assert re.search(r"reaching ±(20|15|25)\b", caption), caption
        panel.screenshot(path=str(artifacts / "atlas-examples-light.png"))

        # a label (hostile text) goes to the atlas file at once, and shows as text
        box = panel.locator(".sw-label-box")
        box.fill(HOSTILE_LABEL)
        box.press("Enter")
        page.wait_for_function("() => document.querySelector('.sw-label-saved').textContent.includes('saved')",
                               timeout=TIMEOUT)

        # clicking an example makes it the steering prompt (and regenerates)
        before = page.locator(".sw-generation").get_attribute("data-request")
        text = page.evaluate("""() => [...document.querySelectorAll('.sw-examples-main > .sw-examples-list .sw-example')][2]
            .querySelector('.sw-example-text').textContent""")
        top.nth(2).click()
        page.wait_for_function("(old) => { const g = document.querySelector('.sw-generation');"
                               " return g.dataset.status === 'done' && g.dataset.request !== old; }",
                               arg=before, timeout=TIMEOUT)
        shown_prompt = page.locator(".sw-prompt").input_value()
        assert shown_prompt.replace("↵", "\n").strip() and shown_prompt == text.replace("↵", "\n")
        out = run_cell(page, 1, timeout=TIMEOUT)
        assert "STATE" in out and repr(HOSTILE_LABEL) in out and repr(shown_prompt) in out, out

        # search by a concept word finds the concept's feature (the atlas's activating tokens)
        word = gt.concepts["colour"][3]
        page.locator(".sw-picker input[type=search]").press_sequentially(word, delay=20)
        page.wait_for_selector(f".sw-search-results .sw-item-index:text('#{colour}')", timeout=TIMEOUT)
        hits = page.locator(".sw-search-results .sw-item-index").all_text_contents()[:3]
        assert f"#{colour}" in hits

        # the All-features table: opened on demand, sorted, filtered, picks a feature
        page.locator(".sw-all-features > summary").click()
        page.wait_for_selector(".sw-all-features .sw-vbody .sw-vrow", timeout=TIMEOUT)
        count = page.locator(".sw-all-features .sw-table-count").text_content()
        assert "256 of 256" in count
        label_cell = page.locator(f".sw-all-features .sw-vrow[data-feature='{animal}'] .sw-tc-label")
        page.locator(".sw-all-features .sw-table-filter").fill("furry")
        page.wait_for_function("() => document.querySelector('.sw-all-features .sw-table-count').textContent"
                               ".startsWith('1 of')", timeout=TIMEOUT)
        assert label_cell.text_content() == HOSTILE_LABEL  # text, not markup
        page.locator(".sw-all-features .sw-table-filter").fill("max>5")
        page.wait_for_timeout(400)
        page.locator(".sw-all-features .sw-vhead button", has_text="max act").click()
        page.wait_for_timeout(300)
        values = [float(v) for v in page.locator(".sw-all-features .sw-vbody .sw-tc-max_act").all_text_contents()[:8]]
        assert values == sorted(values, reverse=True) and values[-1] > 5
        page.locator(".sw-all-features .sw-table-filter").fill(f"#{colour}")
        page.wait_for_selector(f".sw-all-features .sw-vrow[data-feature='{colour}']", timeout=TIMEOUT)
        page.locator(f".sw-all-features .sw-vrow[data-feature='{colour}']").click()
        page.wait_for_selector(f".sw-examples[data-feature='{colour}'] .sw-example", timeout=TIMEOUT)
        assert page.locator(".sw-label-box").input_value() == ""
        page.locator(".sw-all-features .sw-table-filter").fill("")
        page.wait_for_timeout(300)
        page.locator(".sw-explorer").screenshot(path=str(artifacts / "atlas-explorer-light.png"))

        # scroll a long table: rows are drawn as they come into sight
        viewport = page.locator(".sw-all-features .sw-viewport")
        viewport.evaluate("(v) => { v.scrollTop = v.scrollHeight; v.dispatchEvent(new Event('scroll')); }")
        page.wait_for_timeout(300)
        assert page.locator(".sw-all-features .sw-vbody .sw-vrow").count() < 60

        # the table as its own widget; a click sets its `feature`
        run_cell(page, 2, timeout=TIMEOUT)
        page.wait_for_selector(".sw-table-widget .sw-vrow", timeout=TIMEOUT)
        page.locator(".sw-table-widget .sw-table-filter").fill(f"#{animal}")
        page.wait_for_selector(f".sw-table-widget .sw-vrow[data-feature='{animal}']", timeout=TIMEOUT)
        page.locator(f".sw-table-widget .sw-vrow[data-feature='{animal}']").click()
        out = run_cell(page, 3, timeout=TIMEOUT)
        assert f"PICKED {animal}" in out, out
        page.locator(".sw-table-widget").screenshot(path=str(artifacts / "atlas-table-light.png"))

        assert page.locator(".sw-explorer img, .sw-explorer b, .sw-table-widget img").count() == 0
        assert page.evaluate("() => window.__swXss") is None

        # dark theme
        page.locator(f".sw-search-results .sw-item-index:text('#{colour}')").first.click()
        _theme(page, "JupyterLab Dark")
        background = page.evaluate("() => getComputedStyle(document.querySelector('.sw-root')).backgroundColor")
        assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")
        page.wait_for_selector(".sw-density svg", timeout=TIMEOUT)
        panel.screenshot(path=str(artifacts / "atlas-examples-dark.png"))
        page.locator(".sw-explorer").screenshot(path=str(artifacts / "atlas-explorer-dark.png"))
        page.locator(".sw-table-widget").screenshot(path=str(artifacts / "atlas-table-dark.png"))
        _theme(page, "JupyterLab Light")

        # a standalone page (no kernel) carries the examples of the features it shows
        out = run_cell(page, 4, timeout=TIMEOUT)
        assert "SAVED" in out, out
        offline = context.new_page()
        offline.on("pageerror", lambda e: errors.append(str(e)))
        offline.goto((lab.root / "atlas-page.html").as_uri(), wait_until="load")
        offline.wait_for_selector(".sw-examples .sw-example", timeout=TIMEOUT)
        offline.wait_for_selector(".sw-density svg", timeout=TIMEOUT)
        assert offline.locator(".sw-examples-main > .sw-examples-list .sw-example").count() == 20
        shown = offline.locator(".sw-examples").get_attribute("data-feature")
        other = colour if shown == str(animal) else animal
        offline.locator(".sw-index").fill(str(other))
        offline.locator(".sw-index").press("Enter")
        offline.wait_for_selector(f".sw-examples[data-feature='{other}'] .sw-example", timeout=TIMEOUT)
        offline.locator(".sw-examples").screenshot(path=str(artifacts / "atlas-standalone-page.png"))
        offline.close()
    finally:
        page.screenshot(path=str(artifacts / "atlas-last.png"), full_page=True)
        context.close()
    assert not outside, f"requests left the machine: {outside[:5]}"
    assert not [e for e in errors if "saewidgets" in e or "sw-" in e], errors


def test_feature_table_with_65k_rows(lab, browser, artifacts, tmp_path_factory):
    """sw.FeatureTable on an atlas of 65,536 features: every row sortable and filterable, only the
    rows in sight in the DOM. The timings are printed (see benchmarks/README.md), not asserted."""
    import saewidgets as sw
    from tiny_models import random_sae, tiny_model

    model = tiny_model("gpt2", d_model=32, n_layers=3)
    sae = random_sae(32, 65536, layer=1, seed=1)
    docs = [f"The quick brown fox {i} jumps over the lazy dog {i * 7}." for i in range(60)]
    path = lab.root / "wide-atlas.sqlite"
    atlas = sw.collect_activations(model, sae, docs, path, batch_size=4, seq_len=32, progress=False)
    for f in (7, 30000, 65535):
        atlas.set_label(f, f"wide label {f}")
    atlas.close()
    lab.write_notebook("table.ipynb", [f"import saewidgets as sw\ntable = sw.FeatureTable({path.name!r})\ntable"])
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    page = context.new_page()
    try:
        open_notebook(page, lab.notebook_url("table.ipynb"), timeout=TIMEOUT)
        run_cell(page, 0, timeout=TIMEOUT)
        page.wait_for_selector(".sw-table-widget .sw-vrow", timeout=TIMEOUT)
        assert page.locator(".sw-table-widget .sw-table-count").text_content() == "65,536 of 65,536 features"
        timings = page.evaluate("""async () => {
            const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
            const root = document.querySelector('.sw-table-widget');
            const out = {};
            let t = performance.now();
            [...root.querySelectorAll('.sw-vhead button')].find((b) => b.textContent.startsWith('max act')).click();
            await frame(); out.sort_ms = performance.now() - t;
            const viewport = root.querySelector('.sw-viewport');
            const steps = [];
            for (let i = 1; i <= 20; i++) {
                t = performance.now();
                viewport.scrollTop = viewport.scrollHeight * i / 20;
                viewport.dispatchEvent(new Event('scroll'));
                await frame(); steps.push(performance.now() - t);
            }
            out.scroll_ms_max = Math.max(...steps);
            out.rows_in_dom = root.querySelectorAll('.sw-vbody .sw-vrow').length;
            const filter = root.querySelector('.sw-table-filter');
            t = performance.now();
            filter.value = 'wide'; filter.dispatchEvent(new Event('input'));
            while (!root.querySelector('.sw-table-count').textContent.startsWith('3 of')) await frame();
            out.filter_ms = performance.now() - t - 120;  // less the typing debounce
            return out;
        }""")
        print("65k-row table timings (ms):", timings)
        assert timings["rows_in_dom"] < 60
        labels = page.locator(".sw-table-widget .sw-vbody .sw-tc-label").all_text_contents()
        assert sorted(labels) == ["wide label 30000", "wide label 65535", "wide label 7"]
        page.locator(".sw-table-widget").screenshot(path=str(artifacts / "atlas-table-65k.png"))
    finally:
        context.close()
