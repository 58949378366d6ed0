"""SAE weight tensors: read from files without running a pickle, then checked (numeric,
floating point where floats are needed, vectors of the right length, finite).

Nothing here runs a pickle: safetensors and ``.npz`` (``allow_pickle=False``, each member
read as a plain ``.npy`` array) are read as data; ``.pt`` files only through torch's
restricted ``weights_only`` loader (and only on torch >= 2.6, whose loader has no known
code-execution hole); ``.pkl`` files are refused.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

# SAELens names; files and dicts may spell them in lowercase (Gemma Scope).
WEIGHT_NAMES = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold", "b_gate", "r_mag", "b_mag")
AUXILIARY_NAMES = ("log_threshold", "scaling_factor", "finetuning_scaling_factor", "k")
VECTOR_NAMES = ("b_enc", "b_dec", "threshold", "b_gate", "r_mag", "b_mag", "log_threshold", "scaling_factor",
                "finetuning_scaling_factor")
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_NUMERIC_KINDS = "biuf"  # numpy dtype kinds: bool, signed, unsigned, float
_CANONICAL = {name.lower(): name for name in WEIGHT_NAMES + AUXILIARY_NAMES}


# -- reading files ----------------------------------------------------------------------------


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a weights file, by the name it has there, without running any pickle."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix == ".npz":
        return _read_npz(path)
    if suffix in (".pt", ".pth", ".bin"):
        return _read_weights_only_torch(path)
    if suffix in (".pkl", ".pickle"):
        raise ValueError(f"refusing to load {path}: pickle files can run code when loaded; convert the weights to safetensors")
    raise ValueError(
        f"unsupported SAE weights file {path.name}: use .safetensors (preferred), .npz or a "
        "weights-only .pt"
    )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError) as error:
        raise ValueError(f"{path} is not a valid safetensors file ({error})") from error


_ARCHIVE_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, KeyError,
                   NotImplementedError, RuntimeError)


def _read_npz(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = np.load(path, allow_pickle=False)
    except _ARCHIVE_ERRORS as error:
        raise ValueError(
            f"refusing to load {path}: it holds pickled objects or is not an .npz of plain arrays "
            f"({error}); saewidgets never unpickles"
        ) from error
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} is a single .npy array, not an .npz archive of named arrays (W_enc, W_dec, ...)")
    with data:
        return {name: _npz_member(path, data, name) for name in data.files}


def _npz_member(path: Path, data: Any, name: str) -> torch.Tensor:
    try:
        array = data[name]
    except ValueError as error:
        if "allow_pickle" in str(error) or "Object arrays" in str(error):
            raise ValueError(
                f"refusing to load {path}: member {name!r} holds pickled objects (an object "
                "array of Python objects), and saewidgets never unpickles; save plain numeric arrays instead "
                f"(np.savez(path, {name}=array.astype(np.float32), ...))"
            ) from error
        raise ValueError(f"{path}: member {name!r} cannot be read as an array ({error})") from error
    except _ARCHIVE_ERRORS as error:
        raise ValueError(f"{path}: member {name!r} cannot be read: the archive is damaged ({error})") from error
    if not isinstance(array, np.ndarray):  # numpy hands back the raw bytes of a member that is not .npy
        raw = bytes(array) if isinstance(array, (bytes, bytearray)) else b""
        what = "a pickle" if raw[:1] == b"\x80" else "not a .npy array"
        raise ValueError(
            f"refusing to load {path}: member {name!r} is {what} (it starts {raw[:8]!r}), not a plain "
            "numeric array; saewidgets never unpickles. Save the weights with np.savez or as safetensors"
        )
    if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.fields is not None:
        raise ValueError(
            f"{path}: member {name!r} has dtype {array.dtype} ({array.dtype.kind!r}); SAE weights must "
            "be plain numeric arrays (float32, float16, ...)"
        )
    if array.dtype.byteorder == ">" or not array.flags.writeable:
        array = array.astype(array.dtype.newbyteorder("="))
    return torch.from_numpy(np.ascontiguousarray(array))


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
    except Exception as error:  # noqa: BLE001 -- untrusted bytes: every parse failure means "not plain tensors"
        raise ValueError(
            f"refusing to load {path}: it is not a plain tensor file, and saewidgets never unpickles "
            f"arbitrary objects (convert it to safetensors). Detail: {(str(error).splitlines() or [''])[0]}"
        ) from error
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise ValueError(f"{path} holds a {type(loaded).__name__}, not a dict of tensors")
    return {str(key): value for key, value in loaded.items()}


# -- naming and checking ----------------------------------------------------------------------


def canonical_tensors(tensors: Mapping[Any, Any], source: str) -> dict[str, torch.Tensor]:
    """The known weights of ``tensors`` under their SAELens names (``w_enc`` -> ``W_enc``), as
    tensors; other entries are left out."""
    out: dict[str, torch.Tensor] = {}
    spelled: dict[str, str] = {}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise TypeError(f"{source}: weight names must be strings, got {key!r} ({type(key).__name__})")
        name = _CANONICAL.get(key.lower())
        if name is None:
            continue
        if name in out:
            raise ValueError(f"{source} holds both {spelled[name]!r} and {key!r}: which one is {name} is ambiguous")
        out[name], spelled[name] = _as_tensor(value, key, source), key
    return out


def _as_tensor(value: Any, key: str, source: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, np.ndarray) and (value.dtype.kind not in _NUMERIC_KINDS or value.dtype.fields is not None):
        raise ValueError(f"{source}: {key} is a numpy array of dtype {value.dtype}; SAE weights must be numeric arrays")
    try:
        return torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise ValueError(
            f"{source}: {key} is a {type(value).__name__} that is not an array of numbers ({error}); "
            "give a torch tensor or numpy array"
        ) from error


def check_weights(t: Mapping[str, torch.Tensor], source: str) -> None:
    """Floating-point weights, non-empty matrices and vectors that are vectors; ``k`` a whole number."""
    for name, tensor in t.items():
        if name == "k":
            continue
        if tensor.dtype not in FLOAT_DTYPES:
            kinds = ", ".join(str(d).replace("torch.", "") for d in FLOAT_DTYPES)
            raise ValueError(
                f"{source}: {name} has dtype {str(tensor.dtype).replace('torch.', '')}; SAE weights must be "
                f"floating point ({kinds}): convert it first, e.g. {name}.float()"
            )
        if name in VECTOR_NAMES and sum(size != 1 for size in tensor.shape) > 1:
            raise ValueError(f"{source}: {name} has shape {tuple(tensor.shape)}; expected a vector (one value per unit)")
    for name in ("W_enc", "W_dec"):
        if name in t and (t[name].ndim != 2 or 0 in t[name].shape):
            raise ValueError(
                f"{source}: {name} has shape {tuple(t[name].shape)}; expected a non-empty matrix "
                "(W_enc d_in x d_sae, W_dec d_sae x d_in)"
            )
    if "W_enc" in t and "W_dec" in t:
        W_enc, W_dec = t["W_enc"], t["W_dec"]
        if W_enc.shape != W_dec.shape[::-1]:
            raise ValueError(
                f"{source}: W_enc must be d_in x d_sae and W_dec d_sae x d_in; got W_enc {tuple(W_enc.shape)} "
                f"and W_dec {tuple(W_dec.shape)}"
            )
        d_in, d_sae = W_enc.shape
        for name in VECTOR_NAMES:
            length = d_in if name == "b_dec" else d_sae
            if name in t and t[name].numel() != length:
                what = "input dimension (d_in)" if name == "b_dec" else "feature (d_sae)"
                raise ValueError(f"{source}: {name} must have {length} values, got shape {tuple(t[name].shape)}: one per {what}")
    if "k" in t:
        k = t["k"]
        if k.numel() != 1 or k.is_complex() or not torch.isfinite(k.double()).all() or float(k) != int(float(k)) or float(k) < 1:
            shown = k.tolist() if k.numel() <= 4 else f"a tensor of shape {tuple(k.shape)}"
            raise ValueError(f"{source}: k is {shown}; expected one whole number >= 1 (the TopK k)")


def check_finite(t: Mapping[str, torch.Tensor], source: str, note: str = "") -> None:
    """A ValueError naming the first tensor holding NaN or infinite values: how many, and where
    the first is. A finite sum proves a tensor finite (any NaN or inf makes every sum over it
    non-finite), so the exact scan runs only when the sum is not finite."""
    for name, tensor in t.items():
        if not tensor.is_floating_point() or tensor.numel() == 0 or tensor.is_meta:
            continue
        total = tensor.sum(dtype=torch.float64 if tensor.dtype == torch.float64 else torch.float32)
        if bool(torch.isfinite(total)):
            continue
        bad = ~torch.isfinite(tensor)
        count = int(bad.sum())
        if count == 0:  # only the sum overflowed
            continue
        nan = int(torch.isnan(tensor).sum())
        flat = int(torch.argmax(bad.reshape(-1).to(torch.uint8)))
        index = tuple(int(i) for i in np.unravel_index(flat, tuple(tensor.shape))) if tensor.ndim else ()
        where = ", ".join(map(str, index))
        value = tensor.reshape(-1)[flat].item()
        raise ValueError(
            f"{source}: {name}{note} has {count} non-finite value{'s' if count > 1 else ''} of {tensor.numel()} "
            f"({nan} NaN, {count - nan} infinite); the first is {value} at {name}[{where}]. The weights are "
            "damaged or come from a diverged run: re-download or re-export them. To load them anyway "
            "(to inspect them), pass load_sae(..., check_finite=False)"
        )
