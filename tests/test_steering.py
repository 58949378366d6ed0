"""sw.steer: steering every position and every generated token, checked against plain PyTorch hooks."""

from __future__ import annotations

import math

import pytest
import torch

import saewidgets as sw
from tiny_models import random_sae, tiny_model
from tools.references.steering_hooks import hooked_generate

N = 6  # new tokens per test run
PROMPTS = ["The quick brown fox", "Hello", "Red, green and"]


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def family(request):
    return request.param


@pytest.fixture(scope="module")
def gpt2():
    return tiny_model("gpt2")


def binding_for(model, layer=1, site="resid_pre", d_sae=64):
    return sw.bind(model, random_sae(model._module.config.hidden_size, d_sae, layer, site))


# -- reference: plain PyTorch hooks on the transformers module + HF generate ------------------

def reference_generate(model, layer, site, prompts, vector, n, prompt_only=False):
    """Greedy HF generate of [baselines..., steered...] with ``vector`` added by a torch hook
    (tools/references/steering_hooks.py). ``prompt_only`` reproduces the SAELens tutorial bug (skip
    forward calls of length 1). Returns (new ids, log-probs of the chosen tokens, residual lengths
    the hook edited)."""
    hf = model._module
    block = sw.bind(model, random_sae(vector.shape[0], 8, layer, site)).layout.blocks_of(hf)[layer]
    rows = len(prompts)
    deltas = torch.zeros(2 * rows, vector.shape[0])
    deltas[rows:] = vector
    enc = model.tokenizer(prompts * 2, return_tensors="pt", padding=True)
    run = hooked_generate(hf, block, enc["input_ids"], enc["attention_mask"], deltas, n, site=site,
                          prompt_only=prompt_only, pad_token_id=model.tokenizer.pad_token_id)
    return run.ids, run.logprobs, [e for e in run.edited]


def rows_of(result, variant):
    ids = getattr(result, f"{variant}_ids")
    lps = getattr(result, f"{variant}_logprobs")
    return (ids, lps) if ids and isinstance(ids[0], list) else ([ids], [lps])


@pytest.mark.parametrize("site", ["resid_pre", "resid_post"])
def test_steering_reaches_every_generated_token_like_pytorch_hooks(family, site):
    model = tiny_model(family)
    b = binding_for(model, layer=1, site=site)
    features = {3: 6.0, 10: -4.0}
    result = sw.steer(b, prompt=PROMPTS, features=features, max_new_tokens=N)
    vector = 6.0 * b.sae.W_dec[3] - 4.0 * b.sae.W_dec[10]
    torch.testing.assert_close(result.vector, vector)

    ref_ids, ref_lps, edited = reference_generate(model, 1, site, PROMPTS, vector, N)
    assert edited[0] > 1 and edited[1:] == [1] * (N - 1)  # the hook edited the prompt and every step
    k = len(PROMPTS)
    for variant, first in (("baseline", 0), ("steered", k)):
        ids, lps = rows_of(result, variant)
        for p in range(k):
            n = len(ids[p])
            assert ids[p] == ref_ids[first + p, :n].tolist()
            torch.testing.assert_close(torch.tensor(lps[p]), ref_lps[first + p, :n], atol=1e-5, rtol=1e-5)

    # Steering only the prompt (the length-1 bug) gives other log-probs on generated tokens.
    _, bug_lps, bug_edited = reference_generate(model, 1, site, PROMPTS, vector, N, prompt_only=True)
    assert bug_edited == [edited[0]]
    steered_ids, steered_lps = rows_of(result, "steered")
    later = [lp for p in range(k) for lp in zip(steered_lps[p][1:], bug_lps[k + p, 1:len(steered_lps[p])])]
    assert later and max(abs(a - b) for a, b in later) > 1e-3


def test_scale_zero_reproduces_the_baseline(gpt2):
    b = binding_for(gpt2)
    for temperature in (0.0, 1.0):
        r = sw.steer(b, prompt=PROMPTS, features={3: 0.0, 7: 0.0}, max_new_tokens=N, temperature=temperature)
        assert r.steered_ids == r.baseline_ids and r.steered == r.baseline
        assert r.steered_logprobs == r.baseline_logprobs
        assert not r.vector.any()
    steered = sw.steer(b, prompt=PROMPTS, features={3: 8.0}, max_new_tokens=N)
    assert steered.steered_ids != steered.baseline_ids  # and a real scale does change something


@pytest.mark.slow
def test_several_features_add_up(gpt2):
    b = binding_for(gpt2)
    W = b.sae.W_dec
    by_features = sw.steer(b, prompt=PROMPTS, features={3: 5.0, 9: -2.5}, max_new_tokens=N)
    direction = 5.0 * W[3] - 2.5 * W[9]
    # a d_model vector, a k x d_model array, a list of vectors and/or (vector, scale) pairs
    forms = [direction, direction[None].numpy(), [5.0 * W[3], (W[9], -2.5)], [(direction / 2, 2.0)]]
    for form in forms:
        r = sw.steer(b, prompt=PROMPTS, directions=form, max_new_tokens=N)
        assert r.steered_ids == by_features.steered_ids
        assert r.baseline_ids == by_features.baseline_ids
        for a, c in zip(r.steered_logprobs, by_features.steered_logprobs):
            torch.testing.assert_close(torch.tensor(a), torch.tensor(c), atol=1e-5, rtol=1e-5)
    mixed = sw.steer(b, prompt=PROMPTS, features={3: 5.0}, directions=[(W[9], -2.5)], max_new_tokens=N)
    assert mixed.steered_ids == by_features.steered_ids
    assert mixed.features == {3: 5.0} and len(mixed.directions) == 1


def test_batched_prompts_match_one_at_a_time(gpt2):
    b = binding_for(gpt2)
    together = sw.steer(b, prompt=PROMPTS, features={5: 7.0}, max_new_tokens=N)
    assert together.prompts == PROMPTS and len(together.steered) == len(PROMPTS)
    for p, prompt in enumerate(PROMPTS):
        alone = sw.steer(b, prompt=prompt, features={5: 7.0}, max_new_tokens=N)
        assert isinstance(alone.steered, str) and isinstance(alone.steered_ids[0], int)
        assert alone.steered_ids == together.steered_ids[p]
        assert alone.baseline_ids == together.baseline_ids[p]
        assert alone.steered == together.steered[p]
        torch.testing.assert_close(torch.tensor(alone.steered_logprobs), torch.tensor(together.steered_logprobs[p]),
                                   atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_sampling_is_reproducible_and_shares_noise(gpt2):
    b = binding_for(gpt2)
    kw = dict(prompt=PROMPTS, features={3: 3.0}, max_new_tokens=N, temperature=1.0)
    first = sw.steer(b, seed=7, **kw)
    again = sw.steer(b, seed=7, **kw)
    other = sw.steer(b, seed=8, **kw)
    assert first.steered_ids == again.steered_ids and first.baseline_ids == again.baseline_ids
    assert first.steered_ids != other.steered_ids
    greedy = sw.steer(b, prompt=PROMPTS, features={3: 3.0}, max_new_tokens=N)
    assert first.baseline_ids != greedy.baseline_ids  # it did sample
    # top_p keeps only the most likely tokens: at a tiny top_p sampling is greedy.
    nucleus = sw.steer(b, seed=7, top_p=1e-6, **kw)
    assert nucleus.steered_ids == greedy.steered_ids and nucleus.baseline_ids == greedy.baseline_ids
    # Each row's draw does not depend on its batch neighbours.
    alone = sw.steer(b, seed=7, **{**kw, "prompt": PROMPTS[1]})
    assert alone.steered_ids == first.steered_ids[1] and alone.baseline_ids == first.baseline_ids[1]


@pytest.mark.slow
def test_remote_local_gives_the_local_result_and_replays_steps(gpt2):
    b = binding_for(gpt2)
    steps = []
    local = sw.steer(b, prompt=PROMPTS, features={3: 6.0}, max_new_tokens=N, temperature=0.7, seed=1)
    remote = sw.steer(b, prompt=PROMPTS, features={3: 6.0}, max_new_tokens=N, temperature=0.7, seed=1,
                      remote="local", on_step=steps.append)
    assert remote.steered_ids == local.steered_ids and remote.baseline_ids == local.baseline_ids
    assert [s.step for s in steps] == list(range(N))


def test_on_step_streams_while_generating(gpt2):
    b = binding_for(gpt2)
    calls = []
    forwards = []
    handle = gpt2._module.lm_head.register_forward_hook(lambda *a: forwards.append(1))
    try:
        def on_step(s):
            calls.append((s, len(forwards)))
        r = sw.steer(b, prompt=PROMPTS, features={3: 6.0}, max_new_tokens=N, on_step=on_step)
    finally:
        handle.remove()
    assert [s.step for s, _ in calls] == list(range(N))
    # Called inside the run: at step s, s forwards of the LM head have finished and the s-th is under way.
    assert [seen for _, seen in calls] == list(range(N))
    for p in range(len(PROMPTS)):
        streamed = [s.steered_ids[p] for s, _ in calls if s.steered_ids[p] is not None]
        assert streamed == r.steered_ids[p]
        streamed = [s.baseline_logprobs[p] for s, _ in calls if s.baseline_logprobs[p] is not None]
        assert streamed == pytest.approx(r.baseline_logprobs[p])


def test_continuations_stop_at_eos(gpt2):
    """A resid_post direction along EOS's unembedding makes the steered rows end at once."""
    layer = gpt2._module.config.n_layer - 1
    b = binding_for(gpt2, layer=layer, site="resid_post")
    eos = gpt2.tokenizer.eos_token_id
    steps = []
    r = sw.steer(b, prompt=PROMPTS[:2], directions=[(b.unembedding()[:, eos], 200.0)], max_new_tokens=N,
                 on_step=steps.append)
    assert r.steered_ids == [[eos], [eos]] and r.steered == ["", ""]
    vocab = gpt2._module.config.vocab_size
    assert len(r.steered_logprobs[0]) == 1 and r.steered_logprobs[0][0] > -math.log(vocab)  # above uniform
    assert all(s.steered_ids == [None, None] for s in steps[1:]) and steps[0].steered_ids == [eos, eos]
    assert all(eos not in ids[:-1] for ids in r.baseline_ids)
    frame = r.to_frame()
    steered = frame[frame.variant == "steered"]
    assert len(steered) == 2 and (steered.token == gpt2.tokenizer.eos_token).all()


def test_to_frame_has_one_row_per_token(gpt2):
    b = binding_for(gpt2)
    r = sw.steer(b, prompt=PROMPTS, features={3: 6.0}, max_new_tokens=N)
    frame = r.to_frame()
    assert list(frame.columns) == ["prompt_index", "prompt", "variant", "position", "token_id", "token", "logprob"]
    assert len(frame) == sum(len(x) for x in r.baseline_ids) + sum(len(x) for x in r.steered_ids)
    row = frame[(frame.variant == "steered") & (frame.prompt_index == 1)]
    assert row.token_id.tolist() == r.steered_ids[1]
    assert "".join(row.token) == r.steered[1] + ("" if len(r.steered_ids[1]) == N else gpt2.tokenizer.eos_token)
    assert row.logprob.tolist() == pytest.approx(r.steered_logprobs[1])
    assert (frame.logprob <= 0).all()
    assert "SteeringResult" in repr(r)


@pytest.mark.slow
def test_binding_forms_and_hook_override(gpt2):
    sae = random_sae(32, 64, 1, "resid_pre")
    a = sw.steer(gpt2, sae, "Hello", features={3: 6.0}, max_new_tokens=N)
    b = sw.steer(sw.bind(gpt2, sae), "Hello", features={3: 6.0}, max_new_tokens=N)
    c = sw.steer(sw.bind(gpt2, sae), prompt="Hello", features={3: 6.0}, max_new_tokens=N)
    assert a.steered_ids == b.steered_ids == c.steered_ids and (a.layer, a.site) == (1, "resid_pre")
    moved = sw.steer(gpt2, sae, "Hello", features={3: 6.0}, max_new_tokens=N, hook="blocks.2.hook_resid_post")
    assert (moved.layer, moved.site) == (2, "resid_post") and moved.steered_logprobs != a.steered_logprobs


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(prompt=""), "prompt 0 is empty"),
        (dict(prompt="   \n"), "prompt 0 is empty"),
        (dict(prompt=[]), "prompt list is empty"),
        (dict(prompt=["ok", " "]), "prompt 1 is empty"),
        (dict(prompt=None), "prompt must be a string"),
        (dict(prompt=["ok", 3]), "prompt 1 is a int"),
        (dict(features={3: float("nan")}), "feature 3 is nan"),
        (dict(features={3: math.inf}), "feature 3 is inf"),
        (dict(features={3: "big"}), "must be a number"),
        (dict(features={64: 1.0}), "64"),
        (dict(features={-70: 1.0}), "-70"),
        (dict(features=[3]), "features must be a dict"),
        (dict(directions=torch.ones(16)), "width 32"),
        (dict(directions=torch.ones(16)), "length 16"),
        (dict(directions=[(torch.ones(32), float("nan"))]), "direction 0 is nan"),
        (dict(directions=torch.full((32,), math.inf)), "NaN or infinite"),
        (dict(directions=torch.tensor(2.0)), "directions must be an sw.Direction"),
        (dict(directions="up"), "directions must be an sw.Direction"),
        (dict(max_new_tokens=0), "max_new_tokens must be from 1 to 512"),
        (dict(max_new_tokens=2.5), "max_new_tokens"),
        (dict(temperature=-0.1), "temperature (0 means greedy) must be a finite number in [0, 10]"),
        (dict(temperature=math.nan), "temperature"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.5), "top_p"),
        (dict(seed="x"), "seed must be a whole number"),
        (dict(seed=-1), "seed must be from 0"),
        (dict(seed=2**64), "seed must be from 0"),
        (dict(features={3: 1e30}), "beyond"),
        (dict(max_new_tokens=10**6), "max_new_tokens must be from 1 to 512"),
        (dict(on_step=5), "on_step must be a function"),
    ],
)
def test_bad_input_raises_a_clear_value_error(gpt2, kwargs, message):
    b = binding_for(gpt2)
    args = dict(prompt="Hello", features={3: 1.0}, max_new_tokens=2) | kwargs
    with pytest.raises(ValueError, match=None) as info:
        sw.steer(b, **args)
    assert message in str(info.value)


def test_missing_sae_and_bad_layer(gpt2):
    with pytest.raises(ValueError, match="needs an SAE"):
        sw.steer(gpt2, None, "Hello", features={3: 1.0})
    with pytest.raises(ValueError, match="layer 9 does not exist"):
        sw.steer(gpt2, random_sae(32, 64, 1), "Hello", features={3: 1.0}, hook="blocks.9.hook_resid_pre")


@pytest.mark.slow
def test_prepend_bos(gpt2):
    b = binding_for(gpt2)
    bos = gpt2.tokenizer.bos_token_id
    with_bos = sw.steer(b, prompt=PROMPTS, features={3: 6.0}, max_new_tokens=N, prepend_bos=True)
    assert all(ids[0] == bos for ids in with_bos.prompt_ids) and with_bos.settings["prepend_bos"]
    as_text = sw.steer(b, prompt=[gpt2.tokenizer.bos_token + p for p in PROMPTS], features={3: 6.0}, max_new_tokens=N)
    assert as_text.prompt_ids == with_bos.prompt_ids and as_text.steered_ids == with_bos.steered_ids
    without = sw.steer(b, prompt=PROMPTS, features={3: 6.0}, max_new_tokens=N)  # this SAE has no prepend_bos
    assert [ids[1:] for ids in with_bos.prompt_ids] == without.prompt_ids


# -- the built-in model organism (a trained GPT-2 with known concept features) ------------------

def _organism():
    """The organism ships in the package: a failure to load it is a failure, never a skip."""
    return sw.organism(), sw.organism_ground_truth()


@pytest.mark.slow
def test_organism_steering_matches_plain_hooks():
    """On the trained organism: the SAE asks for BOS, and sw.steer equals a plain torch-hook run."""
    (model, sae), gt = _organism()
    prompts = ["Yesterday I saw", "She told me about", "The story was about"]
    features = gt.features.set_index("concept")
    for concept in ("food", "vehicle"):
        row = features.loc[concept]
        scale = 2.0 * float(row.max_act)
        r = sw.steer(model, sae, prompts, features={int(row.feature): scale}, max_new_tokens=8)
        assert all(ids[0] == model.tokenizer.bos_token_id for ids in r.prompt_ids)  # SAE cfg prepend_bos
        assert r.steered != r.baseline
        ref_ids, ref_lps, _ = reference_generate(
            model, gt.layer, "resid_pre", [model.tokenizer.bos_token + p for p in prompts],
            scale * sae.W_dec[int(row.feature)].detach(), 8)
        for p in range(len(prompts)):
            for variant, first in (("baseline", 0), ("steered", len(prompts))):
                ids = getattr(r, f"{variant}_ids")[p]
                assert ids == ref_ids[first + p, :len(ids)].tolist()
