"""sw.load_sae / sw.save_sae on every format, and the SAE's arithmetic against literal
reference formulas (SAELens v6 and Gemma Scope code, restated)."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import saewidgets as sw

D_IN, D_SAE = 16, 48


# -- reference formulas ----------------------------------------------------------------------
# Written out literally; the SAE module must compute exactly these.


def ref_standard(x, W_enc, b_enc, b_dec, apply_b_dec_to_input):
    sae_in = x - b_dec * apply_b_dec_to_input
    return torch.relu(sae_in @ W_enc + b_enc)


def ref_gemma_scope_jumprelu(x, W_enc, b_enc, threshold):
    pre_acts = x @ W_enc + b_enc  # Gemma Scope: no b_dec subtraction at the input
    mask = pre_acts > threshold
    return mask * torch.nn.functional.relu(pre_acts)


def ref_saelens_topk(x, W_enc, b_enc, b_dec, k):
    hidden_pre = (x - b_dec) @ W_enc + b_enc
    topk = torch.topk(hidden_pre, k=k, dim=-1)
    result = torch.zeros_like(hidden_pre)
    return result.scatter(-1, topk.indices, topk.values.relu())  # ReLU on the kept values only


def ref_saelens_gated(x, W_enc, b_dec, b_gate, r_mag, b_mag, apply_b_dec_to_input=True):
    sae_in = x - b_dec * apply_b_dec_to_input
    gate = (sae_in @ W_enc + b_gate > 0).float()
    magnitude = torch.relu(sae_in @ (W_enc * torch.exp(r_mag)) + b_mag)
    return gate * magnitude


def ref_decode(acts, W_dec, b_dec):
    return acts @ W_dec + b_dec


# -- fixtures --------------------------------------------------------------------------------


def make_weights(arch="standard", seed=0):
    g = torch.Generator().manual_seed(seed)
    t = {
        "W_enc": torch.randn(D_IN, D_SAE, generator=g) / math.sqrt(D_IN),
        "W_dec": torch.randn(D_SAE, D_IN, generator=g) / math.sqrt(D_SAE),
        "b_enc": torch.randn(D_SAE, generator=g) * 0.2,
        "b_dec": torch.randn(D_IN, generator=g) * 0.5,
    }
    if arch == "jumprelu":  # some negative thresholds, so that ReLU and the mask both matter
        t["threshold"] = torch.rand(D_SAE, generator=g) * 0.8 - 0.2
    if arch == "gated":
        del t["b_enc"]
        t.update(b_gate=torch.randn(D_SAE, generator=g) * 0.2, r_mag=torch.randn(D_SAE, generator=g) * 0.3,
                 b_mag=torch.randn(D_SAE, generator=g) * 0.2)
    return t


@pytest.fixture
def x():
    return torch.randn(3, 5, D_IN, generator=torch.Generator().manual_seed(1))


def write_saelens(directory, tensors, cfg):
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "sae_weights.safetensors"))
    (directory / "cfg.json").write_text(json.dumps(cfg))
    return directory


def assert_same_sae(a: sw.SAE, b: sw.SAE):
    ta, tb = a.state_tensors(), b.state_tensors()
    assert ta.keys() == tb.keys()
    for name in ta:
        assert ta[name].dtype == tb[name].dtype and torch.equal(ta[name], tb[name]), name
    assert (a.architecture, a.k, a.hook, a.apply_b_dec_to_input, a.normalize_activations) == (
        b.architecture, b.k, b.hook, b.apply_b_dec_to_input, b.normalize_activations,
    )


# -- arithmetic ------------------------------------------------------------------------------


@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_standard_matches_saelens(x, apply_b_dec):
    t = make_weights()
    sae = sw.SAE(**t, apply_b_dec_to_input=apply_b_dec)
    expected = ref_standard(x, t["W_enc"], t["b_enc"], t["b_dec"], apply_b_dec)
    assert 0 < (expected > 0).float().mean() < 1
    torch.testing.assert_close(sae.encode(x), expected)
    torch.testing.assert_close(sae.decode(expected), ref_decode(expected, t["W_dec"], t["b_dec"]))
    torch.testing.assert_close(sae(x), ref_decode(expected, t["W_dec"], t["b_dec"]))


def test_jumprelu_matches_gemma_scope(x):
    t = make_weights("jumprelu")
    sae = sw.SAE(**t, architecture="jumprelu", apply_b_dec_to_input=False)
    expected = ref_gemma_scope_jumprelu(x, t["W_enc"], t["b_enc"], t["threshold"])
    pre = x @ t["W_enc"] + t["b_enc"]
    assert ((pre > 0) & (pre <= t["threshold"])).any()  # the mask removes some positive units
    assert ((pre < 0) & (pre > t["threshold"])).any()  # and ReLU some units above a negative threshold
    torch.testing.assert_close(sae.encode(x), expected)
    torch.testing.assert_close(sae(x), ref_decode(expected, t["W_dec"], t["b_dec"]))


@pytest.mark.parametrize("k", [1, 5])
def test_topk_matches_saelens(x, k):
    t = make_weights()
    sae = sw.SAE(**t, architecture="topk", k=k, apply_b_dec_to_input=True)
    expected = ref_saelens_topk(x, t["W_enc"], t["b_enc"], t["b_dec"], k)
    acts = sae.encode(x)
    torch.testing.assert_close(acts, expected)
    assert ((acts > 0).sum(-1) <= k).all()
    torch.testing.assert_close(sae(x), ref_decode(expected, t["W_dec"], t["b_dec"]))


def test_gated_matches_saelens(x):
    t = make_weights("gated")
    sae = sw.SAE(**t, architecture="gated", apply_b_dec_to_input=True)
    expected = ref_saelens_gated(x, t["W_enc"], t["b_dec"], t["b_gate"], t["r_mag"], t["b_mag"])
    assert 0 < (expected > 0).float().mean() < 1
    torch.testing.assert_close(sae.encode(x), expected)
    torch.testing.assert_close(sae(x), ref_decode(expected, t["W_dec"], t["b_dec"]))
    assert "b_enc" not in sae.state_tensors()  # SAELens gated SAEs have no b_enc


def test_constant_norm_rescale(x):
    t = make_weights()
    sae = sw.SAE(**t, apply_b_dec_to_input=True, normalize_activations="constant_norm_rescale")
    coeff = math.sqrt(D_IN) / x.norm(dim=-1, keepdim=True)
    acts = ref_standard(x * coeff, t["W_enc"], t["b_enc"], t["b_dec"], True)
    torch.testing.assert_close(sae.encode(x), acts)
    torch.testing.assert_close(sae(x), ref_decode(acts, t["W_dec"], t["b_dec"]) / coeff)


def test_layer_norm(x):
    t = make_weights()
    sae = sw.SAE(**t, apply_b_dec_to_input=False, normalize_activations="layer_norm")
    mu = x.mean(dim=-1, keepdim=True)
    std = (x - mu).std(dim=-1, keepdim=True)
    acts = ref_standard((x - mu) / (std + 1e-5), t["W_enc"], t["b_enc"], t["b_dec"], False)
    torch.testing.assert_close(sae.encode(x), acts)
    torch.testing.assert_close(sae(x), ref_decode(acts, t["W_dec"], t["b_dec"]) * std + mu)


@pytest.mark.parametrize("mode, message", [
    ("expected_average_only_in", "fold_activation_norm_scaling_factor"),
    ("l2", "normalize_activations='l2' is not supported"),
])
def test_unsupported_normalisation_is_refused(mode, message):
    with pytest.raises(ValueError, match=message):
        sw.SAE(**make_weights(), normalize_activations=mode)


# -- SAELens directories ---------------------------------------------------------------------


def test_saelens_v6_directory(tmp_path, x):
    t = make_weights("jumprelu")
    cfg = {"architecture": "jumprelu", "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32",
           "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
           "metadata": {"hook_name": "blocks.3.hook_resid_post", "model_name": "tiny", "sae_lens_version": "6.5.0"}}
    sae = sw.load_sae(write_saelens(tmp_path / "v6", t, cfg))
    assert sae.hook == sw.HookPoint(3, "resid_post", "blocks.3.hook_resid_post")
    assert (sae.architecture, sae.d_in, sae.d_sae, sae.apply_b_dec_to_input) == ("jumprelu", D_IN, D_SAE, True)
    assert sae.metadata["model_name"] == "tiny"
    centred = x - t["b_dec"]
    torch.testing.assert_close(sae.encode(x), ref_gemma_scope_jumprelu(centred, t["W_enc"], t["b_enc"], t["threshold"]))


def test_saelens_pre6_directory_defaults(tmp_path, x):
    """Pre-6.0 configs say hook_point; SAELens then defaults to standard and b_dec centring."""
    t = make_weights()
    cfg = {"hook_point": "blocks.2.hook_resid_pre", "hook_point_layer": 2, "d_in": D_IN, "d_sae": D_SAE,
           "dtype": "torch.float32", "normalize_activations": False, "model_name": "gpt2-small"}
    sae = sw.load_sae(write_saelens(tmp_path / "old", t, cfg))
    assert sae.hook == sw.HookPoint(2, "resid_pre", "blocks.2.hook_resid_pre")
    assert (sae.architecture, sae.apply_b_dec_to_input, sae.normalize_activations) == ("standard", True, "none")
    torch.testing.assert_close(sae.encode(x), ref_standard(x, t["W_enc"], t["b_enc"], t["b_dec"], True))
    with pytest.raises(ValueError, match="expected_average_only_in"):
        sw.load_sae(write_saelens(tmp_path / "scaled", t, {**cfg, "normalize_activations": True}))


@pytest.mark.parametrize("cfg", [
    {"architecture": "topk", "k": 4},  # v6
    {"architecture": "topk", "activation_fn_kwargs": {"k": 4}, "hook_layer": 1},  # v5
    {"architecture": "standard", "activation_fn_str": "topk", "activation_fn_kwargs": {"k": 4}},  # v4
])
def test_saelens_topk_spellings(tmp_path, x, cfg):
    t = make_weights()
    cfg = {"d_in": D_IN, "d_sae": D_SAE, "hook_name": "blocks.1.hook_resid_pre", **cfg}
    sae = sw.load_sae(write_saelens(tmp_path / "topk", t, cfg))
    assert (sae.architecture, sae.k) == ("topk", 4)
    torch.testing.assert_close(sae.encode(x), ref_saelens_topk(x, t["W_enc"], t["b_enc"], t["b_dec"], 4))


def test_saelens_topk_rescaled_by_decoder_norm(tmp_path, x):
    """SAELens TopK with rescale_acts_by_decoder_norm: pre * |W_dec|, topk, decode acts / |W_dec|."""
    t = make_weights()
    cfg = {"architecture": "topk", "k": 3, "rescale_acts_by_decoder_norm": True, "hook_name": "blocks.0.hook_resid_pre"}
    sae = sw.load_sae(write_saelens(tmp_path / "rescaled", t, cfg))
    norms = t["W_dec"].norm(dim=-1)
    hidden_pre = ((x - t["b_dec"]) @ t["W_enc"] + t["b_enc"]) * norms
    top = hidden_pre.topk(3, dim=-1)
    acts = torch.zeros_like(hidden_pre).scatter(-1, top.indices, top.values.relu())
    torch.testing.assert_close(sae.encode(x), acts)
    torch.testing.assert_close(sae(x), ref_decode(acts / norms, t["W_dec"], t["b_dec"]))


def test_saelens_gated_directory(tmp_path, x):
    t = make_weights("gated")
    sae = sw.load_sae(write_saelens(tmp_path / "gated", t, {"architecture": "gated", "hook_name": "blocks.0.hook_resid_pre"}))
    torch.testing.assert_close(sae.encode(x), ref_saelens_gated(x, t["W_enc"], t["b_dec"], t["b_gate"], t["r_mag"], t["b_mag"]))


def test_finetuning_scaling_factor(tmp_path):
    cfg = {"hook_name": "blocks.0.hook_resid_pre"}
    ones = {**make_weights(), "scaling_factor": torch.ones(D_SAE)}
    assert "scaling_factor" not in sw.load_sae(write_saelens(tmp_path / "ones", ones, cfg)).state_tensors()
    scaled = {**make_weights(), "scaling_factor": torch.full((D_SAE,), 2.0)}
    with pytest.raises(ValueError, match="scaling_factor that is not all ones"):
        sw.load_sae(write_saelens(tmp_path / "scaled", scaled, cfg))


def test_config_overrides_and_device_dtype(tmp_path):
    directory = write_saelens(tmp_path / "s", make_weights(), {"hook_name": "blocks.0.hook_resid_pre"})
    sae = sw.load_sae(directory, architecture="topk", k=7, apply_b_dec_to_input=False, dtype=torch.float64)
    assert (sae.architecture, sae.k, sae.apply_b_dec_to_input, sae.W_enc.dtype) == ("topk", 7, False, torch.float64)
    assert sw.load_sae(directory, hook="blocks.4.hook_resid_post").hook == sw.HookPoint(4, "resid_post", "blocks.4.hook_resid_post")
    assert sw.load_sae(directory, hook=sw.HookPoint(2)).hook == sw.HookPoint(2)


# -- Gemma Scope -----------------------------------------------------------------------------


def gemma_scope_path(root, layer=3):
    path = root / f"layer_{layer}" / "width_16k" / "average_l0_20"
    path.mkdir(parents=True)
    return path


def test_gemma_scope_npz(tmp_path, x):
    t = make_weights("jumprelu")
    directory = gemma_scope_path(tmp_path)
    np.savez(directory / "params.npz", **{k: v.numpy() for k, v in t.items()})
    for spec in (directory, directory / "params.npz", str(directory / "params.npz")):
        sae = sw.load_sae(spec)
        assert sae.hook == sw.HookPoint(3, "resid_post", "blocks.3.hook_resid_post")
        assert (sae.architecture, sae.apply_b_dec_to_input) == ("jumprelu", False)
        for name, value in t.items():
            assert torch.equal(getattr(sae, name), value), name
        torch.testing.assert_close(sae.encode(x), ref_gemma_scope_jumprelu(x, t["W_enc"], t["b_enc"], t["threshold"]))
    assert sw.load_sae(directory, hook="blocks.5.hook_resid_post").layer == 5


def test_gemma_scope_safetensors_lowercase_keys(tmp_path, x):
    t = make_weights("jumprelu")
    directory = gemma_scope_path(tmp_path, layer=12)
    save_file({k.lower(): v for k, v in t.items()}, str(directory / "params.safetensors"))
    sae = sw.load_sae(directory)
    assert sae.hook.layer == 12 and sae.architecture == "jumprelu" and not sae.apply_b_dec_to_input
    torch.testing.assert_close(sae.encode(x), ref_gemma_scope_jumprelu(x, t["W_enc"], t["b_enc"], t["threshold"]))


def test_gemma_scope_layer_read_from_the_symlink_not_its_target(tmp_path):
    """The Hugging Face cache keeps files as blobs named by hash, linked from snapshot paths."""
    blob = tmp_path / "blobs" / "9f2c41d0e8"
    blob.parent.mkdir()
    np.savez(blob.with_suffix(".npz"), **{k: v.numpy() for k, v in make_weights("jumprelu").items()})
    blob.with_suffix(".npz").rename(blob)
    link = gemma_scope_path(tmp_path / "snapshots" / "abc123", layer=4) / "params.npz"
    link.symlink_to(blob)
    assert sw.load_sae(link).hook == sw.HookPoint(4, "resid_post", "blocks.4.hook_resid_post")


def test_gemma_scope_without_layer_in_path(tmp_path):
    np.savez(tmp_path / "params.npz", **{k: v.numpy() for k, v in make_weights("jumprelu").items()})
    sae = sw.load_sae(tmp_path / "params.npz")
    assert sae.hook is None
    from tiny_models import tiny_model

    with pytest.raises(ValueError, match="the SAE has no hook point: load it with hook="):
        sw.bind(tiny_model("gpt2", d_model=D_IN), sae)


# -- SAELens objects (duck-typed fakes of v5 and v6) -------------------------------------------


class FakeSAELensV5:
    """sae_lens 5.x: a flat config with hook_name and architecture as a string."""

    def __init__(self, tensors, **cfg):
        self.cfg = type("SAEConfig", (), cfg)()
        for name, value in tensors.items():
            setattr(self, name, torch.nn.Parameter(value))


class FakeSAEMetadata:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __getattr__(self, name):  # v6 SAEMetadata answers None for missing keys
        return None


class FakeTopKSAEConfigV6:
    """sae_lens 6.x: architecture() is a classmethod, hook_name lives in metadata."""

    def __init__(self, k, hook_name):
        self.d_in, self.d_sae, self.dtype, self.k = D_IN, D_SAE, "float32", k
        self.apply_b_dec_to_input, self.normalize_activations = True, "none"
        self.rescale_acts_by_decoder_norm = False
        self.metadata = FakeSAEMetadata(hook_name=hook_name, model_name="tiny")

    @classmethod
    def architecture(cls):
        return "topk"


class FakeSAELensV6(torch.nn.Module):
    def __init__(self, tensors, cfg):
        super().__init__()
        self.cfg = cfg
        for name, value in tensors.items():
            setattr(self, name, torch.nn.Parameter(value))


def test_saelens_v5_object(x):
    t = make_weights("jumprelu")
    fake = FakeSAELensV5(t, architecture="jumprelu", hook_name="blocks.2.hook_resid_pre", d_in=D_IN, d_sae=D_SAE,
                         apply_b_dec_to_input=False, normalize_activations="none", dtype="float32")
    sae = sw.load_sae(fake)
    assert sae.hook == sw.HookPoint(2, "resid_pre", "blocks.2.hook_resid_pre") and sae.architecture == "jumprelu"
    torch.testing.assert_close(sae.encode(x), ref_gemma_scope_jumprelu(x, t["W_enc"], t["b_enc"], t["threshold"]))


def test_saelens_v6_object(x):
    t = make_weights()
    sae = sw.load_sae(FakeSAELensV6(t, FakeTopKSAEConfigV6(k=6, hook_name="blocks.1.hook_resid_post")))
    assert (sae.architecture, sae.k, sae.hook.layer, sae.hook.site) == ("topk", 6, 1, "resid_post")
    torch.testing.assert_close(sae.encode(x), ref_saelens_topk(x, t["W_enc"], t["b_enc"], t["b_dec"], 6))
    assert sw.load_sae(FakeSAELensV6(t, FakeTopKSAEConfigV6(6, "blocks.1.hook_resid_post")), k=2).k == 2


def test_saelens_release_needs_sae_lens(monkeypatch):
    monkeypatch.setitem(sys.modules, "sae_lens", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'saewidgets\[saelens\]'"):
        sw.load_sae(release="gpt2-small-res-jb", sae_id="blocks.8.hook_resid_pre")
    with pytest.raises(ValueError, match="release= and sae_id= together"):
        sw.load_sae(release="gpt2-small-res-jb")


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("arch, kw", [
    ("standard", {"apply_b_dec_to_input": True}),
    ("jumprelu", {}),
    ("topk", {"k": 5}),
    ("gated", {"apply_b_dec_to_input": True}),
    ("standard", {"normalize_activations": "constant_norm_rescale"}),
])
def test_save_load_round_trip(tmp_path, x, arch, kw):
    sae = sw.SAE(**make_weights(arch), architecture=arch, hook=sw.HookPoint(2, "resid_post", "model.layers.2"), **kw)
    loaded = sw.load_sae(sw.save_sae(sae, tmp_path / arch))
    assert_same_sae(sae, loaded)
    assert torch.equal(sae.encode(x), loaded.encode(x)) and torch.equal(sae(x), loaded(x))
    again = sw.load_sae(sw.save_sae(loaded, tmp_path / "again"))
    assert_same_sae(sae, again)
    assert json.loads((tmp_path / arch / "cfg.json").read_text())["hook_name"] == "model.layers.2"


def test_round_trip_keeps_dtype_and_hook_spelling(tmp_path):
    sae = sw.SAE(**make_weights(), hook=sw.HookPoint(1, "resid_pre", "model.layers.1")).to(torch.bfloat16)
    loaded = sw.load_sae(sw.save_sae(sae, tmp_path / "bf16"))
    assert loaded.W_enc.dtype == torch.bfloat16
    assert_same_sae(sae, loaded)  # "model.layers.1" would read back as resid_post: saved as blocks.1.hook_resid_pre
    assert json.loads((tmp_path / "bf16" / "cfg.json").read_text())["hook_name"] == "blocks.1.hook_resid_pre"


def test_npz_and_dict_round_trips(tmp_path):
    t = make_weights("jumprelu")
    directory = gemma_scope_path(tmp_path)
    np.savez(directory / "params.npz", **{k: v.numpy() for k, v in t.items()})
    from_npz = sw.load_sae(directory)
    from_dict = sw.load_sae(t, architecture="jumprelu", hook="layer_3/width_16k")
    for sae in (from_npz, from_dict):
        assert {k: v for k, v in sae.state_tensors().items()}.keys() == t.keys()
        assert all(torch.equal(sae.state_tensors()[k], t[k]) for k in t)
        assert sae.hook.layer == 3 and sae.hook.site == "resid_post" and not sae.apply_b_dec_to_input
        assert_same_sae(sae, sw.load_sae(sw.save_sae(sae, tmp_path / f"saved{id(sae)}")))


def test_dict_with_gemma_scope_keys_and_defaults(x):
    t = make_weights()
    sae = sw.load_sae({k.lower(): v.numpy() for k, v in t.items()})  # numpy arrays, lowercase keys
    assert (sae.architecture, sae.hook, sae.apply_b_dec_to_input) == ("standard", None, False)
    torch.testing.assert_close(sae.encode(x), ref_standard(x, t["W_enc"], t["b_enc"], t["b_dec"], False))


def test_existing_sae_passes_through_and_is_never_changed_in_place():
    sae = sw.SAE(**make_weights(), hook=sw.HookPoint(1))
    assert sw.load_sae(sae) is sae
    moved = sw.load_sae(sae, hook="blocks.2.hook_resid_post", dtype=torch.float64)
    assert moved is not sae and moved.hook.layer == 2 and moved.W_enc.dtype == torch.float64
    assert sae.hook == sw.HookPoint(1) and sae.W_enc.dtype == torch.float32


# -- errors ----------------------------------------------------------------------------------


def test_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="the path does not exist"):
        sw.load_sae(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "README.md").write_text("hi")
    with pytest.raises(FileNotFoundError, match=r"no SAE weights in .*sae_weights.safetensors.*README.md"):
        sw.load_sae(tmp_path / "empty")
    directory = write_saelens(tmp_path / "nocfg", make_weights(), {})
    (directory / "cfg.json").unlink()
    with pytest.raises(FileNotFoundError, match="no cfg.json"):
        sw.load_sae(directory)
    assert sw.load_sae(directory / "sae_weights.safetensors", hook="blocks.0.hook_resid_pre").d_in == D_IN
    (directory / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError, match="cfg.json is not valid JSON"):
        sw.load_sae(directory)
    (tmp_path / "weights.txt").write_text("W_enc")
    with pytest.raises(ValueError, match="unsupported SAE weights file weights.txt"):
        sw.load_sae(tmp_path / "weights.txt")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        sw.load_sae(tmp_path / "broken.safetensors")


@pytest.mark.parametrize("cfg, message", [
    ({"d_in": 20}, r"the config says d_in=20 but W_enc is \(16, 48\)"),
    ({"d_sae": 7}, "the config says d_sae=7"),
    ({"architecture": "transcoder"}, "unknown SAE architecture 'transcoder'"),
    ({"architecture": "topk"}, "a topk SAE needs an integer k between 1 and d_sae=48"),
    ({"architecture": "topk", "k": 100}, "k=100"),
    ({"architecture": "jumprelu"}, "a jumprelu SAE needs a threshold"),
    ({"architecture": "gated"}, "a gated SAE needs b_gate, r_mag and b_mag"),
    ({"hook_name": "blocks.3.attn.hook_z"}, "reads attn.hook_z; saewidgets supports residual-stream SAEs"),
    ({"hook_name": "embed"}, "cannot read a layer and site from hook name 'embed'"),
    ({"dtype": "float33"}, "unknown dtype 'float33'"),
    ({"normalize_activations": "expected_average_only_in"}, "fold_activation_norm_scaling_factor"),
])
def test_config_errors(tmp_path, cfg, message):
    with pytest.raises(ValueError, match=message):
        sw.load_sae(write_saelens(tmp_path / "bad", make_weights(), cfg))


def test_weight_errors():
    t = make_weights()
    with pytest.raises(ValueError, match=r"SAE weights lack \['W_dec'\]"):
        sw.load_sae({"W_enc": t["W_enc"]})
    with pytest.raises(ValueError, match=r"W_enc must be d_in x d_sae and W_dec d_sae x d_in; got W_enc \(16, 48\) and W_dec \(48, 15\)"):
        sw.load_sae({**t, "W_dec": t["W_dec"][:, :15]})
    with pytest.raises(ValueError, match=r"b_enc must have 48 values, got shape \(47,\)"):
        sw.load_sae({**t, "b_enc": t["b_enc"][:47]})


def test_argument_errors():
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['devcie'\]"):
        sw.load_sae(make_weights(), devcie="cpu")
    with pytest.raises(TypeError, match="load_sae cannot read a int"):
        sw.load_sae(3)
    with pytest.raises(ValueError, match="load_sae needs a path"):
        sw.load_sae()
    with pytest.raises(TypeError, match="do not apply to an existing sw.SAE"):
        sw.load_sae(sw.SAE(**make_weights()), k=3)
