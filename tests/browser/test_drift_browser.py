"""A standalone page shows what sw.steer gives: pages of several settings (features, a raw direction,
several features, prepend_bos on and off, greedy and sampled) opened in Chromium with the network
cut; the slider is moved to every precomputed scale and each rendered steered token list is
compared with sw.steer's at that scale (for the same token ids, the view's token strings)."""

from __future__ import annotations

import pytest
import torch

import saewidgets as sw
from tiny_models import random_sae, tiny_model

pytestmark = [pytest.mark.browser, pytest.mark.slow]
N = 6


def _settings():
    model, sae = sw.organism()
    truth = sw.organism_ground_truth()
    tiny = tiny_model("gpt2")
    plain = random_sae(32, 64, layer=1, seed=2)
    g = torch.Generator().manual_seed(5)
    return [
        dict(model=model, sae=sae, feature=truth.feature("food"), prompt="Yesterday I saw", temperature=0.0, seed=0,
             scales=[-6.0, -1.5, 0.0, 2.0, 7.0], steering=[]),
        dict(model=model, sae=sae, feature=truth.feature("colour"), prompt="The word", temperature=0.8, seed=11,
             scales=[-3.0, 0.0, 3.0, 9.0], steering=[(truth.feature("animal"), 2.5)]),
        dict(model=model, sae=sae, direction=sw.Direction(torch.randn(128, generator=g), name="probe"),
             prompt="She told me about the", temperature=0.0, seed=0, scales=[-8.0, 0.0, 4.0, 12.0], steering=[]),
        dict(model=tiny, sae=plain, feature=7, prompt="Hello", temperature=0.8, seed=3, scales=[-4.0, 0.0, 5.0],
             steering=[]),
    ]


def _expected(s, scale, token):
    features = {} if "direction" in s else {s["feature"]: scale}
    for f, v in s["steering"]:
        features[f] = features.get(f, 0.0) + v
    directions = [(s["direction"], scale)] if "direction" in s else None
    r = sw.steer(s["model"], s["sae"], s["prompt"], features=features or None, directions=directions, max_new_tokens=N,
                 temperature=s["temperature"], seed=s["seed"], progress=False)
    return [token(t) for t in r.steered_ids]


def test_standalone_pages_show_sw_steer(browser, tmp_path, artifacts):
    for i, s in enumerate(_settings()):
        explorer = sw.FeatureExplorer(s["model"], s["sae"], feature=s.get("feature", 0), direction=s.get("direction"),
                                      prompt=s["prompt"], max_new_tokens=N, temperature=s["temperature"],
                                      seed=s["seed"], steering=s["steering"], auto_self_explain=False,
                                      scale=s["scales"][0])
        try:
            path = tmp_path / f"drift{i}.html"
            explorer.save_html(path, scales=s["scales"], token_classes="current", self_explain=False, progress=False)
            token = explorer.session.token_string
            wanted = {scale: _expected(s, scale, token) for scale in s["scales"]}
        finally:
            explorer.close()
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        outside: list[str] = []
        context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:", "blob:"))
                      else (outside.append(r.request.url), r.abort()))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(path.as_uri())
            root = page.locator(".sw-root").first
            root.locator(".sw-snapshot-note[data-offline='true']").wait_for(timeout=20_000)
            box = root.locator(".sw-steering .sw-scale-box").first
            for scale in s["scales"]:
                box.fill(str(scale))
                box.press("Enter")
                page.wait_for_function("([el, s]) => Number(el.value) === s", arg=[box.element_handle(), scale],
                                       timeout=5_000)
                shown = root.locator(".sw-steered .sw-text .sw-tok").evaluate_all("els => els.map(e => e.textContent)")
                assert shown == wanted[scale], (i, scale)
            root.screenshot(path=str(artifacts / f"drift-{i}.png"))
        finally:
            context.close()
        assert not outside and not errors, (outside, errors)
