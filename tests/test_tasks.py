"""Task vectors, their scoring, the layer sweep and SAE task features, against plain PyTorch
(hooks on the transformers module, autograd, transformers' greedy generate) and on random
GPT-2 and Llama layouts."""

from __future__ import annotations

import math

import pytest
import torch

import saewidgets as sw
from saewidgets.tasks import feature_roles
from saewidgets.tasks.prompts import encode, encode_all, separator_ends
from saewidgets.tasks.runs import Variant, nll_loss_read, score
from saewidgets.engine import Edit, Row, trace
from tiny_models import random_sae, tiny_model
from tools.references.steering_hooks import hooked_generate, left_pad

PAIRS = [("red", "green"), ("blue", "fox"), ("quick", "lazy"), ("cats", "dogs"), ("one", "two"), ("Hello", "World"),
         ("year", "days"), ("brown", "jumps"), ("three", "mostly"), ("after", "said")]


@pytest.fixture(scope="module")
def organism():
    return sw.organism()


@pytest.fixture(scope="module")
def category():
    return sw.organism_ground_truth().icl_tasks["category"]


def _block(model, layer):
    return model._module.transformer.h[layer]


# -- prompts ------------------------------------------------------------------------------------
def test_icl_prompts_are_drawn_as_stated():
    prompts = sw.icl_prompts(PAIRS, shots=3, n=12, seed=4)
    assert len(prompts) == 12 and all(p.n_shots == 3 for p in prompts)
    assert [p.query for p in prompts[:10]] != [x for x, _ in PAIRS]  # shuffled
    assert {p.query for p in prompts[:10]} == {x for x, _ in PAIRS}  # every query once before repeating
    for p in prompts:
        assert p.query not in [x for x, _ in p.shots] and len(set(p.shots)) == 3
        assert p.text == "".join(f"{x} -> {y}\n" for x, y in p.shots) + f"{p.query} ->"
        assert dict(PAIRS)[p.query] == p.answer
    assert sw.icl_prompts(PAIRS, shots=3, n=12, seed=4) == prompts  # seeded
    zero = sw.icl_prompts(PAIRS, shots=0, n=3, seed=0, separator="=>", header="Follow the pattern:\n")
    assert zero[0].text == f"Follow the pattern:\n{zero[0].query} =>" and zero[0].zero_shot().text == f"{zero[0].query} =>"


@pytest.mark.parametrize("bad, message", [
    (dict(pairs="red -> blue"), "list of \\(x, y\\) string pairs"), (dict(pairs=[("red",)]), r"pairs\[0\]"),
    (dict(pairs=[("red", "")]), "non-empty"), (dict(pairs=[("a\nb", "c")]), "line break"), (dict(pairs=[]), "empty"),
    (dict(shots=10), "shots=10 needs at least 11"), (dict(shots=-1), "shots must be"), (dict(n=0), "n must be"),
    (dict(separator=""), "separator"),
])
def test_icl_prompts_refuse_bad_input(bad, message):
    args = {"pairs": PAIRS, "shots": 2, "n": 4, **bad}
    with pytest.raises(ValueError, match=message):
        sw.icl_prompts(args.pop("pairs"), **args)


def test_separator_positions_are_the_tokens_holding_the_separator(organism):
    model, _ = organism
    tok = model.tokenizer
    prompt = sw.icl_prompts(PAIRS, shots=2, n=1)[0]
    enc = encode(tok, prompt, prepend_bos=True)
    assert enc.ids[0] == tok.bos_token_id and enc.starts_with_bos
    assert len(enc.separators) == len(separator_ends(prompt.text, "->")) == 3
    assert all(tok.decode([enc.ids[i]]).endswith("->") for i in enc.separators)
    assert enc.separators[-1] == len(enc.ids) - 1  # the query's "->" ends the prompt
    assert tok.decode(enc.answer_ids) == " " + prompt.answer
    assert tok.decode(enc.ids[enc.query_start:]) == f"{prompt.query} ->"
    assert encode(tok, prompt, prepend_bos=False).separators == [i - 1 for i in enc.separators]


# -- task vectors -------------------------------------------------------------------------------
@pytest.mark.parametrize("position", ["separator", "last"])
def test_task_vector_is_the_mean_residual_at_separators(organism, category, position):
    """Against hidden_states of the transformers model, prompt by prompt (no padding)."""
    model, _ = organism
    prompts = sw.icl_prompts(category, shots=3, n=5, seed=2)
    tv = sw.task_vector(model, prompts, 2, position=position, prepend_bos=True, batch_size=2)
    picked = []
    for p in prompts:
        enc = encode(model.tokenizer, p, True)
        with torch.no_grad():
            hidden = model._module(torch.tensor([enc.ids]), output_hidden_states=True).hidden_states[2][0]
        picked += [hidden[i] for i in (enc.separators if position == "separator" else enc.separators[-1:])]
    torch.testing.assert_close(tv.vector, torch.stack(picked).mean(0), atol=1e-5, rtol=1e-5)
    assert tv.layer == 2 and tv.site == "resid_pre" and tv.provenance["positions"] == len(picked)
    assert tv.provenance["prepend_bos"] is True and tv.provenance["shots"] == 3
    raw = sw.task_vector(model, [p.text for p in prompts], 2, position=position, prepend_bos=True)
    torch.testing.assert_close(raw.vector, tv.vector)  # raw text works the same way


def test_task_vectors_of_every_layer_come_from_one_pass_each(organism, category):
    model, sae = organism
    prompts = sw.icl_prompts(category, shots=2, n=4, seed=3)
    from saewidgets.tasks import task_vectors

    calls = []
    handle = model._module.register_forward_hook(lambda *a: calls.append(1))
    try:
        many = task_vectors(model, prompts, [0, 1, 2, 3], reconstruct={2: sae}, batch_size=4)
    finally:
        handle.remove()
    assert len(calls) == 1
    for layer in range(4):
        torch.testing.assert_close(many[layer].vector, sw.task_vector(model, prompts, layer).vector)
    # on reconstructions: the mean of the SAE's reconstructions of the same residuals
    residuals = []
    for p in prompts:
        enc = encode(model.tokenizer, p, False)
        with torch.no_grad():
            hidden = model._module(torch.tensor([enc.ids]), output_hidden_states=True).hidden_states[2][0]
        residuals += [hidden[i] for i in enc.separators]
    with torch.no_grad():
        expected = sae(torch.stack(residuals)).mean(0)
    torch.testing.assert_close(many[("on_reconstruction", 2)].vector, expected, atol=1e-5, rtol=1e-5)


# -- scoring --------------------------------------------------------------------------------------
def _greedy_exact(model, encoded, prompts, vector, layer, op):
    """Transformers' greedy generate (one batch) with a plain hook writing ``vector`` at each
    prompt's last separator; exact match after cutting at the line end."""
    ids, mask = left_pad([e.ids for e in encoded], model.tokenizer.pad_token_id)
    width = ids.shape[1]
    vectors = torch.zeros(len(encoded), 128) if vector is None else vector[None].expand(len(encoded), -1)
    positions = [[width - len(e.ids) + e.separators[-1]] for e in encoded]
    run = hooked_generate(model._module, _block(model, layer), ids, mask, vectors, 4,
                          mode="add" if vector is None else op, positions=positions,
                          pad_token_id=model.tokenizer.pad_token_id)
    texts = [model.tokenizer.decode(row, skip_special_tokens=True).split("\n")[0].strip() for row in run.ids.tolist()]
    return [text == prompt.answer for text, prompt in zip(texts, prompts)]


def _hooked_logprobs(model, enc, vector, layer, op):
    """log p(answer tokens) with teacher forcing, a plain pre-hook writing the vector."""
    ids = torch.tensor([[*enc.ids, *enc.answer_ids]])
    at = enc.separators[-1]

    def pre(module, args):
        h = args[0].clone()
        h[0, at] = vector if op == "replace" else h[0, at] + vector
        return (h, *args[1:])

    handle = _block(model, layer).register_forward_pre_hook(pre) if vector is not None else None
    try:
        with torch.no_grad():
            logits = model._module(ids).logits[0].float()
    finally:
        if handle is not None:
            handle.remove()
    p = len(enc.ids)
    logprobs = logits.log_softmax(-1)
    return [float(logprobs[p - 1 + i, t]) for i, t in enumerate(enc.answer_ids)]


@pytest.mark.parametrize("op", ["replace", "add"])
def test_scores_match_teacher_forcing_and_greedy_generation_with_a_hook(organism, category, op):
    """The NLL and the exact-match flags of one batched teacher-forced pass equal a plain hook's
    log-probabilities and transformers' greedy generation, cut at the line end."""
    model, _ = organism
    few = sw.icl_prompts(category, shots=4, n=6, seed=5)
    zero = sw.icl_prompts(category, shots=0, n=10, seed=6)
    tvs = {layer: sw.task_vector(model, few, layer, prepend_bos=True).vector for layer in (1, 3)}
    encoded = encode_all(model.tokenizer, zero, True)
    variants = [Variant(), Variant(1, tvs[1], op), Variant(3, tvs[3], op)]
    scores = score(model, encoded, variants, "\n", batch_size=7)
    flags = []
    for v, variant in enumerate(variants):
        for p, enc in enumerate(encoded):
            reference = _hooked_logprobs(model, enc, variant.vector, variant.layer or 0, op)
            assert scores.logprobs[v][p] == pytest.approx(reference, abs=2e-4)
        flags += _greedy_exact(model, encoded, zero, variant.vector, variant.layer or 0, op)
    assert [f for row in scores.correct for f in row] == flags
    if op == "replace":
        assert any(flags) and not all(flags)  # the comparison saw both outcomes
    evaluation = sw.evaluate_task_vector(model, sw.Direction(tvs[1], layer=1), zero, insert=op, prepend_bos=True)
    assert evaluation.accuracy == sum(scores.correct[1]) / 10
    assert evaluation.nll == pytest.approx(sum(-sum(lp) / len(lp) for lp in scores.logprobs[1]) / 10)
    assert list(evaluation.frame["correct"]) == scores.correct[1]


def test_cleanup_gradients_match_autograd_through_a_hook(organism, category):
    """One cleanup step's gradient wrt the inserted vector, from the engine (backward inside the
    nnsight trace, also on nnsight's remote serialisation path), equals autograd through a hook."""
    model, sae = organism
    zero = sw.icl_prompts(category, shots=0, n=5, seed=7)
    encoded = encode_all(model.tokenizer, zero, True)
    vector = sae(sw.task_vector(model, sw.icl_prompts(category, 3, 4), 2, prepend_bos=True).vector).detach()
    leaf = vector.clone().requires_grad_(True)
    read, loss = nll_loss_read(encoded, 3)
    rows = [Row([*e.ids, *e.answer_ids[:3]], (Edit(2, leaf, op="replace", positions=(e.separators[-1],)),))
            for e in encoded]
    out = trace(model, rows, [read], loss=loss, wrt=[leaf])
    reference = vector.clone().requires_grad_(True)
    total = 0.0
    for e in encoded:
        at = e.separators[-1]

        def pre(module, args, at=at):
            h = args[0].clone()
            h[0, at] = reference
            return (h, *args[1:])

        handle = _block(model, 2).register_forward_pre_hook(pre)
        try:
            logits = model._module(torch.tensor([[*e.ids, *e.answer_ids[:3]]])).logits[0].float().log_softmax(-1)
        finally:
            handle.remove()
        answer = e.answer_ids[:3]
        p = len(e.ids)
        total = total - sum(logits[p - 1 + i, t] for i, t in enumerate(answer)) / len(answer) / len(encoded)
    total.backward()
    assert out.loss == pytest.approx(float(total.detach()), rel=1e-4)
    torch.testing.assert_close(out.grads[0], reference.grad, atol=1e-5, rtol=1e-3)
    again = trace(model, rows, [read], loss=loss, wrt=[leaf], remote="local")
    torch.testing.assert_close(again.grads[0], out.grads[0])


# -- task features --------------------------------------------------------------------------------
def test_task_features_encode_and_ito_are_decompose(organism, category):
    model, sae = organism
    few = sw.icl_prompts(category, shots=3, n=6, seed=8)
    zero = sw.icl_prompts(category, shots=0, n=8, seed=9)
    tv = sw.task_vector(model, few, 2, prepend_bos=True)
    for method, kw in (("encode", {}), ("ito", {"l0": 12})):
        tf = sw.task_features(model, sae, few, method=method, eval_prompts=zero, progress=False, **kw)
        code = sw.decompose(sae, tv, method, l0=12, include_bias=True)
        assert tf.features == pytest.approx(code.features) and tf.l0 == code.l0
        torch.testing.assert_close(tf.direction.vector, code.reconstruction, atol=1e-5, rtol=1e-5)
        check = sw.evaluate_task_vector(model, tf.direction, zero, answer_tokens=3)
        assert (tf.nll, tf.accuracy) == pytest.approx((check.nll, check.accuracy))
        assert tf.direction.layer == 2 and tf.direction.provenance["prepend_bos"] is True
    assert sw.task_features(model, sae, few, method="encode", eval_prompts=zero).l0 == sae.k  # TopK caps the encoder


def test_cleanup_only_drops_features_and_its_result_is_what_it_inserts(organism, category):
    model, sae = organism
    few = sw.icl_prompts(category, shots=3, n=6, seed=10)
    tf = sw.task_features(model, sae, few, method="cleanup", steps=6, patience=50, lr=0.05, progress=False)
    tv = sw.task_vector(model, few, 2, prepend_bos=True)
    start = set((sae.encode_pre(tv.vector) > 0).nonzero().flatten().tolist())  # TopK: every positive pre-activation
    assert len(start) > sae.k and set(tf.features) <= start and int(tf.history["l0"].iloc[0]) == len(start)
    assert tf.steps == len(tf.history) == 6 and list(tf.history.columns) == ["step", "nll", "l1", "loss", "l0"]
    assert "ReLU of the pre-activations" in tf.extra["activation"]  # TopK: said, not hidden
    assert all(math.isfinite(v) for v in tf.history["loss"])
    expected = sum(w * sae.W_dec[f].detach() for f, w in tf.features.items()) + sae.b_dec.detach()
    torch.testing.assert_close(tf.direction.vector, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tf.reconstruction, expected, atol=1e-5, rtol=1e-5)
    check = sw.evaluate_task_vector(model, tf.direction, [p.zero_shot() for p in few], answer_tokens=3)
    assert (tf.nll, tf.accuracy) == pytest.approx((check.nll, check.accuracy))
    some = list(tf.features)[:2]
    subset = tf.subset(some)
    assert subset.features == pytest.approx({f: tf.features[f] for f in some}) and subset.layer == 2
    with pytest.raises(ValueError, match="not in this code"):
        tf.subset([10_000])


def test_feature_roles_measure_what_they_say(organism, category):
    model, sae = organism
    few = sw.icl_prompts(category, shots=3, n=6, seed=11)
    zero = sw.icl_prompts(category, shots=0, n=8, seed=12)
    tf = sw.task_features(model, sae, few, method="encode", eval_prompts=zero)
    roles = feature_roles(model, sae, tf, few, zero)
    assert list(roles["feature"]) == list(tf.features)
    assert roles.attrs["code_accuracy"] == pytest.approx(tf.accuracy)
    for row in roles.to_dict("records"):
        alone = sw.evaluate_task_vector(model, tf.subset([row["feature"]]), zero)
        assert (row["alone_nll"], row["alone_accuracy"]) == pytest.approx((alone.nll, alone.accuracy))
        rest = [f for f in tf.features if f != row["feature"]]
        without = sw.evaluate_task_vector(model, tf.subset(rest), zero)
        assert row["without_accuracy"] == pytest.approx(without.accuracy)
        assert row["role"] in ("executor", "detector", "both", "other")
        executor = row["alone_share"] >= 0.5 or row["needed_share"] >= 0.5
        assert (row["role"] in ("executor", "both")) == executor
        assert (row["role"] in ("detector", "both")) == (row["on_examples"] >= 0.5)
    # activity on the examples, by hand: the SAE's encoder on every shot token but BOS and separators
    f = int(roles["feature"].iloc[0])
    fired = 0
    for p in few:
        enc = encode(model.tokenizer, p, True)
        with torch.no_grad():
            hidden = model._module(torch.tensor([enc.ids]), output_hidden_states=True).hidden_states[2][0]
        acts = sae.encode(hidden)[:, f] > 0
        fired += any(acts[i] for i in range(1, enc.query_start) if i not in enc.separators)
    assert roles["on_examples"].iloc[0] == pytest.approx(fired / len(few))


# -- the layer sweep ------------------------------------------------------------------------------
def test_layer_sweep_rows_are_the_single_measurements(organism, category):
    model, sae = organism
    few = sw.icl_prompts(category, shots=3, n=6, seed=13)
    zero = sw.icl_prompts(category, shots=0, n=8, seed=14)
    sweep = sw.layer_sweep(model, sae, few, zero, steps=3, lr=0.05, progress=False)
    frame = sweep.frame
    assert set(frame["method"]) == {"zero_shot", "few_shot", *sw.tasks.SWEEP_METHODS}
    assert list(frame.loc[frame["method"] == "task_vector", "layer"]) == [0, 1, 2, 3]
    assert set(frame.loc[frame["kind"] == "vector"].query("method != 'task_vector'")["layer"]) == {2}
    for layer in (0, 3):
        single = sw.evaluate_task_vector(model, sw.task_vector(model, few, layer, prepend_bos=True), zero)
        row = frame[(frame["method"] == "task_vector") & (frame["layer"] == layer)].iloc[0]
        assert (row["nll"], row["accuracy"]) == pytest.approx((single.nll, single.accuracy))
    zs = sw.evaluate_task_vector(model, None, zero, prepend_bos=True)
    assert frame[frame["method"] == "zero_shot"].iloc[0]["accuracy"] == pytest.approx(zs.accuracy)
    fs = sw.evaluate_task_vector(model, None, few, prepend_bos=True)
    assert frame[frame["method"] == "few_shot"].iloc[0]["accuracy"] == pytest.approx(fs.accuracy)
    assert frame.loc[frame["method"] == "reconstruction", "l0"].iloc[0] == sae.k
    assert frame.loc[frame["method"] == "ito", "l0"].iloc[0] <= 40
    # the chart: one spec, its rows; altair renders it
    spec = sweep.figure()
    assert spec["datasets"]["sweep"] == sweep.rows() and len(sweep.rows()) == len(frame)
    chart = sweep.chart()  # an sw.Chart with the rows; the altair version validates against the schema
    assert chart.to_dict()["datasets"]["sweep"] == sweep.rows() and chart.to_dict()["vconcat"][0]["layer"]
    assert sweep.altair().to_dict()["vconcat"][1]["layer"]
    best = sweep.best()
    assert best["method"] == "task_vector"
    # without an SAE: task vectors only
    plain = sw.layer_sweep(model, None, few, zero, layers=[1], progress=False)
    assert set(plain.frame["method"]) == {"zero_shot", "few_shot", "task_vector"}


def test_every_run_takes_nnsights_remote_path(organism, category):
    """remote="local" serialises each request as NDIF would: the reductions run inside the trace
    (Read.fn) and the same numbers come back."""
    model, sae = organism
    few = sw.icl_prompts(category, shots=3, n=4, seed=15)
    zero = sw.icl_prompts(category, shots=0, n=5, seed=16)
    local, remote = sw.task_vector(model, few, 2, prepend_bos=True), sw.task_vector(model, few, 2, prepend_bos=True,
                                                                                     remote="local")
    torch.testing.assert_close(local.vector, remote.vector)
    a, b = sw.evaluate_task_vector(model, local, zero), sw.evaluate_task_vector(model, local, zero, remote="local")
    assert (a.nll, a.accuracy) == (b.nll, b.accuracy)
    c1 = sw.task_features(model, sae, few, steps=3, lr=0.05, progress=False)
    c2 = sw.task_features(model, sae, few, steps=3, lr=0.05, progress=False, remote="local")
    assert c1.history["nll"].tolist() == pytest.approx(c2.history["nll"].tolist()) and c1.features == pytest.approx(c2.features)
    r1, r2 = feature_roles(model, sae, c1, few, zero), feature_roles(model, sae, c1, few, zero, remote="local")
    assert r1.equals(r2)


# -- random GPT-2 and Llama layouts -----------------------------------------------------------------
@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_the_api_runs_on_random_models(family):
    model = tiny_model(family)
    sae = random_sae(32, 64, layer=1)
    few = sw.icl_prompts(PAIRS, shots=3, n=4, seed=0)
    zero = sw.icl_prompts(PAIRS, shots=0, n=5, seed=1)
    tv = sw.task_vector(model, few, 1)
    assert tv.vector.shape == (32,) and torch.isfinite(tv.vector).all()
    ev = sw.evaluate_task_vector(model, tv, zero)
    assert math.isfinite(ev.nll) and 0 <= ev.accuracy <= 1 and ev.n == 5
    for method in ("encode", "ito", "cleanup"):
        tf = sw.task_features(model, sae, few, method=method, eval_prompts=zero, steps=3, l0=5, progress=False)
        assert math.isfinite(tf.nll) and tf.direction.d_model == 32
    sweep = sw.layer_sweep(model, sae, few, zero, steps=2, progress=False)
    assert sweep.frame["nll"].notna().all() and len(sweep.frame) == 2 + 3 + 4
    roles = feature_roles(model, sae, sw.task_features(model, sae, few, method="ito", l0=3), few, zero)
    assert len(roles) == 3


# -- bad input: clear errors before any model call --------------------------------------------------
def test_bad_input_is_refused_before_the_model_runs(organism, category):
    model, sae = organism
    few = sw.icl_prompts(category, shots=2, n=3)
    zero = sw.icl_prompts(category, shots=0, n=3)
    calls = []
    handle = model._module.register_forward_hook(lambda *a: calls.append(1))
    try:
        cases = [
            (lambda: sw.task_vector(model, few, 4), "layer must be a block index from 0 to 3"),
            (lambda: sw.task_vector(model, few, 1, position="first"), "position must be"),
            (lambda: sw.task_vector(model, ["no separator here"], 1), "has no separator"),
            (lambda: sw.task_vector(model, [], 1), "no prompts"),
            (lambda: sw.task_vector(model, few, 1, prepend_bos="yes"), "prepend_bos"),
            (lambda: sw.evaluate_task_vector(model, torch.zeros(128), zero), "pass layer="),
            (lambda: sw.evaluate_task_vector(model, torch.zeros(7), zero, layer=1), "length 7"),
            (lambda: sw.evaluate_task_vector(model, None, ["red ->"]), "no answer to score"),
            (lambda: sw.evaluate_task_vector(model, None, zero, insert="mix"), "insert must be"),
            (lambda: sw.evaluate_task_vector(model, torch.full((128,), math.nan), zero, layer=1), "NaN"),
            (lambda: sw.task_features(model, sae, few, method="magic"), "unknown method"),
            (lambda: sw.task_features(model, sae, few, layer=1), "SAE reads resid_pre\\[2\\]"),
            (lambda: sw.task_features(model, sae, few, lam=-1), "lam must be"),
            (lambda: sw.task_features(model, sae, few, steps=0), "steps must be"),
            (lambda: sw.task_features(model, sae, few, method="ito", l0=2.5), "l0 \\(ITO's target"),
            (lambda: sw.task_features(model, sae, ["red -> colour\nblue ->"]), "no answer"),
            (lambda: sw.layer_sweep(model, sae, few, methods=["nope"]), "unknown sweep methods"),
            (lambda: sw.layer_sweep(model, None, few, methods=["ito"]), "need an SAE"),
            (lambda: sw.layer_sweep(model, sae, few, layers=[]), "layers is empty"),
        ]
        for call, message in cases:
            with pytest.raises(ValueError, match=message):
                call()
    finally:
        handle.remove()
    assert calls == []
