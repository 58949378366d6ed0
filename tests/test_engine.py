"""The intervention engine: edits, reads, gradients, limits and non-finite guards, each against
plain PyTorch (hooks on the transformers module, autograd) or a stated limit."""

from __future__ import annotations

import math

import pytest
import torch

import saewidgets as sw
from saewidgets.engine import Decoding, Edit, NonFiniteError, Read, Row, generate, trace
from saewidgets.engine.decoding import LIMITS
from tiny_models import random_sae, tiny_model
from tools.references.steering_hooks import hooked_generate, left_pad

N = 5


@pytest.fixture(scope="module")
def gpt2():
    return tiny_model("gpt2")


def _block(model, layer):
    return model._module.transformer.h[layer]


@pytest.mark.parametrize("op", ["add", "replace"])
def test_prompt_position_edits_match_a_torch_hook(gpt2, op):
    """Edits at chosen prompt positions (self-explanation style) apply on the prompt pass only."""
    prompts = ["The quick brown fox", "Hello"]
    positions = [(1, -1), (0,)]
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(0)) * 5
    rows = [Row(p, (Edit(1, v, op=op, positions=pos),)) for p, v, pos in zip(prompts, vectors, positions)]
    out = generate(gpt2, rows, Decoding(max_new_tokens=N, prepend_bos=False))
    assert out.prompt_ids == [gpt2.tokenizer(p)["input_ids"] for p in prompts]
    ids, mask = left_pad(out.prompt_ids, gpt2.tokenizer.pad_token_id)
    width = ids.shape[1]
    padded = [[width - len(row) + p % len(row) for p in pos] for row, pos in zip(out.prompt_ids, positions)]
    ref = hooked_generate(gpt2._module, _block(gpt2, 1), ids, mask, vectors, N, mode=op, positions=padded)
    assert ref.edited == [width]  # the reference edits the prompt pass only
    assert out.ids.tolist() == ref.ids.tolist()
    torch.testing.assert_close(out.logprobs, ref.logprobs, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="position 9 is outside prompt 1"):
        generate(gpt2, [Row("Hi"), Row("Hello", (Edit(1, vectors[0], positions=(9,)),))], Decoding(max_new_tokens=1))


@pytest.mark.parametrize("site", ["resid_pre", "resid_post"])
def test_every_position_edits_reach_generated_tokens(gpt2, site):
    vector = torch.randn(32, generator=torch.Generator().manual_seed(1)) * 3
    rows = [Row("Red, green and"), Row("Red, green and", (Edit(1, vector, site=site),))]
    out = generate(gpt2, rows, Decoding(max_new_tokens=N))
    ids, mask = left_pad(out.prompt_ids, gpt2.tokenizer.pad_token_id)
    ref = hooked_generate(gpt2._module, _block(gpt2, 1), ids, mask, torch.stack([torch.zeros(32), vector]), N, site=site)
    assert ref.edited[1:] == [1] * (N - 1)
    assert out.ids.tolist() == ref.ids.tolist()
    torch.testing.assert_close(out.logprobs, ref.logprobs, atol=1e-5, rtol=1e-5)


def test_reads_come_from_the_prompt_pass_in_model_order(gpt2):
    hf = gpt2._module
    enc = gpt2.tokenizer(["The quick brown fox"], return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**enc, output_hidden_states=True)
    reads = [Read("logits", site="logits"), Read("r2", 2, positions="all"), Read("r0", 0), Read("post1", 1, "resid_post"),
             Read("final", 3, positions=(0, -1))]  # resid_pre[n_layers]: the input of the final norm
    out = trace(gpt2, [Row("The quick brown fox")], reads)
    torch.testing.assert_close(out.reads["r2"], hidden.hidden_states[2])
    torch.testing.assert_close(out.reads["r0"], hidden.hidden_states[0][:, -1])
    torch.testing.assert_close(out.reads["post1"], hidden.hidden_states[2][:, -1])
    final = out.reads["final"]
    assert final.shape == (1, 2, 32)
    torch.testing.assert_close(out.reads["logits"], hidden.logits[:, -1])
    # a reduction inside the trace returns only its result
    norms = trace(gpt2, [Row("The quick brown fox")], [Read("n", 1, positions="all", fn=lambda h, m: h.norm(dim=-1))])
    torch.testing.assert_close(norms.reads["n"], hidden.hidden_states[1].norm(dim=-1))


def test_trace_gradients_match_autograd(gpt2):
    hf = gpt2._module
    theta = torch.zeros(32, requires_grad=True)
    rows = [Row("The quick brown fox", (Edit(0, theta),)), Row("Hello", (Edit(0, theta),))]
    masked = Read("z", 2, positions="all", fn=lambda h, mask: h * mask[..., None])  # real tokens only
    out = trace(gpt2, rows, [masked], loss=lambda r: (r["z"] ** 2).sum(), wrt=[theta])
    # reference: a plain hook that adds theta at the input of block 0, autograd through the model
    ref_theta = torch.zeros(32, requires_grad=True)
    handle = _block(gpt2, 0).register_forward_pre_hook(lambda m, a: (a[0] + ref_theta, *a[1:]))
    try:
        ids, mask = left_pad(out.prompt_ids, gpt2.tokenizer.pad_token_id)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)  # left padding: real tokens count from 0
        hidden = hf(input_ids=ids, attention_mask=mask, position_ids=positions, output_hidden_states=True).hidden_states[2]
        loss = ((hidden * mask[..., None]) ** 2).sum()
        loss.backward()
    finally:
        handle.remove()
    assert out.loss == pytest.approx(float(loss.detach()), rel=1e-5)
    torch.testing.assert_close(out.grads[0], ref_theta.grad, atol=1e-3, rtol=1e-4)
    weights = list(hf.parameters())
    assert all(w.requires_grad for w in weights)  # restored after the pass ...
    for w in weights:
        w.grad = None
    trace(gpt2, rows, [masked], loss=lambda r: (r["z"] ** 2).sum(), wrt=[theta])
    assert all(w.grad is None for w in weights)  # ... which differentiated theta only
    again = trace(gpt2, rows, [masked], loss=lambda r: (r["z"] ** 2).sum(), wrt=[theta],
                  remote="local")  # nnsight's serialisation path: the same gradient comes back
    torch.testing.assert_close(again.grads[0], out.grads[0])


def test_clamp_sets_the_features_activation(gpt2):
    sae = random_sae(32, 64, layer=1)
    binding = sw.bind(gpt2, sae)
    before = trace(gpt2, [Row("The quick brown fox")], [Read("x", 1, positions="all", after_edits=False)]).reads["x"]
    active = sae.encode(before)[0].detach()
    f = int(active.min(dim=0).values.argmax())  # a feature active at every position: clamping must cancel it
    assert active[:, f].min() > 0.1
    clamp = Edit(1, sae.W_dec[f].detach(), op="clamp", sae=sae, feature=f, value=3.0)
    out = trace(gpt2, [Row("The quick brown fox", (clamp,))],
                [Read("x", 1, positions="all", after_edits=False), Read("y", 1, positions="all")])
    torch.testing.assert_close(out.reads["x"], before)  # read before the edit: the model's own residual
    a = sae.encode(before)[..., f]
    expected = before + (3.0 - a)[..., None] * sae.W_dec[f]  # x + (c - a_f(x)) d
    torch.testing.assert_close(out.reads["y"], expected, atol=1e-5, rtol=1e-5)
    assert binding.d_model == 32


def test_decoding_limits_are_shared_and_checked():
    assert Decoding().max_new_tokens == 32
    for bad, message in [(dict(max_new_tokens=0), "max_new_tokens"), (dict(max_new_tokens=LIMITS["max_new_tokens"]["max"] + 1), "512"),
                         (dict(seed=-1), "seed"), (dict(seed=2**64), "seed"), (dict(seed=1.5), "seed"),
                         (dict(temperature=math.nan), "temperature"), (dict(temperature=11), "temperature"),
                         (dict(top_p=0), "top_p"), (dict(stop=[""]), "stop"), (dict(stop=5), "stop"),
                         (dict(prepend_bos="yes"), "prepend_bos")]:
        with pytest.raises(ValueError, match=message):
            Decoding(**bad)
    assert Decoding(seed=int(LIMITS["seed"]["max"])).seed == 2**53 - 1  # what a JS number holds exactly
    assert Decoding.of({"max_new_tokens": 3}, seed=4) == Decoding(max_new_tokens=3, seed=4)
    with pytest.raises(ValueError, match="unknown decoding settings"):
        Decoding.of({"beams": 3})


def test_context_is_checked_before_any_model_call(gpt2):
    calls = []
    handle = gpt2._module.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(ValueError, match=r"3 tokens and 200 new tokens.*context is 128.*at most 125"):
            generate(gpt2, [Row([1, 2, 3])], Decoding(max_new_tokens=200))
        with pytest.raises(ValueError, match="more than this model's context of 128"):
            trace(gpt2, [Row(list(range(1, 140)))])
    finally:
        handle.remove()
    assert calls == []


def test_non_finite_runs_raise_and_say_where(gpt2):
    huge = torch.full((32,), 1e30)
    with pytest.raises(NonFiniteError, match="inf/NaN"):
        generate(gpt2, [Row("Hello", (Edit(1, huge),))], Decoding(max_new_tokens=2))
    with pytest.raises(NonFiniteError, match=r"holds inf/NaN"):
        trace(gpt2, [Row("Hello", (Edit(1, torch.full((32,), math.inf)),))])
    with pytest.raises(ValueError, match="layer 7"):
        trace(gpt2, [Row("Hello", (Edit(7, torch.zeros(32)),))])


def test_stop_strings_end_a_row(gpt2):
    free = generate(gpt2, [Row("The quick brown fox")], Decoding(max_new_tokens=8))
    text = gpt2.tokenizer.decode(free.ids[0])
    stop = text[len(text) // 2: len(text) // 2 + 2] or text[:1]
    out = generate(gpt2, [Row("The quick brown fox")], Decoding(max_new_tokens=8, stop=(stop,)))
    ids, _ = out.continuation(0)
    assert out.ended[0] and stop in gpt2.tokenizer.decode(ids) and stop not in gpt2.tokenizer.decode(ids[:-1])


def test_a_padded_batch_reads_what_each_row_reads_alone(gpt2):
    """Left padding does not shift a row's positions (the engine passes position ids in a trace)."""
    prompts = ["The quick brown fox", "Hello", "Red, green"]
    together = trace(gpt2, [Row(p) for p in prompts], [Read("z", 2, positions="all")])
    for i, prompt in enumerate(prompts):
        alone = trace(gpt2, [Row(prompt)], [Read("z", 2, positions="all")]).reads["z"][0]
        torch.testing.assert_close(together.reads["z"][i, -alone.shape[0]:], alone, atol=1e-5, rtol=1e-5)


def test_edits_at_the_same_position_add_up(gpt2):
    """Two add edits of one row that share a prompt position both land there (a left-padded batch:
    positions count the row's own tokens); other positions and rows are untouched."""
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(32, generator=g), torch.randn(32, generator=g)
    rows = [Row("Hello"), Row("The quick brown fox", (Edit(1, a, positions=(1,)), Edit(1, b, positions=(1, -1))))]
    out = trace(gpt2, rows, [Read("before", 1, positions="all", after_edits=False), Read("after", 1, positions="all")])
    delta = out.reads["after"] - out.reads["before"]
    width = delta.shape[1]
    expected = torch.zeros_like(delta)
    offset = width - len(out.prompt_ids[1])
    expected[1, offset + 1] = a + b
    expected[1, width - 1] = b
    torch.testing.assert_close(delta, expected, atol=1e-5, rtol=0)


def test_prompt_edits_cover_each_rows_own_tokens(gpt2):
    """positions="prompt": every real token of the row, never its left padding; then the generated
    tokens are left alone (the same run as a hook editing those padded positions on the prompt pass)."""
    v = torch.randn(32, generator=torch.Generator().manual_seed(4)) * 5
    prompts = ["The quick brown fox", "Hello"]
    rows = [Row(p, (Edit(1, v, positions="prompt"),)) for p in prompts]
    out = trace(gpt2, rows, [Read("before", 1, positions="all", after_edits=False), Read("after", 1, positions="all")])
    delta = out.reads["after"] - out.reads["before"]
    width = delta.shape[1]
    for r, ids in enumerate(out.prompt_ids):
        own = torch.zeros(width, dtype=torch.bool)
        own[width - len(ids):] = True
        torch.testing.assert_close(delta[r, own], v.expand(int(own.sum()), 32), atol=1e-5, rtol=0)
        if (~own).any():
            assert delta[r, ~own].abs().max() == 0  # the padding is untouched
    run = generate(gpt2, rows, Decoding(max_new_tokens=N))
    ids, mask = left_pad(run.prompt_ids, gpt2.tokenizer.pad_token_id)
    padded = [list(range(ids.shape[1] - len(row), ids.shape[1])) for row in run.prompt_ids]
    ref = hooked_generate(gpt2._module, _block(gpt2, 1), ids, mask, torch.stack([v, v]), N, mode="add", positions=padded)
    assert ref.edited == [ids.shape[1]]
    assert run.ids.tolist() == ref.ids.tolist()
    torch.testing.assert_close(run.logprobs, ref.logprobs, atol=1e-5, rtol=1e-5)


def test_prompt_and_every_step_edits_mix_in_one_batch(gpt2):
    """One row replaces a prompt position (self-explanation style), another steers every position
    (steering style), at the same point: each row generates what it generates alone; the
    replacement never touches generated tokens."""
    g = torch.Generator().manual_seed(6)
    replace, add = torch.randn(32, generator=g) * 5, torch.randn(32, generator=g) * 3
    rows = [Row("The quick brown fox", (Edit(1, replace, op="replace", positions=(2,)),)),
            Row("Hello", (Edit(1, add),))]
    together = generate(gpt2, rows, Decoding(max_new_tokens=N))
    for i, row in enumerate(rows):
        alone = generate(gpt2, [row], Decoding(max_new_tokens=N))
        assert together.ids[i].tolist() == alone.ids[0].tolist(), i
        torch.testing.assert_close(together.logprobs[i], alone.logprobs[0], atol=1e-4, rtol=1e-4)


def test_stop_ends_the_pass_at_the_last_read_with_the_same_reads(gpt2):
    """trace(stop=True): the same reads (after edits too), and the later blocks never run."""
    ran = []
    last = gpt2._module.transformer.h[-1]
    hook = last.register_forward_hook(lambda *args: ran.append(1))
    try:
        edit = Edit(1, torch.randn(32))
        rows = [Row("The quick brown fox", (edit,)), Row("Hello")]
        reads = [Read("a", 1, positions="all"), Read("b", 1, "resid_post", positions="all", fn=lambda h, m: h.sum(-1))]
        full = trace(gpt2, rows, reads)
        n_full = len(ran)
        stopped = trace(gpt2, rows, reads, stop=True)
        assert n_full == 1 and len(ran) == 1  # the last block ran only in the full pass
        for name in ("a", "b"):
            torch.testing.assert_close(stopped.reads[name], full.reads[name])
        stopped_remote = trace(gpt2, rows, reads, stop=True, remote="local")
        torch.testing.assert_close(stopped_remote.reads["b"], full.reads["b"])
    finally:
        hook.remove()
    with pytest.raises(ValueError, match="cannot read the logits"):
        trace(gpt2, [Row("Hi")], [Read("l", site="logits")], stop=True)
