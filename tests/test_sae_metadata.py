"""SAELens's metadata (prepend_bos, context_size, model_name, neuronpedia_id, hook_name,
dataset_path, ...) ends up in ``sae.metadata`` the same way whichever path loaded the SAE,
so the same SAE steers the same whether it came as an object or from its folder.

The tests against the real SAELens need ``sae-lens`` (``pip install 'saewidgets[saelens]'``;
it can live in a venv made with ``--system-site-packages``) and are skipped without it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import saewidgets as sw
from tiny_models import tiny_model

D_IN, D_SAE = 32, 64
HOOK = "blocks.1.hook_resid_pre"
SAELENS_METADATA = {
    "model_name": "tiny-gpt2", "hook_name": HOOK, "prepend_bos": True, "context_size": 64,
    "dataset_path": "org/tiny-corpus", "neuronpedia_id": "tiny-gpt2/1-res", "hook_head_index": None,
}
KEPT = ("model_name", "hook_name", "prepend_bos", "context_size", "dataset_path", "neuronpedia_id")
PROMPT = "The quick brown"


def weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(D_SAE, D_IN, generator=g)
    return {"W_enc": W_dec.T.contiguous(), "W_dec": W_dec / W_dec.norm(dim=1, keepdim=True),
            "b_enc": torch.zeros(D_SAE), "b_dec": torch.zeros(D_IN)}


def expected_metadata(sae: sw.SAE) -> dict:
    return {key: sae.metadata.get(key) for key in KEPT}


@pytest.fixture(scope="module")
def model():
    return tiny_model("gpt2", d_model=D_IN)


def steered(model, sae, feature=3, scale=12.0):
    out = sw.steer(model, sae, PROMPT, features={feature: scale}, max_new_tokens=8, progress=False)
    return out.baseline, out.steered, out.baseline_ids, out.steered_ids, out.prompt_ids


# -- every path keeps the same metadata ----------------------------------------------------------


class DuckMetadata:
    """The layout of SAELens 6's SAEMetadata: attributes, None for anything missing, to_dict()."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __getattr__(self, name):
        return None

    def to_dict(self):
        return dict(self.__dict__)


class DuckConfigV6:
    """SAELens 6's config layout: fields, ``metadata`` an object, ``architecture()`` a classmethod."""

    def __init__(self, **metadata):
        self.d_in, self.d_sae, self.dtype, self.device = D_IN, D_SAE, "float32", "cpu"
        self.apply_b_dec_to_input, self.normalize_activations, self.reshape_activations = True, "none", "none"
        self.metadata = DuckMetadata(**metadata)

    @classmethod
    def architecture(cls):
        return "standard"


class DuckSAE(torch.nn.Module):
    def __init__(self, tensors, cfg):
        super().__init__()
        self.cfg = cfg
        for name, value in tensors.items():
            setattr(self, name, torch.nn.Parameter(value))


def test_duck_typed_v6_object_keeps_its_metadata():
    sae = sw.load_sae(DuckSAE(weights(), DuckConfigV6(**SAELENS_METADATA)))
    assert expected_metadata(sae) == {key: SAELENS_METADATA[key] for key in KEPT}
    assert sae.hook == sw.HookPoint(1, "resid_pre") and sae.apply_b_dec_to_input


def test_every_path_gives_the_same_metadata(tmp_path):
    t = weights()
    nested = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32",
              "apply_b_dec_to_input": True, "normalize_activations": "none", "metadata": SAELENS_METADATA}
    flat_pre6 = {"d_in": D_IN, "d_sae": D_SAE, "dtype": "torch.float32", "normalize_activations": False,
                 "hook_point": HOOK, "hook_point_layer": 1,
                 **{k: v for k, v in SAELENS_METADATA.items() if k != "hook_name"}}
    for name, cfg in (("v6", nested), ("pre6", flat_pre6)):
        (tmp_path / name).mkdir()
        save_file(t, str(tmp_path / name / "sae_weights.safetensors"))
        (tmp_path / name / "cfg.json").write_text(json.dumps(cfg))
    loaded = {
        "cfg.json v6": sw.load_sae(tmp_path / "v6"),
        "cfg.json pre-6": sw.load_sae(tmp_path / "pre6"),
        "v6 object": sw.load_sae(DuckSAE(t, DuckConfigV6(**SAELENS_METADATA))),
        "dict": sw.load_sae(t, hook=HOOK, apply_b_dec_to_input=True, metadata=SAELENS_METADATA),
        "saved by sw.save_sae": sw.load_sae(sw.save_sae(sw.load_sae(tmp_path / "v6"), tmp_path / "resaved")),
    }
    reference = {key: SAELENS_METADATA[key] for key in KEPT}
    for path, sae in loaded.items():
        assert expected_metadata(sae) == reference, path
        assert sae.hook == sw.HookPoint(1, "resid_pre"), path


def test_gemma_scope_and_overrides_name_the_hook_in_use(tmp_path):
    directory = tmp_path / "layer_3" / "width_16k" / "average_l0_20"
    directory.mkdir(parents=True)
    t = {**weights(), "threshold": torch.zeros(D_SAE)}
    np.savez(directory / "params.npz", **{k: v.numpy() for k, v in t.items()})
    sae = sw.load_sae(directory)
    assert sae.metadata["hook_name"] == "blocks.3.hook_resid_post" and sae.metadata["architecture"] == "jumprelu"
    moved = sw.load_sae(sae, hook="blocks.5.hook_resid_post")
    assert moved.metadata["hook_name"] == "blocks.5.hook_resid_post" and sae.metadata["hook_name"] == "blocks.3.hook_resid_post"


@pytest.mark.slow
def test_prepend_bos_from_the_object_steers_like_the_folder(model, tmp_path):
    """The regression: an object used to keep only hook_name, so steering lost prepend_bos."""
    t = weights()
    obj = sw.load_sae(DuckSAE(t, DuckConfigV6(**SAELENS_METADATA)))
    sw.save_sae(obj, tmp_path / "saved")
    folder = sw.load_sae(tmp_path / "saved")
    assert obj.metadata["prepend_bos"] is True and folder.metadata["prepend_bos"] is True
    with_bos = steered(model, obj)
    assert with_bos == steered(model, folder)
    assert with_bos[4][0][0] == model.tokenizer.bos_token_id  # the prompt did start with BOS
    without = sw.load_sae(DuckSAE(t, DuckConfigV6(**{**SAELENS_METADATA, "prepend_bos": False})))
    assert steered(model, without)[4][0][0] != model.tokenizer.bos_token_id


# -- the real SAELens ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sae_lens():
    return pytest.importorskip("sae_lens", reason="needs sae-lens (pip install 'saewidgets[saelens]')")


def saelens_sae(sae_lens, architecture: str):
    from sae_lens.saes.sae import SAEMetadata

    metadata = SAEMetadata(**{k: v for k, v in SAELENS_METADATA.items() if v is not None})
    common = dict(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=True, metadata=metadata)
    if architecture == "topk":
        sae = sae_lens.TopKSAE(sae_lens.TopKSAEConfig(k=4, **common))
    elif architecture == "jumprelu":
        sae = sae_lens.JumpReLUSAE(sae_lens.JumpReLUSAEConfig(**common))
    else:
        sae = sae_lens.StandardSAE(sae_lens.StandardSAEConfig(**common))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # SAELens initialises b_dec and b_enc to zero: give them values that matter
        for name, parameter in sae.named_parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=g) * (0.3 if parameter.ndim == 1 else 1.0))
        if architecture == "jumprelu":
            sae.threshold.abs_()
    return sae


@pytest.mark.parametrize("architecture", ["topk", "jumprelu", "standard"])
def test_real_saelens_object_and_its_saved_folder_load_alike(sae_lens, model, tmp_path, architecture):
    original = saelens_sae(sae_lens, architecture)
    original.save_model(tmp_path / "saelens")  # SAELens's own writer: cfg.json + sae_weights.safetensors
    from_object, from_folder = sw.load_sae(original), sw.load_sae(tmp_path / "saelens")
    assert from_object.metadata == from_folder.metadata
    assert expected_metadata(from_object) == {key: SAELENS_METADATA[key] for key in KEPT}
    assert (from_object.architecture, from_object.hook, from_object.k) == (architecture, sw.HookPoint(1), original.cfg.to_dict().get("k"))
    for name, tensor in from_object.state_tensors().items():
        assert torch.equal(tensor, from_folder.state_tensors()[name]), name
    x = torch.randn(5, D_IN, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(from_object.encode(x), original.encode(x))
        torch.testing.assert_close(from_folder(x), original(x), rtol=1e-5, atol=1e-5)
    assert steered(model, from_object) == steered(model, from_folder)


def test_real_saelens_prepend_bos_reaches_steering(sae_lens, model, tmp_path):
    original = saelens_sae(sae_lens, "topk")
    original.save_model(tmp_path / "saelens")
    runs = [steered(model, sae) for sae in (original, sw.load_sae(tmp_path / "saelens"))]  # steer() loads the object
    assert runs[0] == runs[1]
    assert runs[0][4][0][0] == model.tokenizer.bos_token_id
