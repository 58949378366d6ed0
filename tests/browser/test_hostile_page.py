"""An exported page whose every text field is hostile (tests/hostile.py), in Chromium with the network
cut: no payload breaks out of the page's script elements (their count is unchanged, no global is
set, the CSP blocks nothing), each field shows literally, hovered vega tooltips show hostile class
names and explanations as text, and the slider shows exactly the snapshot's row at each grid scale."""

from __future__ import annotations

import json

import pytest

import saewidgets as sw
from hostile import CLASS, hostile, hostile_explorer, visible
from pages import assert_side_matches, hover_tooltip, offline_context, rendered_side, walk_grid
from saewidgets.export import save_gallery
from saewidgets.export.packing import unpack
from tiny_models import random_sae, tiny_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    binding = sw.bind(tiny_model("gpt2"), random_sae(32, 64, layer=1))
    ex = hostile_explorer(binding)
    try:
        ex.save_html(folder / "hostile.html", title=hostile("page-title"))
        save_gallery(ex, [3, 5], folder / "gallery.html", title=hostile("page-title"))
        snapshot = json.loads(json.dumps(unpack(ex.precomputed, ex.precomputed_data)))
    finally:
        ex.close()
    return folder, snapshot


def _open(browser, path):
    context, outside, errors = offline_context(browser)
    page = context.new_page()
    page.goto(path.as_uri())
    page.locator(".sw-root .sw-chart svg").first.wait_for(timeout=30_000)
    return context, page, outside, errors


def _assert_nothing_ran(page, n_scripts: int) -> None:
    assert page.evaluate("() => document.querySelectorAll('script').length") == n_scripts
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert page.evaluate("() => window.__cspViolations") == []
    assert page.locator(".sw-root img, .sw-root b, #vg-tooltip-element img, #vg-tooltip-element b").count() == 0


def test_hostile_page_shows_every_field_as_text(saved, browser, artifacts):
    folder, snapshot = saved
    context, page, outside, errors = _open(browser, folder / "hostile.html")
    try:
        root = page.locator(".sw-root").first
        _assert_nothing_ran(page, 4)  # the view, the module, its styles, the bootstrap
        assert page.title() == hostile("page-title")
        assert page.locator("header.saewidgets-page h1").text_content() == hostile("page-title")
        assert root.locator(".sw-header-title").text_content() == hostile("title")
        assert root.locator(".sw-explanation").text_content() == hostile("explanation")
        assert root.locator(".sw-baseline .sw-prompt-text").text_content() == hostile("prompt")
        assert rendered_side(root, "steered")[0]["token"] == hostile("token")
        assert rendered_side(root, "baseline")[0]["token"] == hostile("baseline-token")
        top = root.locator(".sw-top-tokens td.sw-token")
        assert top.first.text_content() == visible(hostile("top-token"))
        assert top.first.get_attribute("title") == json.dumps(hostile("top-token"), ensure_ascii=False)
        assert visible(hostile("bottom-token")) in top.all_text_contents()
        assert root.locator(".sw-histogram select option").first.text_content() == CLASS
        assert root.locator(".sw-ranking .sw-item-label").first.text_content() == hostile("label")
        assert hostile("self-explanation") in root.locator(".sw-se-current").text_content()
        best = root.locator(".sw-se-best li").all_text_contents()
        assert 1 <= len(best) <= 3 and all(t.startswith(hostile("self-explanation")) for t in best), best
        assert len(set(best)) == len(best)
        legend = root.locator(".sw-chart svg").first.text_content()
        assert CLASS[:30] in legend  # vega draws the class name as SVG text (cut to the legend's width)
        root.screenshot(path=str(artifacts / "hostile-page.png"))
        _assert_nothing_ran(page, 4)
        assert outside == [] and errors == []
    finally:
        context.close()


def test_hovered_tooltips_show_hostile_text_literally(saved, browser):
    folder, _ = saved
    context, page, outside, errors = _open(browser, folder / "hostile.html")
    try:
        root = page.locator(".sw-root").first
        bars = root.locator(".sw-chart svg g.mark-rect path")
        assert bars.count() > 0
        text = hover_tooltip(page, bars, CLASS)  # a bar of the hostile class (or of "not <class>")
        assert CLASS in text
        tip = page.locator("#vg-tooltip-element")
        assert tip.locator("img, b, script").count() == 0
        root.locator(".sw-se-chart svg").first.wait_for(timeout=20_000)
        points = root.locator(".sw-se-chart svg g.mark-symbol path")
        assert points.count() > 0
        text = hover_tooltip(page, points, hostile("self-explanation"))  # the explanation at that scale
        assert hostile("self-explanation") in text
        assert tip.locator("img, b, script").count() == 0
        _assert_nothing_ran(page, 4)
        assert outside == [] and errors == []
    finally:
        context.close()


def test_the_slider_shows_the_snapshots_row_at_each_grid_scale(saved, browser):
    """Every grid scale, typed off the grid: the box snaps to it and the steered column shows that
    row of the snapshot, token by token, with its float16 log-probabilities; the baseline stays."""
    folder, snapshot = saved
    context, page, outside, errors = _open(browser, folder / "hostile.html")
    try:
        root = page.locator(".sw-root").first
        root.locator(".sw-snapshot-note[data-offline='true']").wait_for(timeout=20_000)
        for feature in (3, 5):
            if feature != 3:
                index = root.locator(".sw-index")
                index.fill(str(feature))
                index.press("Enter")
                page.wait_for_function(f"() => document.querySelector('.sw-title').textContent === 'Feature {feature}'")
            item = snapshot["items"][str(feature)]
            baseline = snapshot["baseline"]

            def check(i, item=item, feature=feature, baseline=baseline):
                where = f"feature {feature} at scale {item['scales'][i]}"
                side = item["steered"][i]
                assert_side_matches(rendered_side(root, "steered"), side["tokens"], side["logprobs"], where)
                assert_side_matches(rendered_side(root, "baseline"), baseline["tokens"], baseline["logprobs"], where)

            walk_grid(page, root, item["scales"], item["traits"]["scale_range"]["max"], check)
        _assert_nothing_ran(page, 4)
        assert outside == [] and errors == []
    finally:
        context.close()


def test_hostile_gallery_keeps_its_scripts(saved, browser):
    folder, _ = saved
    context, outside, errors = offline_context(browser)
    page = context.new_page()
    try:
        page.goto((folder / "gallery.html").as_uri())
        page.wait_for_function("() => document.querySelectorAll('.sw-root .sw-chart svg').length === 2", timeout=30_000)
        _assert_nothing_ran(page, 5)  # two views
        headings = page.locator("section.saewidgets-section > h2").all_text_contents()
        assert headings == [f"Feature {f} · {hostile('explanation')}" for f in (3, 5)]
        assert page.locator("nav.saewidgets-toc a").all_text_contents() == headings
        assert outside == [] and errors == []
    finally:
        context.close()
