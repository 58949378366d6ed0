"""Property: whatever config and tensors ``load_sae`` is given (dicts, cfg.json folders, npz,
safetensors, weights-only .pt), it either loads a finite SAE or raises the package's own
ValueError / TypeError with a message; never another exception type, never an error raised
from deep inside torch or numpy, never an SAE carrying NaN or inf.

Bounded: a fixed number of examples per property, no deadline per example (the 2 shared CPU
cores make single examples slow at times); the whole file runs in well under 30 s.
"""

from __future__ import annotations

import json
import math
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import saewidgets as sw
from saewidgets.core.sae_config import FIELDS
from saewidgets.core.sae_loading import CONFIG_KEYS

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
PACKAGE = str(Path(sw.__file__).parent)

SPECIAL = [math.nan, math.inf, -math.inf, 3e38, -3e38, 0.0, 1e-30]
WORDS = ["true", "false", "topk", "jumprelu", "standard", "gated", "relu", "none", "float32", "bfloat16",
         "int8", "blocks.1.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.2.attn.hook_z", "layer_2/width_16k",
         "model.layers.1", "", "abc", "3", "expected_average_only_in", "layer_norm"]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 300),
    st.floats(allow_nan=True, allow_infinity=True, width=32), st.sampled_from(WORDS),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["k", "prepend_bos", "hook_name", "x"]), inner, max_size=3),
    max_leaves=5,
)
GOOD = {
    "architecture": st.sampled_from(["standard", "jumprelu", "topk", "gated", "relu", "jump_relu", "top_k", "transcoder"]),
    "k": st.integers(1, 8),
    "apply_b_dec_to_input": st.booleans(),
    "rescale_acts_by_decoder_norm": st.booleans(),
    "hook_name": st.sampled_from(["blocks.0.hook_resid_pre", "blocks.2.hook_resid_post", "model.layers.1", "blocks.1.attn.hook_z"]),
    "hook_layer": st.integers(0, 3),
    "normalize_activations": st.sampled_from(["none", "layer_norm", "constant_norm_rescale", False, True, "l2"]),
    "dtype": st.sampled_from(["float32", "float64", "bfloat16", "float16", "torch.float32", "int8"]),
    "prepend_bos": st.booleans(),
    "context_size": st.integers(1, 1024),
    "activation_fn_kwargs": st.fixed_dictionaries({"k": st.integers(1, 8)}),
}
CONFIG_NAMES = sorted(set(FIELDS) | {"metadata", "hook_point", "hook_point_layer", "some_extra_key"})


@st.composite
def configs(draw, d_in: int, d_sae: int) -> dict:
    """A config: mostly well-typed values (so that many load), mixed with any JSON value."""
    keys = draw(st.lists(st.sampled_from(CONFIG_NAMES), max_size=6, unique=True))
    good = {**GOOD, "d_in": st.sampled_from([d_in, d_in + 1, float(d_in)]), "d_sae": st.sampled_from([d_sae, float(d_sae)])}
    cfg = {key: draw(st.one_of(good[key], json_values) if key in good else json_values) for key in keys}
    if draw(st.booleans()):
        nested = draw(st.lists(st.sampled_from(["prepend_bos", "hook_name", "context_size", "model_name", "neuronpedia_id"]), max_size=3, unique=True))
        cfg["metadata"] = {key: draw(st.one_of(GOOD.get(key, st.text(max_size=5)), json_values)) for key in nested}
    return cfg


ARCH_SPELLINGS = {"standard": ["standard", "relu"], "jumprelu": ["jumprelu", "jump_relu"], "topk": ["topk", "top_k"],
                  "gated": ["gated"]}
EXTRA = {"standard": [], "jumprelu": ["threshold"], "topk": [], "gated": ["b_gate", "r_mag", "b_mag"]}
FLOATS = [torch.float32] * 5 + [torch.float16, torch.float64, torch.bfloat16]
DAMAGES = ["special value", "integer dtype", "wrong shape", "drop tensor", "config value", "override", "hook", "k tensor"]


@st.composite
def tensor(draw, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    n = math.prod(shape)
    values = draw(st.lists(st.floats(-4, 4, width=32), min_size=n, max_size=n))
    return torch.tensor(values, dtype=torch.float64).reshape(shape).to(dtype)


@st.composite
def load_cases(draw):
    """A well-formed SAE of a random architecture, then up to two damages of random kinds."""
    d_in, d_sae = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    arch = draw(st.sampled_from(sorted(ARCH_SPELLINGS)))
    dtype = draw(st.sampled_from(FLOATS))
    shapes = {"W_enc": (d_in, d_sae), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    names = ["W_enc", "W_dec", *EXTRA[arch], *draw(st.lists(st.sampled_from(["b_enc", "b_dec"]), max_size=2, unique=True))]
    if arch == "jumprelu" and draw(st.booleans()):
        names[names.index("threshold")] = "log_threshold"
    lower = draw(st.integers(0, 3)) == 0  # Gemma Scope's lowercase names
    tensors = {(n.lower() if lower else n): draw(tensor(shapes.get(n, (d_sae,)), dtype)) for n in names}
    cfg = {"architecture": draw(st.sampled_from(ARCH_SPELLINGS[arch])),
           "hook_name": draw(st.sampled_from(["blocks.0.hook_resid_pre", "blocks.2.hook_resid_post", "model.layers.1"]))}
    if arch == "topk":
        cfg["k"] = draw(st.integers(1, d_sae))
    for key in draw(st.lists(st.sampled_from([k for k in sorted(GOOD) if k not in cfg and k != "k"]), max_size=3, unique=True)):
        cfg[key] = draw(GOOD[key])  # mostly sound values, some that SAELens itself would refuse
    overrides, hook, to_dtype = {}, None, draw(st.sampled_from([None, None, None, torch.float16, torch.float64, "bfloat16"]))
    for damage in draw(st.lists(st.sampled_from(DAMAGES), max_size=2)):
        if not tensors:
            break
        key = draw(st.sampled_from(sorted(tensors)))
        if damage == "special value":
            flat = tensors[key].clone().reshape(-1)
            flat = flat if flat.is_floating_point() else flat.float()
            flat[draw(st.integers(0, flat.numel() - 1))] = draw(st.sampled_from(SPECIAL))
            tensors[key] = flat.reshape(tensors[key].shape)
        elif damage == "integer dtype":
            finite = torch.nan_to_num(tensors[key].double(), nan=0.0, posinf=0.0, neginf=0.0).clamp(-100, 100)
            tensors[key] = finite.to(draw(st.sampled_from([torch.int32, torch.bool, torch.uint8])))
        elif damage == "wrong shape":
            shape = draw(st.sampled_from([(), (1,), (2, 3), tuple(tensors[key].shape[::-1]), (tensors[key].numel() + 1,)]))
            tensors[key] = draw(tensor(tuple(shape), dtype))
        elif damage == "drop tensor":
            tensors.pop(key)
        elif damage == "config value":
            cfg[draw(st.sampled_from(CONFIG_NAMES))] = draw(json_values)
        elif damage == "override":
            overrides.update(draw(configs(d_in, d_sae)))
            overrides.pop("dtype", None)  # load_sae's dtype= is its own keyword (a torch.dtype or its name)
        elif damage == "hook":
            hook = draw(st.sampled_from(["blocks.1.hook_resid_pre", "blocks.0.attn.hook_z", "embed"]))
        else:
            tensors["k"] = torch.tensor(draw(st.sampled_from([0, 1, 2, 3.5, -1, d_sae])))
    form = draw(st.sampled_from(["dict", "numpy dict", "saelens folder", "npz", "params.safetensors", "pt"]))
    if form in ("dict", "numpy dict", "npz", "params.safetensors", "pt"):  # no cfg.json: what it said goes as keywords
        overrides = {**{k: v for k, v in cfg.items() if k in CONFIG_KEYS and k != "dtype"}, **overrides}
    return tensors, form, cfg, overrides, hook, to_dtype


def write(directory: Path, form: str, tensors: dict, cfg: dict):
    """The case as ``load_sae`` would meet it, on disk for the file forms."""
    if form == "dict":
        return tensors
    if form == "numpy dict":
        return {k: (v.float() if v.dtype == torch.bfloat16 else v).numpy() for k, v in tensors.items()}
    if form == "npz":
        path = directory / "layer_1" / "params.npz"
        path.parent.mkdir()
        np.savez(path, **write(directory, "numpy dict", tensors, cfg))
        return path
    if form == "pt":
        torch.save(tensors, directory / "sae.pt")
        return directory / "sae.pt"
    if form == "params.safetensors":
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "params.safetensors"))
        return directory / "params.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "sae_weights.safetensors"))
    (directory / "cfg.json").write_text(json.dumps(cfg))
    return directory


def check_outcome(load) -> sw.SAE | None:
    """Run ``load``: the SAE it returns is finite; an error is a ValueError / TypeError raised by
    saewidgets itself, with a message."""
    try:
        sae = load()
    except (ValueError, TypeError) as error:
        assert type(error) in (ValueError, TypeError), f"{type(error).__name__}: {error}"
        assert len(str(error)) > 20, f"a terse message: {error!r}"
        raised_in = traceback.extract_tb(error.__traceback__)[-1].filename
        assert raised_in.startswith(PACKAGE), f"raised outside saewidgets ({raised_in}): {error!r}"
        return None
    for name, value in sae.state_tensors().items():
        assert torch.isfinite(value.float()).all(), f"{name} carries NaN/inf"
    json.dumps(sae.metadata)  # plain JSON data
    return sae


@pytest.mark.slow
@SETTINGS
@given(load_cases())
def test_load_sae_loads_or_refuses_cleanly(case):
    tensors, form, cfg, overrides, hook, dtype = case
    with tempfile.TemporaryDirectory() as tmp:
        spec = write(Path(tmp), form, tensors, cfg)
        sae = check_outcome(lambda: sw.load_sae(spec, hook=hook, dtype=dtype, **overrides))
        if sae is not None and form != "dict":
            assert sae.d_in == sae.W_dec.shape[1] and sae.architecture in ("standard", "jumprelu", "topk", "gated")
        if sae is not None:  # what loads saves and loads back the same
            again = sw.load_sae(sw.save_sae(sae, Path(tmp) / "saved"))
            assert (again.architecture, again.k, again.hook, again.apply_b_dec_to_input) == (
                sae.architecture, sae.k, sae.hook, sae.apply_b_dec_to_input)
            for name, value in sae.state_tensors().items():
                assert torch.equal(value, again.state_tensors()[name]), name


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(CONFIG_KEYS) + ["metadata"]), json_values, max_size=5))
def test_any_cfg_json_loads_or_names_the_file(cfg):
    g = torch.Generator().manual_seed(0)
    tensors = {"W_enc": torch.randn(4, 6, generator=g), "W_dec": torch.randn(6, 4, generator=g),
               "threshold": torch.rand(6, generator=g)}
    with tempfile.TemporaryDirectory() as tmp:
        spec = write(Path(tmp), "saelens folder", tensors, cfg)
        check_outcome(lambda: sw.load_sae(spec))


@SETTINGS
@given(st.binary(min_size=0, max_size=300), st.sampled_from(["params.npz", "params.safetensors", "sae.pt"]))
def test_damaged_weight_files_are_refused_cleanly(data, name):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        assert check_outcome(lambda: sw.load_sae(path)) is None


@pytest.mark.parametrize("name", ["params.npz", "params.safetensors"])
def test_truncated_real_files_are_refused_cleanly(tmp_path, name):
    """Every prefix of a real file (cut downloads) is refused with the package's error."""
    g = torch.Generator().manual_seed(0)
    tensors = {"W_enc": torch.randn(4, 6, generator=g), "W_dec": torch.randn(6, 4, generator=g)}
    full = tmp_path / name
    if name.endswith(".npz"):
        np.savez(full, **{k: v.numpy() for k, v in tensors.items()})
    else:
        save_file(tensors, str(full))
    data = full.read_bytes()
    cut = tmp_path / "cut" / name
    cut.parent.mkdir()
    for length in range(0, len(data), max(1, len(data) // 60)):
        cut.write_bytes(data[:length])
        assert check_outcome(lambda: sw.load_sae(cut)) is None, length
