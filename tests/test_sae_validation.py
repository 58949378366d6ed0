"""load_sae refuses bad input with the package's ValueError naming what is wrong: cfg.json
values of the wrong type (file, key, value, what is expected), weights that are not plain
floating-point arrays, and weights holding NaN or infinite values (tensor, count, first index)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import saewidgets as sw

D_IN, D_SAE = 16, 48


def make_weights(seed: int = 0, **extra) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    t = {"W_enc": torch.randn(D_IN, D_SAE, generator=g), "W_dec": torch.randn(D_SAE, D_IN, generator=g),
         "b_enc": torch.randn(D_SAE, generator=g), "b_dec": torch.randn(D_IN, generator=g)}
    return {**t, **extra}


def write_saelens(directory, tensors, cfg):
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "sae_weights.safetensors"))
    (directory / "cfg.json").write_text(json.dumps(cfg))
    return directory


BASE_CFG = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "hook_name": "blocks.0.hook_resid_pre"}


# -- cfg.json, field by field -----------------------------------------------------------------


@pytest.mark.parametrize("key, value, expected", [
    ("apply_b_dec_to_input", "false", "true or false (a JSON boolean, written without quotes)"),
    ("apply_b_dec_to_input", 0, "true or false"),
    ("rescale_acts_by_decoder_norm", "true", "true or false"),
    ("d_in", 8.7, "an integer >= 1"),
    ("d_in", [8], "an integer >= 1"),
    ("d_in", True, "an integer >= 1"),
    ("d_sae", "abc", "an integer >= 1"),
    ("d_sae", "48", "not a string"),
    ("d_sae", 0, "an integer >= 1"),
    ("k", 3.7, "an integer >= 1"),
    ("architecture", ["topk"], "a string"),
    ("activation_fn_kwargs", "x", "a JSON object"),
    ("activation_fn_kwargs", {"k": 3.7}, "an object whose k is an integer >= 1"),
    ("hook_name", 5, "a string"),
    ("hook_layer", -1, "a non-negative integer"),
    ("normalize_activations", 0, 'a string such as "none"'),
    ("dtype", 32, "a dtype name"),
    ("metadata", "x", "a JSON object"),
    ("prepend_bos", "yes", "true or false"),
    ("context_size", "128", "an integer >= 1"),
    ("model_name", None, None),  # null is "not given": loads
])
def test_cfg_json_values_of_the_wrong_type_name_file_key_value(tmp_path, key, value, expected):
    directory = write_saelens(tmp_path / "bad", make_weights(), {**BASE_CFG, key: value})
    if expected is None:
        assert sw.load_sae(directory).d_in == D_IN
        return
    with pytest.raises(ValueError) as caught:
        sw.load_sae(directory)
    message = str(caught.value)
    assert str(directory / "cfg.json") in message
    assert f"{key} is {value!r} ({type(value).__name__}); expected " in message
    assert expected in message


def test_nested_metadata_keys_are_typed_and_named(tmp_path):
    cfg = {**BASE_CFG, "metadata": {"prepend_bos": "false", "model_name": "x"}}
    with pytest.raises(ValueError, match=r"cfg\.json: metadata\.prepend_bos is 'false' \(str\); expected true or false"):
        sw.load_sae(write_saelens(tmp_path / "nested", make_weights(), cfg))


def test_string_bool_is_not_read_as_true(tmp_path):
    """The bug: bool("false") is True. Now it is an error; the JSON boolean loads as written."""
    with pytest.raises(ValueError, match="apply_b_dec_to_input is 'false'"):
        sw.load_sae(write_saelens(tmp_path / "s", make_weights(), {**BASE_CFG, "apply_b_dec_to_input": "false"}))
    sae = sw.load_sae(write_saelens(tmp_path / "b", make_weights(), {**BASE_CFG, "apply_b_dec_to_input": False}))
    assert sae.apply_b_dec_to_input is False


def test_whole_numbers_written_as_floats_are_read_not_truncated(tmp_path):
    sae = sw.load_sae(write_saelens(tmp_path / "f", make_weights(), {**BASE_CFG, "d_in": 16.0, "architecture": "topk", "k": 3.0}))
    assert (sae.d_in, sae.k) == (D_IN, 3)
    with pytest.raises(ValueError, match=r"k is 3\.7"):
        sw.load_sae(write_saelens(tmp_path / "t", make_weights(), {**BASE_CFG, "architecture": "topk", "k": 3.7}))


def test_keyword_overrides_are_typed_too(tmp_path):
    directory = write_saelens(tmp_path / "s", make_weights(), BASE_CFG)
    with pytest.raises(ValueError, match=r"load_sae keyword arguments: k is 3\.7 \(float\); expected an integer >= 1"):
        sw.load_sae(directory, architecture="topk", k=3.7)
    with pytest.raises(ValueError, match="load_sae keyword arguments: apply_b_dec_to_input is 'no'"):
        sw.load_sae(directory, apply_b_dec_to_input="no")
    with pytest.raises(TypeError, match="check_finite must be True or False"):
        sw.load_sae(directory, check_finite="no")


def test_saelens_object_config_is_typed():
    class Cfg:
        d_in, d_sae, apply_b_dec_to_input, architecture = D_IN, D_SAE, "yes", "standard"
        hook_name = "blocks.0.hook_resid_pre"

    class FakeSAE:
        cfg = Cfg()
        W_enc, W_dec = make_weights()["W_enc"], make_weights()["W_dec"]

    with pytest.raises(ValueError, match=r"the SAELens FakeSAE's cfg: apply_b_dec_to_input is 'yes'"):
        sw.load_sae(FakeSAE())


def test_config_dtype_must_be_floating_point(tmp_path):
    with pytest.raises(ValueError, match="dtype 'int32' in the SAE config is not a floating-point dtype"):
        sw.load_sae(write_saelens(tmp_path / "d", make_weights(), {**BASE_CFG, "dtype": "int32"}))


# -- weights that are not plain floating-point arrays ---------------------------------------------


def test_npz_member_of_strings_is_refused(tmp_path):
    path = tmp_path / "params.npz"
    arrays = {k: v.numpy() for k, v in make_weights().items()}
    np.savez(path, **{**arrays, "b_enc": np.array([b"abc"] * D_SAE)})
    with pytest.raises(ValueError, match=r"params\.npz: member 'b_enc' has dtype \|S3 \('S'\); SAE weights must be plain numeric arrays"):
        sw.load_sae(path)
    np.savez(path, **{**arrays, "W_dec": arrays["W_dec"].astype(np.complex64)})
    with pytest.raises(ValueError, match="member 'W_dec' has dtype complex64"):
        sw.load_sae(path)


def test_a_single_npy_named_npz_is_refused(tmp_path):
    np.save(tmp_path / "params.npy", np.zeros((4, 8), np.float32))
    (tmp_path / "params.npy").rename(tmp_path / "params.npz")
    with pytest.raises(ValueError, match="is a single .npy array, not an .npz archive"):
        sw.load_sae(tmp_path / "params.npz")


def test_big_endian_npz_loads(tmp_path):
    t = make_weights()
    np.savez(tmp_path / "params.npz", **{k: v.numpy().astype(">f4") for k, v in t.items()})
    sae = sw.load_sae(tmp_path / "params.npz")
    assert torch.equal(sae.W_enc, t["W_enc"])


@pytest.mark.parametrize("name, value, message", [
    ("W_enc", torch.ones(D_IN, D_SAE, dtype=torch.int32), "W_enc has dtype int32; SAE weights must be floating point"),
    ("b_enc", torch.ones(D_SAE, dtype=torch.bool), "b_enc has dtype bool"),
    ("W_dec", torch.ones(D_SAE, D_IN, dtype=torch.uint8), "W_dec has dtype uint8"),
    ("b_enc", torch.ones(2, D_SAE // 2), r"b_enc has shape \(2, 24\); expected a vector"),
    ("W_enc", torch.ones(D_IN * D_SAE), r"W_enc has shape \(768,\); expected a non-empty matrix"),
    ("W_enc", torch.ones(D_IN, 0), r"W_enc has shape \(16, 0\); expected a non-empty matrix"),
    ("k", torch.tensor(3.5), r"k is 3\.5; expected one whole number >= 1"),
])
def test_safetensors_with_wrong_dtypes_or_shapes(tmp_path, name, value, message):
    path = tmp_path / "params.safetensors"
    save_file({**make_weights(), name: value}, str(path))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
        sw.load_sae(path)


def test_dict_values_that_are_not_arrays():
    with pytest.raises(ValueError, match="the dict of SAE weights: W_enc is a str that is not an array of numbers"):
        sw.load_sae({**make_weights(), "W_enc": "abc"})
    with pytest.raises(ValueError, match="W_dec is a numpy array of dtype object"):
        sw.load_sae({**make_weights(), "W_dec": np.array([None, 1], dtype=object)})
    with pytest.raises(TypeError, match="weight names must be strings, got 3"):
        sw.load_sae({**make_weights(), 3: torch.zeros(2)})
    with pytest.raises(ValueError, match="holds both 'W_enc' and 'w_enc'"):
        sw.load_sae({**make_weights(), "w_enc": torch.zeros(D_IN, D_SAE)})
    sae = sw.load_sae({**make_weights(), "notes": "trained on tiny stories"})  # unknown entries are ignored
    assert sae.d_sae == D_SAE


# -- NaN and infinity -----------------------------------------------------------------------


def damaged(name: str, seed: int = 0) -> tuple[dict, tuple]:
    """Weights with NaN at one place and inf at a later one in ``name``."""
    t = make_weights(seed, threshold=torch.rand(D_SAE, generator=torch.Generator().manual_seed(seed)))
    value = t[name].clone()
    first = (2, 5) if value.ndim == 2 else (7,)
    value[first] = float("nan")
    value.reshape(-1)[-1] = float("inf")
    t[name] = value
    return t, first


@pytest.mark.parametrize("name", ["W_enc", "W_dec", "b_enc", "b_dec", "threshold"])
@pytest.mark.parametrize("form", ["dict", "safetensors", "npz"])
def test_non_finite_weights_are_refused_with_count_and_place(tmp_path, name, form):
    t, first = damaged(name)
    if form == "dict":
        spec, source = t, "the dict of SAE weights"
    elif form == "safetensors":
        spec = write_saelens(tmp_path / "s", t, {"architecture": "jumprelu", "hook_name": "blocks.0.hook_resid_pre"})
        source = str(spec / "sae_weights.safetensors")
    else:
        spec = tmp_path / "layer_0" / "params.npz"
        spec.parent.mkdir()
        np.savez(spec, **{k: v.numpy() for k, v in t.items()})
        source = str(spec)
    where = ", ".join(map(str, first))
    with pytest.raises(ValueError) as caught:
        sw.load_sae(spec, architecture="jumprelu")
    message = str(caught.value)
    assert message.startswith(f"{source}: {name} has 2 non-finite values of {t[name].numel()} (1 NaN, 1 infinite)")
    assert f"the first is nan at {name}[{where}]" in message
    assert "re-download or re-export" in message and "check_finite=False" in message
    unchecked = sw.load_sae(spec, architecture="jumprelu", check_finite=False)  # on request, it loads as it is
    assert torch.isnan(getattr(unchecked, name)).sum() == 1


def test_derived_and_converted_weights_are_checked_too(tmp_path):
    t = make_weights()
    with pytest.raises(ValueError, match=r"threshold \(exp of log_threshold\) has 1 non-finite value of 48"):
        sw.load_sae({**t, "log_threshold": torch.tensor([1000.0] + [0.0] * (D_SAE - 1))}, architecture="jumprelu")
    big = {**t, "W_enc": t["W_enc"] * 1e5}
    with pytest.raises(ValueError, match=r"W_enc \(after converting to torch.float16\) has \d+ non-finite values"):
        sw.load_sae(big, dtype=torch.float16)
    assert sw.load_sae(big).dtype == torch.float32  # the float32 weights themselves are fine
    zero_row = {**t, "W_dec": t["W_dec"].clone()}
    zero_row["W_dec"][4] = 0
    with pytest.raises(ValueError, match=r"1 of its rows are zero \(the first: feature 4\)"):
        sw.load_sae(zero_row, architecture="topk", k=3, rescale_acts_by_decoder_norm=True)


def test_existing_sae_is_checked():
    sae = sw.SAE(**make_weights())
    with torch.no_grad():
        sae.b_dec[3] = float("-inf")
    with pytest.raises(ValueError, match=r"the sw.SAE given to load_sae: b_dec has 1 non-finite value of 16 \(0 NaN, 1 infinite\); the first is -inf at b_dec\[3\]"):
        sw.load_sae(sae)
    assert sw.load_sae(sae, check_finite=False) is sae


def test_large_finite_values_whose_sum_overflows_still_load():
    """The fast path (a finite sum) falls back to the exact scan when only the sum overflows."""
    t = make_weights()
    t["W_enc"] = torch.full((D_IN, D_SAE), 3e38)
    assert sw.load_sae(t).W_enc.max() == torch.tensor(3e38)
