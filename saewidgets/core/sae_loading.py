"""``load_sae``: SAELens directories, Gemma Scope files, SAELens objects and dicts of tensors.

Nothing here unpickles: safetensors and ``.npz`` (``allow_pickle=False``) are read
as data, and ``.pt`` files only through ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from .sae import SAE, HookPoint

_WEIGHT_NAMES = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold", "b_gate", "r_mag", "b_mag")
_WEIGHT_FILES = ("sae_weights.safetensors", "params.safetensors", "params.npz", "sae_weights.pt")


def load_sae(
    spec: Any = None,
    *,
    release: str | None = None,
    sae_id: str | None = None,
    hook: HookPoint | str | None = None,
    architecture: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **config: Any,
) -> SAE:
    """Load a sparse autoencoder as an ``sw.SAE``.

    ``spec`` may be a SAELens directory (``cfg.json`` + ``sae_weights.safetensors``),
    a Gemma Scope ``params.npz`` / ``params.safetensors`` (file or directory), a
    ``.safetensors`` file, a SAELens ``SAE`` object or a dict of tensors. With
    ``release=`` and ``sae_id=`` the SAE is resolved through SAELens's directory
    (needs ``pip install saewidgets[saelens]`` and a network). ``hook`` sets or
    overrides the hook point (``"blocks.8.hook_resid_pre"`` or a ``HookPoint``);
    other keywords (``k``, ``apply_b_dec_to_input``, ...) override the config.
    """
    if release is not None:
        if sae_id is None:
            raise ValueError("load_sae(release=...) needs sae_id=, e.g. sae_id='blocks.8.hook_resid_pre'")
        sae = _from_saelens_release(release, sae_id)
    elif spec is None:
        raise ValueError("load_sae needs a path, a SAELens SAE, a dict of tensors, or release= and sae_id=")
    elif isinstance(spec, SAE):
        sae = spec
    elif isinstance(spec, Mapping):
        sae = _build(dict(spec), dict(config), architecture, hook)
        config = {}
    elif isinstance(spec, (str, os.PathLike)):
        sae = _from_path(Path(spec).expanduser(), dict(config), architecture, hook)
        config = {}
    elif hasattr(spec, "W_enc") and hasattr(spec, "W_dec"):
        sae = _from_saelens_object(spec)
    else:
        raise TypeError(f"load_sae cannot read a {type(spec).__name__}")
    if hook is not None and not isinstance(spec, (Mapping, str, os.PathLike)):
        sae.hook = hook if isinstance(hook, HookPoint) else HookPoint.parse(hook)
    if config:
        raise TypeError(f"unexpected keyword arguments for this SAE source: {sorted(config)}")
    return sae.to(device=device, dtype=dtype) if (device or dtype) else sae


# -- files --------------------------------------------------------------------------------


def _from_path(path: Path, overrides: dict, architecture: str | None, hook: Any) -> SAE:
    if not path.exists():
        raise FileNotFoundError(f"no SAE at {path}: the path does not exist")
    cfg: dict = {}
    if path.is_dir():
        cfg_file = path / "cfg.json"
        if cfg_file.is_file():
            cfg = json.loads(cfg_file.read_text())
        weights = next((path / n for n in _WEIGHT_FILES if (path / n).is_file()), None)
        if weights is None:
            raise FileNotFoundError(
                f"no SAE weights in {path}: expected one of {', '.join(_WEIGHT_FILES)}"
            )
    else:
        weights = path
        sibling = path.parent / "cfg.json"
        if sibling.is_file():
            cfg = json.loads(sibling.read_text())
    tensors = read_tensors(weights)
    if weights.suffix == ".npz" or weights.name.startswith("params."):
        cfg.setdefault("architecture", "jumprelu" if "threshold" in _canonical(tensors) else "standard")
        cfg.setdefault("apply_b_dec_to_input", False)
        if hook is None and "hook_name" not in cfg and "hook_point" not in cfg:
            cfg["hook_name"] = str(path.resolve())  # Gemma Scope paths say layer_N
    cfg.update(overrides)
    return _build(tensors, cfg, architecture, hook)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file without unpickling anything."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {key: torch.from_numpy(np.array(data[key])) for key in data.files}
        except ValueError as error:
            raise ValueError(f"refusing to load {path}: it holds pickled objects ({error})") from error
    if suffix in (".pt", ".pth", ".bin"):
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            raise ValueError(
                f"refusing to load {path}: it is not a plain tensor file and saewidgets never "
                "unpickles arbitrary objects (convert it to safetensors)"
            ) from error
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{path} holds a {type(loaded).__name__}, not a dict of tensors")
        return dict(loaded)
    raise ValueError(
        f"unsupported SAE weights file {path.name}: use .safetensors (preferred), .npz or a "
        "weights-only .pt; pickles (.pkl) are never loaded"
    )


def _canonical(tensors: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Map lowercase/Gemma Scope key spellings onto SAELens names."""
    lookup = {name.lower(): name for name in _WEIGHT_NAMES}
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        name = lookup.get(key.lower(), key)
        out[name] = torch.as_tensor(value)
    return out


def _build(tensors: dict, cfg: dict, architecture: str | None, hook: Any) -> SAE:
    t = _canonical(tensors)
    missing = [n for n in ("W_enc", "W_dec") if n not in t]
    if missing:
        raise ValueError(f"SAE weights lack {missing}; found keys {sorted(tensors)}")
    arch = architecture or cfg.get("architecture") or _infer_architecture(t, cfg)
    arch = {"relu": "standard", "jump_relu": "jumprelu", "top_k": "topk"}.get(arch, arch)
    nested = cfg.get("metadata") if isinstance(cfg.get("metadata"), Mapping) else {}
    hook_spec = hook or cfg.get("hook_name") or nested.get("hook_name") or cfg.get("hook_point")
    if hook_spec is None and "hook_layer" in cfg:
        hook_spec = HookPoint(int(cfg["hook_layer"]), "resid_pre")
    k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
    if k is None and "k" in t:
        k = int(t["k"].item())
    d_in = cfg.get("d_in")
    if d_in is not None and int(d_in) != t["W_enc"].shape[0]:
        raise ValueError(f"cfg.json says d_in={d_in} but W_enc has {t['W_enc'].shape[0]} rows")
    metadata = {
        key: value for key, value in {**nested, **cfg}.items() if isinstance(value, (str, int, float, bool))
    }
    sae = SAE(
        t["W_enc"].float(),
        t["W_dec"].float(),
        t.get("b_enc"),
        t.get("b_dec"),
        architecture=arch,
        hook=hook_spec if hook_spec is None or isinstance(hook_spec, HookPoint) else HookPoint.parse(hook_spec),
        apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", False)),
        threshold=t.get("threshold"),
        k=k,
        b_gate=t.get("b_gate"),
        r_mag=t.get("r_mag"),
        b_mag=t.get("b_mag"),
        normalize_activations=cfg.get("normalize_activations") or "none",
        metadata=metadata,
    )
    dtype = _torch_dtype(cfg.get("dtype"))
    return sae.to(dtype) if dtype is not None and dtype != torch.float32 else sae


def _infer_architecture(t: Mapping[str, torch.Tensor], cfg: Mapping) -> str:
    if "threshold" in t:
        return "jumprelu"
    if "b_gate" in t:
        return "gated"
    if "k" in cfg or "k" in t:
        return "topk"
    return "standard"


def _torch_dtype(name: Any) -> torch.dtype | None:
    if not name:
        return None
    value = getattr(torch, str(name).replace("torch.", ""), None)
    return value if isinstance(value, torch.dtype) else None


# -- SAELens ------------------------------------------------------------------------------


def _from_saelens_object(obj: Any) -> SAE:
    """Convert a SAELens ``SAE`` (any version) by duck typing, without importing sae_lens."""
    cfg = getattr(obj, "cfg", None)
    arch = getattr(cfg, "architecture", None)
    arch = arch() if callable(arch) else arch
    metadata = getattr(cfg, "metadata", None)
    hook_name = getattr(metadata, "hook_name", None) or getattr(cfg, "hook_name", None) or getattr(cfg, "hook_point", None)
    tensors = {name: getattr(obj, name) for name in _WEIGHT_NAMES if isinstance(getattr(obj, name, None), torch.Tensor)}
    k = getattr(cfg, "k", None) or (getattr(cfg, "activation_fn_kwargs", None) or {}).get("k")
    normalize = getattr(cfg, "normalize_activations", "none")
    return _build(
        tensors,
        {
            "architecture": arch or _infer_architecture(tensors, {"k": k} if k else {}),
            "hook_name": hook_name,
            "k": k,
            "apply_b_dec_to_input": getattr(cfg, "apply_b_dec_to_input", False),
            "normalize_activations": normalize,
        },
        None,
        None,
    )


def _from_saelens_release(release: str, sae_id: str) -> SAE:
    try:
        from sae_lens import SAE as SAELensSAE  # type: ignore[import-not-found]
    except ImportError as error:
        raise ImportError(
            "load_sae(release=..., sae_id=...) resolves through SAELens: pip install 'saewidgets[saelens]'"
        ) from error
    loaded = SAELensSAE.from_pretrained(release, sae_id)
    obj = loaded[0] if isinstance(loaded, tuple) else loaded
    return _from_saelens_object(obj)


def save_sae(sae: SAE, directory: str | os.PathLike) -> Path:
    """Write ``sae`` as a SAELens directory (``cfg.json`` + ``sae_weights.safetensors``)."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.contiguous().cpu() for name, t in sae.state_tensors().items()}
    save_file(tensors, str(out / "sae_weights.safetensors"))
    cfg = {
        **sae.metadata,
        "architecture": sae.architecture,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": str(sae.W_enc.dtype).replace("torch.", ""),
        "apply_b_dec_to_input": sae.apply_b_dec_to_input,
        "normalize_activations": sae.normalize_activations,
    }
    if sae.hook is not None:
        cfg["hook_name"] = sae.hook.name or f"blocks.{sae.hook.layer}.hook_{sae.hook.site}"
        cfg["hook_layer"] = sae.hook.layer
    if sae.k is not None:
        cfg["k"] = sae.k
    (out / "cfg.json").write_text(json.dumps(cfg, indent=2))
    return out
