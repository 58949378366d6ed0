"""``load_sae``: SAELens directories, Gemma Scope files, SAELens objects and dicts of tensors.

Nothing here runs a pickle: safetensors and ``.npz`` (``allow_pickle=False``) are
read as data; ``.pt`` files only through torch's restricted ``weights_only`` loader
(and only on torch >= 2.6, whose loader has no known code-execution hole);
``.pkl`` files are refused.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .hub_errors import cached_on_disk, hub_error, hub_failure
from .sae import SAE, HookPoint

_WEIGHT_NAMES = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold", "b_gate", "r_mag", "b_mag")
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
    dtype: torch.dtype | None = None,
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
    Gemma Scope (False) for everything else.
    """
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if unknown:
        raise TypeError(f"load_sae got unexpected keyword arguments {unknown}; config keys are {list(CONFIG_KEYS)}")
    if hook is not None and not isinstance(hook, HookPoint):
        hook = HookPoint.parse(hook)
    if release is not None or sae_id is not None:
        if release is None or sae_id is None or spec is not None:
            raise ValueError(
                "give load_sae either a source or release= and sae_id= together, e.g. "
                "load_sae(release='gpt2-small-res-jb', sae_id='blocks.8.hook_resid_pre')"
            )
        sae = _from_saelens_object(_saelens_release(release, sae_id), config, hook)
    elif isinstance(spec, SAE):
        if config:
            raise TypeError(f"config keywords {sorted(config)} do not apply to an existing sw.SAE")
        sae = spec
        if hook is not None or device is not None or dtype is not None:
            sae = copy.deepcopy(spec)  # never change the caller's SAE in place
            sae.hook = hook or sae.hook
    elif isinstance(spec, Mapping):
        sae = _build(dict(spec), {"apply_b_dec_to_input": False, **config}, hook)
    elif isinstance(spec, (str, os.PathLike)):
        sae = _from_path(Path(spec).expanduser(), config, hook)
    elif hasattr(spec, "W_enc") and hasattr(spec, "W_dec"):
        sae = _from_saelens_object(spec, config, hook)
    elif spec is None:
        raise ValueError("load_sae needs a path, a SAELens SAE, a dict of tensors, or release= and sae_id=")
    else:
        raise TypeError(
            f"load_sae cannot read a {type(spec).__name__}: give a directory or weights file, a SAELens "
            "SAE, an sw.SAE or a dict of tensors"
        )
    return sae.to(device=device, dtype=dtype) if (device is not None or dtype is not None) else sae


# -- files --------------------------------------------------------------------------------


def _from_path(path: Path, overrides: dict, hook: HookPoint | None) -> SAE:
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
    cfg = _read_cfg(cfg_file) if cfg_file.is_file() else {}
    tensors = read_tensors(weights)
    if not cfg or weights.name.startswith("params.") or weights.suffix == ".npz":
        # Raw weights follow Gemma Scope: no input centring, layer in the path (resid_post).
        cfg.setdefault("apply_b_dec_to_input", False)
        flat = _normalise_cfg(cfg)
        if hook is None and not any(flat.get(key) is not None for key in ("hook_name", "hook_point", "hook_layer")):
            hook = _layer_from_path(path)
    return _build(tensors, {**cfg, **overrides}, hook)


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


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file without running any pickle."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except SafetensorError as error:
            raise ValueError(f"{path} is not a valid safetensors file ({error})") from error
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: torch.from_numpy(np.array(data[key])) for key in data.files}
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(
                f"refusing to load {path}: it holds pickled objects or is not an .npz of plain arrays "
                f"({error}); saewidgets never unpickles"
            ) from error
    if suffix in (".pt", ".pth", ".bin"):
        return _read_weights_only_torch(path)
    if suffix in (".pkl", ".pickle"):
        raise ValueError(f"refusing to load {path}: pickle files can run code when loaded; convert the weights to safetensors")
    raise ValueError(
        f"unsupported SAE weights file {path.name}: use .safetensors (preferred), .npz or a "
        "weights-only .pt"
    )


def _read_weights_only_torch(path: Path) -> dict[str, torch.Tensor]:
    version = tuple(int(part) for part in re.findall(r"\d+", torch.__version__)[:2])
    if version < (2, 6):
        raise ValueError(
            f"refusing to load {path}: torch {torch.__version__} cannot load .pt files safely "
            "(its weights_only loader has a known code-execution hole); upgrade torch to >= 2.6 or "
            "convert the weights to safetensors"
        )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError) as error:
        raise ValueError(
            f"refusing to load {path}: it is not a plain tensor file, and saewidgets never unpickles "
            f"arbitrary objects (convert it to safetensors). Detail: {str(error).splitlines()[0]}"
        ) from error
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not a dict of tensors")
    return dict(loaded)


# -- building ------------------------------------------------------------------------------


def _canonical(tensors: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Map lowercase/Gemma Scope key spellings onto SAELens names."""
    lookup = {name.lower(): name for name in _WEIGHT_NAMES}
    return {lookup.get(key.lower(), key): torch.as_tensor(value) for key, value in tensors.items()}


def _normalise_cfg(cfg: dict) -> dict:
    """One config dialect out of SAELens v6 (``metadata``), pre-6.0 and Gemma Scope ones."""
    cfg = dict(cfg)
    nested = cfg.pop("metadata", None)
    if isinstance(nested, Mapping):
        cfg = {**{k: v for k, v in nested.items() if v is not None}, **cfg}
    activation = cfg.get("activation_fn") or cfg.get("activation_fn_str")
    k = cfg.get("k")
    if k is None:
        k = (cfg.get("activation_fn_kwargs") or {}).get("k")
    arch = cfg.get("architecture") or ("topk" if activation == "topk" else None)
    arch = {"relu": "standard", "jump_relu": "jumprelu", "top_k": "topk"}.get(arch, arch)
    if arch == "standard" and activation == "topk":  # SAELens < 5 spelt TopK this way
        arch = "topk"
    normalize = cfg.get("normalize_activations")
    if isinstance(normalize, bool):  # pre-6.0: True meant the April-update scaling
        normalize = "expected_average_only_in" if normalize else "none"
    return {**cfg, "architecture": arch, "k": k, "normalize_activations": normalize or "none"}


def _build(tensors: dict, cfg: dict, hook: HookPoint | None) -> SAE:
    t = _canonical(tensors)
    cfg = _normalise_cfg(cfg)
    missing = [n for n in ("W_enc", "W_dec") if n not in t]
    if missing:
        raise ValueError(f"SAE weights lack {missing}; found keys {sorted(tensors)}")
    if "threshold" not in t and "log_threshold" in t:
        t["threshold"] = t["log_threshold"].exp()
    for key, axis in (("d_in", 0), ("d_sae", 1)):
        if cfg.get(key) is not None and int(cfg[key]) != t["W_enc"].shape[axis]:
            raise ValueError(f"the config says {key}={cfg[key]} but W_enc is {tuple(t['W_enc'].shape)} (d_in x d_sae)")
    _check_scaling_factor(t)
    if cfg.get("rescale_acts_by_decoder_norm"):
        # SAELens TopK scales pre-activations by |W_dec| rows and divides them back out
        # before decoding; folding the norms into the weights computes exactly that.
        norms = t["W_dec"].norm(dim=-1)
        t["W_enc"], t["W_dec"] = t["W_enc"] * norms, t["W_dec"] / norms[:, None]
        t["b_enc"] = t["b_enc"] * norms if "b_enc" in t else None
    if hook is None:
        name = cfg.get("hook_name") or cfg.get("hook_point")
        layer = cfg.get("hook_layer", cfg.get("hook_point_layer"))
        if name:
            hook = HookPoint.parse(name)
        elif layer is not None:
            hook = HookPoint(int(layer), "resid_pre")
    if cfg["k"] is None and "k" in t:
        cfg["k"] = int(t["k"].item())
    if cfg["architecture"] is None:  # no config: the weights tell
        cfg["architecture"] = "jumprelu" if "threshold" in t else "gated" if "b_gate" in t else "topk" if cfg["k"] else "standard"
    metadata = {key: value for key, value in cfg.items() if isinstance(value, (str, int, float, bool))}
    sae = SAE(
        t["W_enc"],
        t["W_dec"],
        t.get("b_enc"),
        t.get("b_dec"),
        architecture=cfg["architecture"],
        hook=hook,
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
        threshold=t.get("threshold"),
        k=cfg["k"],
        b_gate=t.get("b_gate"),
        r_mag=t.get("r_mag"),
        b_mag=t.get("b_mag"),
        normalize_activations=cfg["normalize_activations"],
        metadata=metadata,
    )
    dtype = _torch_dtype(cfg.get("dtype"))
    return sae.to(dtype) if dtype is not None else sae


def _check_scaling_factor(t: dict) -> None:
    """SAELens < 6 could store a finetuning ``scaling_factor``; all ones means none."""
    for name in ("scaling_factor", "finetuning_scaling_factor"):
        factor = t.pop(name, None)
        if factor is not None and not torch.all(factor == 1):
            raise ValueError(
                f"this SAE has a finetuning {name} that is not all ones; fold it into W_dec first "
                f"(W_dec *= {name}[:, None]) and save again"
            )


def _torch_dtype(name: Any) -> torch.dtype | None:
    if not name:
        return None
    value = getattr(torch, str(name).replace("torch.", ""), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {name!r} in the SAE config; use e.g. 'float32' or 'bfloat16'")
    return value


# -- SAELens ------------------------------------------------------------------------------

_SAELENS_CFG_FIELDS = (
    "d_in", "d_sae", "dtype", "apply_b_dec_to_input", "normalize_activations", "k", "activation_fn",
    "activation_fn_str", "activation_fn_kwargs", "rescale_acts_by_decoder_norm", "hook_name",
    "hook_point", "hook_layer",
)


def _from_saelens_object(obj: Any, overrides: dict, hook: HookPoint | None) -> SAE:
    """Convert a SAELens ``SAE`` (v5: ``cfg.hook_name``, ``cfg.architecture`` a string;
    v6: ``cfg.metadata.hook_name``, ``cfg.architecture()``) by duck typing."""
    cfg = getattr(obj, "cfg", None)
    values = {name: getattr(cfg, name, None) for name in _SAELENS_CFG_FIELDS}
    arch = getattr(cfg, "architecture", None)
    values["architecture"] = arch() if callable(arch) else arch
    metadata = getattr(cfg, "metadata", None)
    if metadata is not None:
        values["metadata"] = {"hook_name": getattr(metadata, "hook_name", None)}
    if values["apply_b_dec_to_input"] is None:
        values["apply_b_dec_to_input"] = True
    state = obj.state_dict() if callable(getattr(obj, "state_dict", None)) else {}
    tensors = {name: value for name, value in state.items() if isinstance(value, torch.Tensor)}
    for name in _WEIGHT_NAMES:
        value = getattr(obj, name, None)
        if isinstance(value, torch.Tensor):
            tensors.setdefault(name, value)
    tensors = {name: value.detach() for name, value in tensors.items()}
    values["dtype"] = values["dtype"] or str(tensors["W_enc"].dtype)
    return _build(tensors, {**{k: v for k, v in values.items() if v is not None}, **overrides}, hook)


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
    reserved = {"hook_name", "hook_point", "hook_layer", "k", "rescale_acts_by_decoder_norm", "finetuning_scaling_factor"}
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
