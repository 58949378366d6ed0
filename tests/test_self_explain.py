"""Self-explanation: real nnsight patching on tiny random transformers, checked against PyTorch hooks."""

from __future__ import annotations

import copy
import json
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from tiny_models import random_sae, tiny_hf_model, tiny_tokenizer

import saewidgets as sw
from saewidgets.self_explanation import metrics as M
from saewidgets.self_explanation.explain import self_explain, self_explanation_chart
from saewidgets.self_explanation.prompts import build_prompt, cut_explanation

D_MODEL, N_LAYERS, SAE_LAYER = 32, 4, 2
SCALES = [0.0, 0.5, 1.0, 2.0, 4.0]
FAST = dict(scales=SCALES, max_new_tokens=4, progress=False)


@pytest.fixture(scope="module")
def hf():
    model, _ = tiny_hf_model("gpt2", d_model=D_MODEL, n_layers=N_LAYERS, seed=3)
    return model


@pytest.fixture(scope="module")
def model(hf):
    return sw.load_model(hf, tokenizer=tiny_tokenizer())


@pytest.fixture(scope="module")
def sae():
    return random_sae(D_MODEL, 64, layer=SAE_LAYER, seed=1)


@pytest.fixture(scope="module")
def two_features(model, sae):
    """Features 1 and 9 explained in one batched call."""
    return self_explain(model, sae, features=[1, 9], **FAST)


# -- PyTorch-hook observers and the reference implementation --------------------------------
def _hidden(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def record(hf, layers=(), head=True):
    """Record block inputs (after any in-place edit: read in a forward post-hook) and LM-head
    outputs for every forward call made while the context is open."""
    calls = {"head": [], **{layer: [] for layer in layers}}
    handles = []
    for layer in layers:
        def hook(module, args, kwargs, output, layer=layer):
            calls[layer].append(_hidden(args, kwargs).detach().clone())
        handles.append(hf.transformer.h[layer].register_forward_hook(hook, with_kwargs=True))
    if head:
        handles.append(hf.lm_head.register_forward_hook(lambda m, a, o: calls["head"].append(o.detach().clone())))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def reference_generate(hf, input_ids, positions, vectors, layer, max_new_tokens):
    """Plain PyTorch: a pre-hook replaces the placeholder positions on the prompt pass only."""
    length = input_ids.shape[0]
    index = torch.tensor(positions)

    def replace(module, args, kwargs):
        h = _hidden(args, kwargs)
        if h.shape[1] != length:  # generated tokens: one position, no placeholder
            return None
        h = h.clone()
        h[:, index, :] = vectors[:, None, :].to(h.dtype)
        return ((h, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": h})

    batch = input_ids[None].repeat(len(vectors), 1)
    handle = hf.transformer.h[layer].register_forward_pre_hook(replace, with_kwargs=True)
    try:
        with record(hf) as calls, torch.no_grad():
            out = hf.generate(batch, attention_mask=torch.ones_like(batch), max_new_tokens=max_new_tokens,
                              do_sample=False, pad_token_id=0)
    finally:
        handle.remove()
    return out[:, length:], calls["head"]


REFS = 3  # reference rows before the sweep: zero vector, mean-embedding baseline, nothing patched


def patched_rows(rows):
    """Batch rows that get a patch (all but the unpatched reference, row 2)."""
    return [0, 1, *range(REFS, rows)]


def row_vectors(df, sae, feature, hf):
    """The vectors self_explain patches in: zero, the baseline, then scale * d per row (the
    unpatched reference row has none)."""
    mean = hf.transformer.wte.weight.detach().mean(0)
    baseline = mean / mean.norm() * df.attrs["reference_norm"]
    d = sae.W_dec[feature].detach()
    return torch.stack([torch.zeros(D_MODEL), baseline, *[float(s) * d for s in df["scale"]]])


# -- injection ------------------------------------------------------------------------------
def test_replacement_at_every_placeholder_position_matches_pytorch_hook(model, hf, sae):
    layer, probe = 1, 3
    template = 'Say "X" and "X", then X:'
    prompt = build_prompt(model.tokenizer, template)
    assert len(prompt.positions) == 3
    with record(hf, layers=(layer, probe)) as calls:
        df = self_explain(model, sae, 5, template=template, layer=layer, probe_layer=probe, **FAST)
    rows = len(SCALES) + REFS
    vectors = row_vectors(df, sae, 5, hf)
    # The prompt pass is the first call with the whole batch; later calls see one position.
    patched = [h for h in calls[layer] if h.shape[0] == rows]
    assert patched[0].shape[1] == prompt.length and all(h.shape[1] == 1 for h in patched[1:])
    first = patched[0]
    for p in prompt.positions:
        torch.testing.assert_close(first[patched_rows(rows), p, :], vectors, atol=1e-6, rtol=1e-5)
    # Other positions keep the model's own residual (same for every row).
    others = [i for i in range(prompt.length) if i not in prompt.positions]
    torch.testing.assert_close(first[:, others], first[:1, others].expand(rows, -1, -1))
    # Every step's logits equal the plain-PyTorch reference that patches the prompt pass only.
    new_tokens, ref_head = reference_generate(hf, prompt.input_ids, prompt.positions, vectors, layer, 4)
    head = [h for h in calls["head"] if h.shape[0] == rows]
    assert len(head) == len(ref_head) == 4
    for ours, theirs in zip(head, ref_head):
        torch.testing.assert_close(ours[patched_rows(rows)], theirs, atol=1e-5, rtol=1e-4)
    texts = [model.tokenizer.decode(t) for t in new_tokens[2:]]
    assert df["generated"].tolist() == texts


def test_multi_token_placeholder_replaces_every_token(model, hf, sae):
    placeholder = "<feature>"
    template = 'The word "<feature>" means <feature>,'
    prompt = build_prompt(model.tokenizer, template, placeholder=placeholder)
    pieces = [model.tokenizer.decode(prompt.input_ids[p]) for p in prompt.positions]
    assert len(prompt.positions) > 2 and "".join(pieces).replace(" ", "") == placeholder * 2
    with record(hf, layers=(0,)) as calls:
        df = self_explain(model, sae, 7, template=template, placeholder=placeholder, layer=0, **FAST)
    vectors = row_vectors(df, sae, 7, hf)
    first = next(h for h in calls[0] if h.shape[0] == len(SCALES) + REFS)
    for p in prompt.positions:
        torch.testing.assert_close(first[patched_rows(len(SCALES) + REFS), p, :], vectors, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_scale_zero_row_is_the_zero_vector_prompt(model, hf, sae):
    df = self_explain(model, sae, 2, layer=1, **FAST)
    row = df[df["scale"] == 0].iloc[0]
    assert row["self_similarity"] == pytest.approx(0, abs=1e-6)
    assert row["entropy_change"] == pytest.approx(0, abs=1e-6)
    prompt = build_prompt(model.tokenizer, "meaning")
    tokens, _ = reference_generate(hf, prompt.input_ids, prompt.positions, torch.zeros(1, D_MODEL), 1, 4)
    assert row["generated"] == model.tokenizer.decode(tokens[0])


# -- metrics ---------------------------------------------------------------------------------
def test_row_cosine_is_per_row_not_batch_normalised():
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(5, 8, generator=g) * torch.tensor([[0.1], [1], [10], [100], [3]])
    d = torch.randn(8, generator=g)
    ours = M.row_cosine(vectors, d)
    expected = torch.nn.functional.cosine_similarity(vectors.double(), d.double()[None], dim=-1)
    torch.testing.assert_close(ours, expected)
    batch_norm = (vectors.double() @ d.double()) / (vectors.double().norm() * d.double().norm())
    assert not torch.allclose(ours, batch_norm)


def test_metric_formulas_match_recorded_residuals_and_logits(model, hf, sae):
    layer, probe = 0, 3
    with record(hf, layers=(probe,)) as calls:
        df = self_explain(model, sae, 11, layer=layer, probe_layer=probe, **FAST)
    rows = len(SCALES) + REFS
    resid = next(h for h in calls[probe] if h.shape[0] == rows)[:, -1, :].double()
    logits = next(h for h in calls["head"] if h.shape[0] == rows)[:, -1, :].double()
    d = sae.W_dec[11].double()
    cos = resid @ d / (resid.norm(dim=-1) * d.norm())  # row by row
    np.testing.assert_allclose(df["self_similarity"], (cos[REFS:] - cos[0]).numpy(), atol=1e-6)
    logp = torch.log_softmax(logits, -1)
    entropy = -(logp.exp() * logp).sum(-1)
    np.testing.assert_allclose(df["entropy"], entropy[REFS:].numpy(), rtol=1e-6)
    np.testing.assert_allclose(df["entropy_change"], (entropy[REFS:] - entropy[0]).numpy(), atol=1e-6)
    ce = -(logp[REFS:].exp() * logp[1]).sum(-1)  # H(p_a, p_baseline)
    np.testing.assert_allclose(df["cross_entropy"], ce.numpy(), rtol=1e-6)
    # Composite over eligible scales, chosen = its argmax, failure = max selfsim below 0.01.
    # Eligible: large enough and not a default answer (all large-enough scales when every one is).
    large = df["scale"].to_numpy() >= df.attrs["min_scale"]
    assert not large[0] and large[1:].all()
    default = df["default_answer"].to_numpy()
    only_defaults = bool(default[large].all())
    eligible = large if only_defaults else large & ~default
    assert eligible.tolist() == df["eligible"].tolist()

    def mm(x):
        return (x - x.min()) / (x.max() - x.min())

    s, c = df["self_similarity"].to_numpy()[eligible], df["cross_entropy"].to_numpy()[eligible]
    np.testing.assert_allclose(df["composite"].to_numpy()[eligible], 0.4 * mm(s) - 0.6 * mm(c), atol=1e-12)
    assert np.isnan(df["composite"].to_numpy()[~eligible]).all()
    best = df.loc[df["composite"].idxmax()]
    assert df["chosen"].sum() == 1 and best["chosen"] and df.attrs["chosen_scale"] == best["scale"]
    assert df.attrs["chosen_explanation"] == ("" if only_defaults else best["explanation"])
    assert df.attrs["failed"] == (df["self_similarity"].max() < 0.01 or only_defaults)


def test_composite_and_defaults():
    out = M.composite(np.array([0.0, 0.1, 0.3, 0.2]), np.array([9.0, 1.0, 2.0, 3.0]),
                      np.array([False, True, True, True]))
    assert np.isnan(out[0])
    np.testing.assert_allclose(out[1:], [0.4 * 0 - 0.6 * 0, 0.4 * 1 - 0.6 * 0.5, 0.4 * 0.5 - 0.6 * 1])
    assert M.default_layers(4) == (0, 3) and M.default_layers(12) == (1, 11)
    assert M.default_layers(18) == (2, 16) and M.default_layers(1) == (0, 1)
    scales = M.default_scales(50.0, 2.0)
    assert len(scales) == 32 and scales[0] == 0 and scales[-1] == pytest.approx(50.0)
    assert cut_explanation(' a colour. The word "red"', (".", "\n")) == "a colour"
    assert cut_explanation('crimson" "crimson"', ('"',)) == "crimson"


def test_failure_flag_threshold(model, sae):
    df = self_explain(model, sae, 4, failure_threshold=1.5, **FAST)
    assert df.attrs["failed"] and df["failed"].all()
    df = self_explain(model, sae, 4, failure_threshold=-1.5, **FAST)
    # Below any self-similarity: failed only when every explanation is a default answer.
    all_default = bool(df.loc[df["scale"] >= df.attrs["min_scale"], "default_answer"].all())
    assert df.attrs["failed"] == all_default and df["failed"].all() == all_default


def test_default_scales_follow_the_residual_norm(model, sae):
    df = self_explain(model, sae, 3, max_new_tokens=2, progress=False)
    assert len(df) == 32 and df["scale"].iloc[0] == 0
    assert df["relative_norm"].iloc[-1] == pytest.approx(2.0)
    assert df.attrs["min_scale"] == pytest.approx(0.1 * df.attrs["reference_norm"] / float(sae.W_dec[3].norm()))
    assert (df.attrs["layer"], df.attrs["probe_layer"]) == (0, 3)


# -- batching, remote, inputs -----------------------------------------------------------------
@pytest.mark.slow
def test_batched_equals_sequential_and_features_batch(model, sae, two_features):
    batched = two_features
    sequential = self_explain(model, sae, features=[1, 9], batch_size=1, **FAST)
    alone = self_explain(model, sae, 9, **FAST)
    assert batched["feature"].tolist() == [1] * 5 + [9] * 5
    assert batched["generated"].tolist() == sequential["generated"].tolist()
    for column in ("self_similarity", "entropy", "entropy_change", "cross_entropy"):
        np.testing.assert_allclose(batched[column], sequential[column], atol=1e-5, rtol=1e-4)
        np.testing.assert_allclose(batched[column][5:], alone[column], atol=1e-5, rtol=1e-4)
    assert batched.attrs["chosen_scale"] == sequential.attrs["chosen_scale"]
    assert set(batched.attrs["chosen_scale"]) == {1, 9} and alone.attrs["chosen_scale"] == batched.attrs["chosen_scale"][9]


@pytest.mark.slow
def test_remote_local_and_binding_and_direction(model, sae):
    local = self_explain(model, sae, 6, **FAST)
    binding = sw.bind(model, sae)
    via_remote = self_explain(binding, 6, remote="local", **FAST)
    direction = self_explain(model, None, sae.W_dec[6].clone(), **FAST)
    for other in (via_remote, direction):
        assert other["generated"].tolist() == local["generated"].tolist()
        np.testing.assert_allclose(other["self_similarity"], local["self_similarity"], atol=1e-6)
        np.testing.assert_allclose(other["cross_entropy"], local["cross_entropy"], rtol=1e-6)
    assert direction["feature"].iloc[0] == "direction 0"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(template="Describe the thing:"), "does not contain the placeholder"),
        (dict(template="The word X"), "last token"),
        (dict(template="Y means", placeholder=""), "non-empty"),
        (dict(layer=4), "layer 4 is out of range"),
        (dict(layer=-1), "out of range"),
        (dict(layer=2, probe_layer=2), "must come after"),
        (dict(probe_layer=5), "probe_layer 5 is out of range"),
        (dict(scales=[]), "non-empty"),
        (dict(scales=[0.0, float("nan")]), "finite"),
        (dict(scales=[1.0, float("inf")]), "finite"),
        (dict(scales=[[1.0, 2.0]]), "1-D"),
        (dict(feature=64), "feature 64 is out of range"),
        (dict(feature=-2), "out of range"),
        (dict(feature=[1, 1]), "distinct"),
        (dict(feature=[]), "empty"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(batch_size=0), "batch_size"),
        (dict(feature=torch.ones(5)), "d_model=32"),
        (dict(features=[1]), "not both"),
        (dict(template=[{"role": "user", "content": "X?"}]), "no chat_template"),
    ],
)
def test_bad_inputs_raise_clear_errors(model, sae, kwargs, message):
    kwargs = {"feature": 3, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=message):
        self_explain(model, sae, **kwargs)


def test_chat_template_path(hf):
    tok = copy.deepcopy(tiny_tokenizer())
    tok.chat_template = (
        "{% for m in messages %}<|im|>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|im|>assistant: {% endif %}"
    )
    chat_model = sw.load_model(hf, tokenizer=tok)
    prompt = build_prompt(tok, "meaning")
    assert prompt.chat and prompt.text == (
        '<|im|>user: What is the meaning of the word "X"?\n<|im|>assistant: The meaning of the word "X" is "'
    )
    assert len(prompt.positions) == 2 and all(tok.decode(prompt.input_ids[p]).strip() == "X" for p in prompt.positions)
    repeat = build_prompt(tok, "repeat")
    assert repeat.text.endswith('1. "X"\n2. "X"\n3. "X"\n4. "') and len(repeat.positions) == 4
    messages = [{"role": "user", "content": "Explain Z."}, {"role": "assistant", "content": "Z is"}]
    custom = build_prompt(tok, messages, placeholder="Z")
    assert custom.text.endswith("<|im|>assistant: Z is") and len(custom.positions) == 2
    df = self_explain(chat_model, random_sae(D_MODEL, 64, layer=1), 0, **FAST)
    assert df.attrs["prompt"] == prompt.text and len(df) == len(SCALES)
    assert all('"' not in e for e in df["explanation"])


# -- cache ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_cache_resumes_after_an_interrupted_run(model, hf, sae, tmp_path, monkeypatch):
    monkeypatch.delenv("SAEWIDGETS_CACHE", raising=False)
    features = [2, 5, 8]
    fresh = self_explain(model, sae, features=features, **FAST)
    assert not (tmp_path / "self_explain").exists()
    # Interrupt the run inside the second generation: the first chunk (references + feature 2) is saved.
    calls = {"n": 0}

    def interrupt(module, args, output):
        calls["n"] += 1
        if calls["n"] > 1 + FAST["max_new_tokens"]:  # one prompt trace, then the first generation
            raise KeyboardInterrupt("simulated interruption")

    handle = hf.lm_head.register_forward_hook(interrupt)
    try:
        with pytest.raises(BaseException, match="simulated interruption"):
            self_explain(model, sae, features=features, batch_size=len(SCALES) + REFS, cache_dir=tmp_path, **FAST)
    finally:
        handle.remove()
    folder = tmp_path / "self_explain"
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 1 and files[0].startswith("f2-") and files[0].endswith(".json")
    saved = json.loads((folder / files[0]).read_text())
    assert saved["label"] == 2 and len(saved["generated"]) == len(SCALES)
    # Resume: only features 5 and 8 (plus the two reference rows) are generated.
    with record(hf) as seen:
        resumed = self_explain(model, sae, features=features, cache_dir=tmp_path, **FAST)
    assert {h.shape[0] for h in seen["head"]} == {1, REFS + 2 * len(SCALES)}
    assert sorted(p.name.split("-")[0] for p in folder.iterdir()) == ["f2", "f5", "f8"]
    for column in ("generated", "explanation", "chosen", "failed"):
        assert resumed[column].tolist() == fresh[column].tolist()
    np.testing.assert_allclose(resumed["cross_entropy"], fresh["cross_entropy"], rtol=1e-5)
    # Fully cached: no generation at all (only the cheap prompt trace), same frame.
    with record(hf) as seen:
        again = self_explain(model, sae, features=features, cache_dir=tmp_path, **FAST)
    assert {h.shape[0] for h in seen["head"]} == {1}
    assert again["generated"].tolist() == fresh["generated"].tolist()
    # Other settings are other entries; the environment variable turns the cache on.
    monkeypatch.setenv("SAEWIDGETS_CACHE", str(tmp_path))
    self_explain(model, sae, 2, **{**FAST, "max_new_tokens": 3})
    assert len(list(folder.iterdir())) == 4
    with record(hf) as seen:
        self_explain(model, sae, 2, cache_dir=False, **FAST)
    assert {h.shape[0] for h in seen["head"]} == {1, REFS + len(SCALES)}
    assert not [p for p in folder.iterdir() if p.suffix != ".json"]


@pytest.mark.slow
def test_corrupt_cache_file_is_recomputed(model, sae, tmp_path):
    df = self_explain(model, sae, 3, cache_dir=tmp_path, **FAST)
    (path,) = (tmp_path / "self_explain").iterdir()
    path.write_text('{"truncated": ')
    from saewidgets.self_explanation.cache import CacheEntryWarning

    with pytest.warns(CacheEntryWarning, match="not valid JSON"):
        again = self_explain(model, sae, 3, cache_dir=tmp_path, **FAST)
    assert again["generated"].tolist() == df["generated"].tolist()
    assert json.loads(path.read_text())["label"] == 3


# -- chart ----------------------------------------------------------------------------------
def test_chart_marks_chosen_and_current_scale(two_features):
    df = two_features
    chart = self_explanation_chart(df, current_scale=1.0, feature=9)
    spec = chart.to_dict()
    assert len(spec["vconcat"]) == 4
    rules = [layer for panel in spec["vconcat"] for layer in panel["layer"] if "rule" in str(layer["mark"])]
    assert len(rules) == 8
    with pytest.raises(ValueError, match="pick one"):
        self_explanation_chart(df)
    with pytest.raises(ValueError, match="not a self_explain"):
        self_explanation_chart(df.drop(columns=["composite"]), feature=1)


def test_best_explanations_and_lookup_by_scale(two_features):
    from saewidgets.self_explanation.explain import best_explanations, explanation_at

    df = two_features
    one = df[df["feature"] == 9]
    assert explanation_at(df, 1.9, feature=9)["scale"] == 2.0
    assert explanation_at(one, -5)["scale"] == 0.0
    best = best_explanations(df, feature=9)
    candidates = one[~one["default_answer"] & one["composite"].notna() & (one["explanation"] != "")]
    ranked = candidates.sort_values("composite", ascending=False, kind="stable")["explanation"]
    assert best == list(dict.fromkeys(ranked))[:3]  # default answers (the unpatched one) never count
    assert df.attrs["best_explanations"][9] == best
    with pytest.raises(ValueError, match="pick one"):
        explanation_at(df, 1.0)


# -- layer map --------------------------------------------------------------------------------
TEXTS = [
    "The quick brown fox jumps over the lazy dog.", "Hello World! The year 1999 had 365 days.",
    "Red, green and BLUE are colours; cats and dogs are animals.", "She said: Repeat after me - one, two, three.",
] * 6


@pytest.mark.slow
def test_fit_layer_map_matches_least_squares_on_hidden_states(model, hf, sae):
    from saewidgets.self_explanation.explain import fit_layer_map

    layer_map = fit_layer_map(model, sae, TEXTS, 0, ridge=0.0, progress=False, batch_size=5)
    assert (layer_map.source, layer_map.target) == (SAE_LAYER, 0)
    xs, ys = [], []
    tok = tiny_tokenizer()
    for text in TEXTS:
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.no_grad():
            hs = hf(ids, output_hidden_states=True).hidden_states
        xs.append(hs[SAE_LAYER][0, 1:]), ys.append(hs[0][0, 1:])
    X, Y = torch.cat(xs).double(), torch.cat(ys).double()
    assert layer_map.n_tokens == len(X)
    X, Y = X - X.mean(0), Y - Y.mean(0)
    expected = torch.linalg.lstsq(X, Y).solution
    torch.testing.assert_close(layer_map.matrix.double(), expected, atol=2e-3, rtol=2e-3)
    assert 0 < layer_map.r2 <= 1
    d = sae.W_dec[:3].detach()
    mapped = layer_map.apply(d)
    torch.testing.assert_close(mapped.norm(dim=-1), d.norm(dim=-1))
    cos = torch.nn.functional.cosine_similarity(mapped.double(), d.double() @ expected, dim=-1)
    assert (cos > 0.999).all()
    with pytest.raises(ValueError, match="no map is needed"):
        fit_layer_map(model, sae, TEXTS, SAE_LAYER, progress=False)
    with pytest.raises(ValueError, match="non-empty list"):
        fit_layer_map(model, sae, "one text", 0, progress=False)
    with pytest.raises(ValueError, match="more text"):
        fit_layer_map(model, sae, TEXTS[:1], 0, progress=False)


@pytest.mark.slow
def test_self_explain_with_layer_map_injects_the_mapped_direction(model, hf, sae, tmp_path):
    from saewidgets.self_explanation.explain import fit_layer_map

    layer_map = fit_layer_map(model, sae, TEXTS, 1, progress=False)
    with record(hf, layers=(1,)) as calls:
        df = self_explain(model, sae, 4, layer_map=layer_map, cache_dir=tmp_path, **FAST)
    assert df.attrs["layer"] == 1
    prompt = build_prompt(model.tokenizer, "meaning")
    first = next(h for h in calls[1] if h.shape[0] == len(SCALES) + REFS)
    mapped = layer_map.apply(sae.W_dec[4:5].detach())[0]
    expected = torch.stack([float(s) * mapped for s in SCALES])
    torch.testing.assert_close(first[REFS:, prompt.positions[0]], expected, atol=1e-5, rtol=1e-4)
    plain = self_explain(model, sae, 4, layer=1, cache_dir=tmp_path, **FAST)
    assert len(list((tmp_path / "self_explain").iterdir())) == 2  # the map is part of the cache key
    assert (plain["cross_entropy"] != df["cross_entropy"]).iloc[1:].all()
    with pytest.raises(ValueError, match="fit a map for this layer"):
        self_explain(model, sae, 4, layer=0, layer_map=layer_map, **FAST)
    with pytest.raises(ValueError, match="LayerMap"):
        self_explain(model, sae, 4, layer_map=np.eye(D_MODEL), **FAST)
    with pytest.raises(ValueError, match="fit the map with this SAE"):
        self_explain(model, random_sae(D_MODEL, 64, layer=3), 4, layer_map=layer_map, **FAST)
