"""``load_sae``: SAELens directories, Gemma Scope files, SAELens objects and dicts of tensors.

Every path ends in the same place: a flat config read field by field with its type
(``sae_config``), weights read without running a pickle and checked (``sae_weights``: numeric,
floating point, finite unless ``check_finite=False``), and ``sae.metadata`` holding SAELens's
metadata (``prepend_bos``, ``context_size``, ``model_name``, ``neuronpedia_id``, ``hook_name``,
``dataset_path``, ...) the same way whichever path loaded it.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from .hub_errors import cached_on_disk, hub_error, hub_failure
from .sae import SAE, HookPoint
from .sae_config import json_value, normalise_config, object_config, read_config
from .sae_weights import FLOAT_DTYPES, WEIGHT_NAMES, canonical_tensors, check_finite as check_finite_tensors, check_weights
from .sae_weights import read_tensors  # noqa: F401  (re-exported: sw.core.sae_loading.read_tensors)

_WEIGHT_FILES = ("sae_weights.safetensors", "params.safetensors", "params.npz", "sae_weights.pt")
# Config keys a caller may override (``load_sae(path, k=32, apply_b_dec_to_input=False)``).
CONFIG_KEYS = (
    "architecture", "d_in", "d_sae", "dtype", "k", "apply_b_dec_to_input", "normalize_activations",
    "rescale_acts_by_decoder_norm", "hook_name", "hook_point", "hook_layer", "activation_fn",
    "activation_fn_str", "activation_fn_kwargs", "finetuning_scaling_factor", "metadata",
)


def load_sae(
    spec: Any = None,
    *,
    release: str | None = None,
    sae_id: str | None = None,
    hook: HookPoint | str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    check_finite: bool = True,
    **config: Any,
) -> SAE:
    """Load a sparse autoencoder as an ``sw.SAE``.

    ``spec`` may be a SAELens directory (``cfg.json`` + ``sae_weights.safetensors``),
    a Gemma Scope ``params.npz`` / ``params.safetensors`` (file or directory; the layer
    comes from a ``layer_N`` path component or ``hook=``), a weights file, a SAELens
    ``SAE`` object, an ``sw.SAE`` or a dict of tensors (SAELens or Gemma Scope names).
    With ``release=`` and ``sae_id=`` it is resolved through SAELens's directory (needs
    ``pip install 'saewidgets[saelens]'``). ``hook`` sets the hook point
    (``"blocks.8.hook_resid_pre"`` or a ``HookPoint``); other keywords override the
    config (``k``, ``apply_b_dec_to_input``, ``architecture``, ...). A config without
    ``apply_b_dec_to_input`` follows SAELens (True) for ``cfg.json`` directories and
    SAELens objects, and Gemma Scope (False) for everything else.

    Config values are read with their type: a ``cfg.json`` holding ``"apply_b_dec_to_input":
    "false"`` (a string), ``"d_in": 8.7`` or ``"architecture": ["topk"]`` is a ValueError
    naming the file, the key and the value; JSON booleans and whole numbers only.
    Weights must be floating point and finite: a NaN or infinite value is a ValueError naming
    the tensor, the count and the first index. ``check_finite=False`` skips that scan (one
    pass over the weights; see benchmarks/README.md for its cost) for SAEs known to be sound.
    """
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise TypeError(f"load_sae got unexpected keyword arguments {unknown}; config keys are {list(CONFIG_KEYS)}")
    if not isinstance(check_finite, bool):
        raise TypeError(f"check_finite must be True or False, got {check_finite!r}")
    if device is not None:
        device = _torch_device(device)
    if isinstance(dtype, str):
        dtype = _torch_dtype(dtype)
    if dtype is not None and not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.float32 (or its name), got {dtype!r}")
    if hook is not None and not isinstance(hook, HookPoint):
        if not isinstance(hook, str):
            raise TypeError(f"hook must be a hook name such as 'blocks.8.hook_resid_pre' or a HookPoint, got {hook!r}")
        hook = HookPoint.parse(hook)
    overrides = read_config(config, "load_sae keyword arguments")
    if release is not None or sae_id is not None:
        if release is None or sae_id is None or spec is not None:
            raise ValueError(
                "give load_sae either a source or release= and sae_id= together, e.g. "
                "load_sae(release='gpt2-small-res-jb', sae_id='blocks.8.hook_resid_pre')"
            )
        sae = _from_saelens_object(_saelens_release(release, sae_id), overrides, hook, check_finite)
    elif isinstance(spec, SAE):
        if config:
            raise TypeError(f"config keywords {sorted(config)} do not apply to an existing sw.SAE")
        if check_finite:
            check_finite_tensors(spec.state_tensors(), "the sw.SAE given to load_sae")
        sae = spec
        if hook is not None or device is not None or dtype is not None:
            sae = copy.deepcopy(spec)  # never change the caller's SAE in place
            if hook is not None:
                sae.hook = hook
                sae.metadata["hook_name"] = _hook_name(hook)
    elif isinstance(spec, Mapping):
        sae = _build(spec, {"apply_b_dec_to_input": False, **overrides}, hook, "the dict of SAE weights", check_finite)
    elif isinstance(spec, (str, os.PathLike)):
        sae = _from_path(Path(spec).expanduser(), overrides, hook, check_finite)
    elif hasattr(spec, "W_enc") and hasattr(spec, "W_dec"):
        sae = _from_saelens_object(spec, overrides, hook, check_finite)
    elif spec is None:
        raise ValueError("load_sae needs a path, a SAELens SAE, a dict of tensors, or release= and sae_id=")
    else:
        raise TypeError(
            f"load_sae cannot read a {type(spec).__name__}: give a directory or weights file, a SAELens "
            "SAE, an sw.SAE or a dict of tensors"
        )
    if device is None and dtype is None:
        return sae
    changes_dtype = dtype is not None and dtype != sae.dtype
    sae = sae.to(device=device, dtype=dtype)  # in place: sae is the loader's own (or a copy)
    if check_finite and changes_dtype:
        check_finite_tensors(sae.state_tensors(), "load_sae", note=f" (after converting to {dtype})")
    return sae


# -- files --------------------------------------------------------------------------------


def _from_path(path: Path, overrides: dict, hook: HookPoint | None, check: bool) -> SAE:
    if not path.exists():
        raise FileNotFoundError(f"no SAE at {path}: the path does not exist")
    directory = path if path.is_dir() else path.parent
    cfg_file = directory / "cfg.json"
    if path.is_dir():
        weights = next((path / n for n in _WEIGHT_FILES if (path / n).is_file()), None)
        if weights is None:
            found = sorted(p.name for p in path.iterdir())[:10]
            raise FileNotFoundError(f"no SAE weights in {path}: expected one of {', '.join(_WEIGHT_FILES)}; found {found}")
        if weights.name.startswith("sae_weights") and not cfg_file.is_file():
            raise FileNotFoundError(
                f"{path} has SAELens weights but no cfg.json (which says the hook, architecture and "
                f"input centring); restore it, or load the weights file itself: "
                f"load_sae('{weights}', hook='blocks.L.hook_resid_pre', apply_b_dec_to_input=True)"
            )
    else:
        weights = path
    cfg = read_config(_read_cfg(cfg_file), str(cfg_file)) if cfg_file.is_file() else {}
    tensors = read_tensors(weights)
    if not cfg or weights.name.startswith("params.") or weights.suffix == ".npz":
        # Raw weights follow Gemma Scope: no input centring, layer in the path (resid_post).
        cfg.setdefault("apply_b_dec_to_input", False)
        merged = {**cfg, **overrides}
        if hook is None and not any(key in merged for key in ("hook_name", "hook_point", "hook_layer", "hook_point_layer")):
            hook = _layer_from_path(path)
    return _build(tensors, {**cfg, **overrides}, hook, str(weights), check)


def _read_cfg(cfg_file: Path) -> dict:
    try:
        cfg = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{cfg_file} is not valid JSON ({error}); it should hold the SAELens config") from error
    if not isinstance(cfg, dict):
        raise ValueError(f"{cfg_file} should hold a JSON object (the SAELens config), not a {type(cfg).__name__}")
    return cfg


def _layer_from_path(path: Path) -> HookPoint | None:
    """Gemma Scope keeps the layer in the path (``.../layer_12/width_16k/...``). The path
    is taken as given: resolving symlinks (the Hugging Face cache) would lose it."""
    layers = re.findall(r"(?:^|/)layer_(\d+)(?=/|$)", path.absolute().as_posix())
    return HookPoint(int(layers[-1]), "resid_post", f"blocks.{layers[-1]}.hook_resid_post") if layers else None


# -- building ------------------------------------------------------------------------------


def _build(tensors: Mapping, cfg: dict, hook: HookPoint | None, source: str, check: bool) -> SAE:
    """An ``sw.SAE`` from raw tensors and a flat typed config (``read_config``)."""
    t = canonical_tensors(tensors, source)
    cfg = normalise_config(cfg)
    missing = [n for n in ("W_enc", "W_dec") if n not in t]
    if missing:
        raise ValueError(f"{source}: SAE weights lack {missing}; found keys {sorted(map(str, tensors))}")
    check_weights(t, source)
    if check:
        check_finite_tensors(t, source)
    if "threshold" not in t and "log_threshold" in t:
        t["threshold"] = t["log_threshold"].exp()
        if check:
            check_finite_tensors({"threshold": t["threshold"]}, source, note=" (exp of log_threshold)")
    t.pop("log_threshold", None)
    for key, axis in (("d_in", 0), ("d_sae", 1)):
        if cfg.get(key) is not None and cfg[key] != t["W_enc"].shape[axis]:
            raise ValueError(f"the config says {key}={cfg[key]} but W_enc is {tuple(t['W_enc'].shape)} (d_in x d_sae)")
    _check_scaling_factor(t)
    if cfg.get("rescale_acts_by_decoder_norm"):
        _fold_decoder_norms(t, source, check)
    if hook is None:
        name = cfg.get("hook_name") or cfg.get("hook_point")
        layer = cfg.get("hook_layer", cfg.get("hook_point_layer"))
        if name:
            hook = HookPoint.parse(name)
        elif layer is not None:
            hook = HookPoint(layer, "resid_pre")
    if cfg["k"] is None and "k" in t:
        cfg["k"] = int(float(t["k"]))
    t.pop("k", None)
    if cfg["architecture"] is None:  # no config: the weights tell
        cfg["architecture"] = "jumprelu" if "threshold" in t else "gated" if "b_gate" in t else "topk" if cfg["k"] else "standard"
    sae = SAE(
        t["W_enc"],
        t["W_dec"],
        t.get("b_enc"),
        t.get("b_dec"),
        architecture=cfg["architecture"],
        hook=hook,
        apply_b_dec_to_input=cfg.get("apply_b_dec_to_input", True),
        threshold=t.get("threshold"),
        k=cfg["k"],
        b_gate=t.get("b_gate"),
        r_mag=t.get("r_mag"),
        b_mag=t.get("b_mag"),
        normalize_activations=cfg["normalize_activations"],
        metadata=_metadata(cfg, hook),
    )
    dtype = _torch_dtype(cfg.get("dtype"))
    if dtype is None or dtype == sae.dtype:
        return sae
    sae = sae.to(dtype)
    if check:
        check_finite_tensors(sae.state_tensors(), source, note=f" (after converting to the config's dtype {dtype})")
    return sae


def _fold_decoder_norms(t: dict, source: str, check: bool) -> None:
    """SAELens TopK scales pre-activations by |W_dec| rows and divides them back out before
    decoding; folding the norms into the weights computes exactly that."""
    norms = t["W_dec"].norm(dim=-1)
    zero = (norms == 0).nonzero().reshape(-1)
    if len(zero):
        raise ValueError(
            f"{source}: rescale_acts_by_decoder_norm divides by the norm of each W_dec row, and "
            f"{len(zero)} of its rows are zero (the first: feature {int(zero[0])}); SAELens would produce NaN "
            "there too. Drop those features or load without rescale_acts_by_decoder_norm"
        )
    t["W_enc"], t["W_dec"] = t["W_enc"] * norms, t["W_dec"] / norms[:, None]
    if "b_enc" in t:
        t["b_enc"] = t["b_enc"] * norms
    if check:
        folded = {name: t[name] for name in ("W_enc", "W_dec", "b_enc") if name in t}
        check_finite_tensors(folded, source, note=" (after folding the decoder norms)")


def _metadata(cfg: dict, hook: HookPoint | None) -> dict:
    """Every config value that is JSON data (SAELens's metadata included), and the hook in use."""
    metadata = {key: json_value(value) for key, value in cfg.items()}
    metadata = {key: value for key, value in metadata.items() if value is not None}
    if hook is not None:
        metadata["hook_name"] = _hook_name(hook)
    return metadata


def _check_scaling_factor(t: dict) -> None:
    """SAELens < 6 could store a finetuning ``scaling_factor``; all ones means none."""
    for name in ("scaling_factor", "finetuning_scaling_factor"):
        factor = t.pop(name, None)
        if factor is not None and not torch.all(factor == 1):
            raise ValueError(
                f"this SAE has a finetuning {name} that is not all ones; fold it into W_dec first "
                f"(W_dec *= {name}[:, None]) and save again"
            )


def _torch_device(device: Any) -> torch.device:
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise TypeError(f"device must be a device name such as 'cpu' or 'cuda:0' (or a torch.device), got {device!r}")
    try:
        parsed = torch.device(device)
        if parsed.type not in ("cpu", "meta"):
            torch.empty(0, device=parsed)  # reachable? (torch asserts when built without CUDA)
    except (RuntimeError, ValueError, AssertionError) as error:
        reason = str(error).rstrip(".")
        raise ValueError(f"cannot put the SAE on device={device!r}: {reason}. Use e.g. 'cpu' or an available 'cuda:0'") from error
    return parsed


def _torch_dtype(name: Any) -> torch.dtype | None:
    if not name:
        return None
    value = getattr(torch, str(name).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in the SAE config; use e.g. 'float32' or 'bfloat16'")
    if value not in FLOAT_DTYPES:
        raise ValueError(f"dtype {name!r} in the SAE config is not a floating-point dtype; use e.g. 'float32' or 'bfloat16'")
    return value


# -- SAELens ------------------------------------------------------------------------------


def _from_saelens_object(obj: Any, overrides: dict, hook: HookPoint | None, check: bool) -> SAE:
    """Convert a SAELens ``SAE`` (v5: ``cfg.hook_name``, ``cfg.architecture`` a string;
    v6: ``cfg.metadata.hook_name``, ``cfg.architecture()``) by duck typing. Its config is
    read as SAELens writes it to ``cfg.json`` (``cfg.to_dict()``), so the object and its
    saved folder load alike."""
    source = f"the SAELens {type(obj).__name__}"
    cfg_obj = getattr(obj, "cfg", None)
    cfg = read_config(object_config(cfg_obj), f"{source}'s cfg") if cfg_obj is not None else {}
    cfg.setdefault("apply_b_dec_to_input", True)
    state = obj.state_dict() if callable(getattr(obj, "state_dict", None)) else {}
    tensors = {name: value for name, value in state.items() if isinstance(value, torch.Tensor)}
    for name in WEIGHT_NAMES:
        value = getattr(obj, name, None)
        if isinstance(value, torch.Tensor):
            tensors.setdefault(name, value)
    tensors = {name: value.detach() for name, value in tensors.items()}
    if "W_enc" in tensors:
        cfg.setdefault("dtype", str(tensors["W_enc"].dtype).replace("torch.", ""))
    return _build(tensors, {**cfg, **overrides}, hook, source, check)


def _saelens_release(release: str, sae_id: str) -> Any:
    try:
        from sae_lens import SAE as SAELensSAE  # type: ignore[import-not-found]
    except ImportError as error:
        raise ImportError(
            "load_sae(release=..., sae_id=...) resolves through SAELens's directory, which needs "
            "sae-lens: pip install 'saewidgets[saelens]' (or download the SAE and give its directory)"
        ) from error
    try:
        loaded = SAELensSAE.from_pretrained(release, sae_id)
    except Exception as error:
        failure = hub_failure(error)
        if failure is None:
            raise  # SAELens's own checks (unknown release or sae_id) say what is wrong
        repo_id, folder = _saelens_location(release, sae_id)
        raise hub_error(
            f"could not load SAE release={release!r}, sae_id={sae_id!r}: SAELens finds it in the hub repository "
            f"{repo_id} (folder {folder!r}), and downloading it failed",
            repo_id, failure, cached=cached_on_disk(repo_id, f"{folder}/cfg.json"),
            alternative=f"download that folder (hf download {repo_id} --include '{folder}/*' --local-dir DIR) "
            f"and give its path: load_sae('DIR/{folder}')",
            include=f"{folder}/*",
        ) from error
    return loaded[0] if isinstance(loaded, tuple) else loaded


def _saelens_location(release: str, sae_id: str) -> tuple[str, str]:
    """The hub repository and folder SAELens's directory gives for ``release``/``sae_id``."""
    try:
        from sae_lens.loading.pretrained_saes_directory import get_repo_id_and_folder_name

        return get_repo_id_and_folder_name(release, sae_id)
    except Exception:  # noqa: BLE001 - an internal SAELens helper; fall back to what was asked
        return release, sae_id


def save_sae(sae: SAE, directory: str | os.PathLike) -> Path:
    """Write ``sae`` as a SAELens directory (``cfg.json`` + ``sae_weights.safetensors``)."""
    from safetensors.torch import save_file

    out = Path(directory).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    save_file({name: t.contiguous().cpu() for name, t in sae.state_tensors().items()}, str(out / "sae_weights.safetensors"))
    reserved = {"hook_name", "hook_point", "hook_layer", "hook_point_layer", "k", "rescale_acts_by_decoder_norm",
                "finetuning_scaling_factor", "metadata"}
    cfg = {key: value for key, value in sae.metadata.items() if key not in reserved}
    cfg.update(
        architecture=sae.architecture,
        d_in=sae.d_in,
        d_sae=sae.d_sae,
        dtype=str(sae.W_enc.dtype).replace("torch.", ""),
        apply_b_dec_to_input=sae.apply_b_dec_to_input,
        normalize_activations=sae.normalize_activations,
    )
    if sae.hook is not None:
        cfg["hook_name"] = _hook_name(sae.hook)
        cfg["hook_layer"] = sae.hook.layer
    if sae.k is not None:
        cfg["k"] = sae.k
    (out / "cfg.json").write_text(json.dumps(cfg, indent=2))
    return out


def _hook_name(hook: HookPoint) -> str:
    """The original name when it reads back as the same hook, else the SAELens spelling."""
    try:
        same = hook.name and HookPoint.parse(hook.name) == HookPoint(hook.layer, hook.site, hook.name)
    except ValueError:
        same = False
    return hook.name if same else hook.saelens_name
