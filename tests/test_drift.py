"""What a shared page shows is what the live view shows is what sw.steer gives (issue: drift).

For 40 seeded random settings (one feature or several, raw directions, negative scales, several
prompts, prepend_bos on and off, greedy and sampled), the steered and baseline texts of the live
explorer and of its snapshot (what saved notebooks and standalone pages show) equal sw.steer's.
The standalone page itself is read back in Chromium in tests/browser/test_drift_browser.py.
"""

from __future__ import annotations

import random

import pytest
import torch

import saewidgets as sw
from saewidgets.export.packing import unpack
from tiny_models import random_sae, tiny_model

PROMPTS = ["The word", "Yesterday I saw", "She told me about the", 'Repeat "red"']
N = 6


@pytest.fixture(scope="module")
def models():
    organism = sw.organism()  # its SAE asks for BOS
    tiny = tiny_model("gpt2")
    plain = random_sae(32, 64, layer=1, seed=2)  # no prepend_bos
    with_bos = random_sae(32, 64, layer=2, seed=3)
    with_bos.metadata["prepend_bos"] = True
    return [organism, (tiny, plain), (tiny, with_bos)]


def settings(n: int = 40, seed: int = 0):
    rng = random.Random(seed)
    for i in range(n):
        yield dict(
            pair=i % 3,
            prompt=rng.choice(PROMPTS),
            kind=rng.choice(["feature", "feature", "several", "direction"]),
            scale=rng.choice([-1, 1]) * rng.uniform(0.5, 12.0),
            temperature=rng.choice([0.0, 0.0, 0.8]),
            seed=rng.randrange(0, 2**31),
            feature=rng.randrange(0, 64),
            extra=(rng.randrange(0, 64), rng.uniform(-6, 6)),
            vector_seed=rng.randrange(0, 1000),
        )


def text_of(tokenizer, side: dict) -> list[str]:
    return list(side["tokens"])


def expected(model, sae, s, direction=None, token=None):
    features = {} if direction is not None else {s["feature"]: s["scale"]}
    if s["kind"] == "several":
        features[s["extra"][0]] = features.get(s["extra"][0], 0.0) + s["extra"][1]
    directions = None if direction is None else [(direction, s["scale"])]
    result = sw.steer(model, sae, s["prompt"], features=features or None, directions=directions, max_new_tokens=N,
                      temperature=s["temperature"], seed=s["seed"], progress=False)
    return [token(t) for t in result.baseline_ids], [token(t) for t in result.steered_ids]


@pytest.mark.slow
def test_live_explorer_and_snapshot_equal_sw_steer(models):
    checked = snapshots = 0
    for i, s in enumerate(settings()):
        model, sae = models[s["pair"]]
        d_model = sae.d_in
        direction = None
        if s["kind"] == "direction":
            g = torch.Generator().manual_seed(s["vector_seed"])
            direction = sw.Direction(torch.randn(d_model, generator=g), name=f"v{s['vector_seed']}")
        feature = s["feature"] % sae.d_sae
        s = {**s, "feature": feature, "extra": (s["extra"][0] % sae.d_sae, s["extra"][1])}
        steering = [(s["extra"][0], s["extra"][1])] if s["kind"] == "several" and s["extra"][0] != feature else []
        if s["kind"] == "several" and not steering:
            s = {**s, "kind": "feature"}
        explorer = sw.FeatureExplorer(model, sae, feature=feature, direction=direction, prompt=s["prompt"],
                                      max_new_tokens=N, temperature=s["temperature"], seed=s["seed"],
                                      steering=steering, auto_self_explain=False, scale=s["scale"])
        try:
            token = explorer.session.token_string  # the view's token strings, for the same ids
            base, steered = expected(model, sae, s, direction, token)
            live = explorer.generation
            assert live["status"] == "done", live
            assert (text_of(model.tokenizer, live["baseline"]), text_of(model.tokenizer, live["steered"])) == (base, steered), s
            checked += 1
            if i % 4:
                continue
            # every 4th setting: its snapshot, a grid with the current scale and its negative
            grid = sorted({round(s["scale"], 6), round(-s["scale"], 6), 0.0})
            explorer.scale = grid[0]
            explorer.snapshot(scales=grid, token_classes="current", self_explain=False, progress=False)
            items = unpack(explorer.precomputed["items"], explorer.precomputed_data)
            item = items[str(explorer.feature)]
            snap_base = list(unpack(explorer.precomputed["baseline"], explorer.precomputed_data)["tokens"])
            for scale, side in zip(item["scales"], item["steered"]):
                want_base, want = expected(model, sae, {**s, "scale": scale}, direction, token)
                assert snap_base == want_base, (s, scale)
                assert list(side["tokens"]) == want, (s, scale)
                explorer.scale = scale  # and the live view at the same grid scale
                assert text_of(model.tokenizer, explorer.generation["steered"]) == want, (s, scale)
            snapshots += 1
        finally:
            explorer.close()
    assert checked == 40 and snapshots == 10
