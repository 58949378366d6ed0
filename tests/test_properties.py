"""Property-based checks of the public entry points: every input either works or raises the
package's ValueError/TypeError with a message, never another exception, never a NaN result.
(``load_sae`` has its own suite: tests/test_sae_properties.py.)"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import saewidgets as sw
from saewidgets.engine import Decoding
from tiny_models import random_sae, tiny_model

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
MODEL = tiny_model("gpt2")
SAE = random_sae(32, 64, layer=1)
BINDING = sw.bind(MODEL, SAE)

numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.booleans(), st.none(), st.text(max_size=3))
prompts = st.one_of(st.text(max_size=40), st.lists(st.text(max_size=12), max_size=3), st.integers(), st.none())
features = st.one_of(st.none(), st.dictionaries(st.one_of(st.integers(-100, 100), st.text(max_size=2)), numbers,
                                                max_size=3), st.lists(st.integers(0, 70), max_size=2))


def _fine(error: Exception) -> bool:
    return isinstance(error, (ValueError, TypeError)) and bool(str(error).strip())


@FAST
@given(max_new_tokens=numbers, temperature=numbers, top_p=numbers, seed=numbers, stop=st.one_of(
    st.none(), st.text(max_size=5), st.lists(st.one_of(st.text(max_size=80), st.integers()), max_size=20)))
def test_decoding_accepts_or_explains(max_new_tokens, temperature, top_p, seed, stop):
    try:
        d = Decoding(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, stop=stop)
    except Exception as error:  # noqa: BLE001
        assert _fine(error), repr(error)
        return
    assert 1 <= d.max_new_tokens <= 512 and math.isfinite(d.temperature) and 0 <= d.seed < 2**53


@FAST
@given(prompt=prompts, feats=features, scale=st.floats(allow_nan=True, allow_infinity=True, width=32),
       max_new_tokens=st.one_of(st.integers(-3, 140), st.floats()), temperature=st.one_of(st.floats(-1, 3), st.just(0.0)),
       seed=st.one_of(st.integers(-5, 2**65), st.floats()))
def test_steer_works_or_explains_and_never_returns_nan(prompt, feats, scale, max_new_tokens, temperature, seed):
    directions = None if not math.isfinite(scale) or abs(scale) > 1e3 else [(SAE.W_dec[0].detach(), scale)]
    try:
        result = sw.steer(BINDING, prompt=prompt, features=feats, directions=directions,
                          max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, progress=False)
    except Exception as error:  # noqa: BLE001
        assert _fine(error), repr(error)
        return
    for run in result.baseline_runs + result.steered_runs:
        assert all(math.isfinite(lp) for lp in run.logprobs)
        assert len(run.ids) <= max_new_tokens


@FAST
@given(feature=st.one_of(st.integers(-3, 70), st.floats(), st.text(max_size=2), st.lists(st.integers(0, 70), max_size=2)),
       scales=st.one_of(st.none(), st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4)),
       layer=st.one_of(st.none(), st.integers(-1, 4)), max_new_tokens=st.one_of(st.integers(-1, 4), st.floats()))
def test_self_explain_works_or_explains(feature, scales, layer, max_new_tokens):
    try:
        df = sw.self_explain(MODEL, SAE, feature, scales=scales, layer=layer, max_new_tokens=max_new_tokens,
                             progress=False, batch_size=64)
    except Exception as error:  # noqa: BLE001
        assert _fine(error), repr(error)
        return
    for column in ("self_similarity", "entropy", "cross_entropy"):
        assert df[column].notna().all()


EXPLORER = sw.FeatureExplorer(BINDING, feature=3, max_new_tokens=2, auto_self_explain=False)
TRAITS = ("feature", "scale", "prompt", "max_new_tokens", "temperature", "seed", "token_class", "rank_by", "steering")
values = st.one_of(numbers, st.text(max_size=6), st.lists(st.dictionaries(st.sampled_from(["feature", "scale"]),
                                                                          st.one_of(st.integers(-2, 70), st.floats())),
                                                          max_size=2))


@FAST
@given(name=st.sampled_from(TRAITS), value=values, from_view=st.booleans())
def test_explorer_traits_work_or_explain_and_keep_a_good_state(name, value, from_view):
    before = getattr(EXPLORER, name)
    EXPLORER.error = ""
    try:
        if from_view:
            EXPLORER.set_state({name: value})
        else:
            setattr(EXPLORER, name, value)
    except Exception as error:  # noqa: BLE001
        assert not from_view, f"a change from the view raised {error!r}"
        assert _fine(error), repr(error)
        assert getattr(EXPLORER, name) == before
        return
    if EXPLORER.error and name != "max_new_tokens":  # (a context error is about the request, not the value)
        assert getattr(EXPLORER, name) == before
    generation = EXPLORER.generation
    for side in ("baseline", "steered"):
        assert all(lp is None or math.isfinite(lp) for lp in generation.get(side, {}).get("logprobs", []))


def teardown_module():
    EXPLORER.close()


@pytest.mark.parametrize("scale", [1e30, -1e38])
def test_overflowing_scales_are_refused_before_a_run(scale):
    with pytest.raises(ValueError, match="beyond"):
        sw.steer(BINDING, prompt="Hi", features={3: scale}, max_new_tokens=2)
    with pytest.raises(ValueError, match="within"):
        sw.self_explain(MODEL, SAE, 3, scales=[scale])
    huge = torch.full((32,), 1e38)
    with pytest.raises(ValueError, match="inf/NaN|overflow"):
        sw.steer(BINDING, prompt="Hi", directions=huge, max_new_tokens=2)
