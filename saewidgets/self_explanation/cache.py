"""On-disk cache of self-explanations: one JSON file per (feature, settings), written atomically.

Off unless asked for: ``cache_dir=`` a folder, or ``cache_dir=None`` with the environment
variable ``SAEWIDGETS_CACHE`` set (``cache_dir=False`` turns it off even then). Files live
in ``<cache_dir>/self_explain/``. Each is JSON (never pickle), written to a temporary file
in the same folder and moved into place with ``os.replace``, so a run that is interrupted
leaves only complete files and the next run resumes with the features still missing.
A file that does not fit the entry schema (missing fields, wrong types, lists of the wrong
length, non-finite numbers, scales other than the key's) is a cache miss with a warning: it
is recomputed and overwritten, never trusted and never fatal.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..core.model import model_id

ENV_VAR = "SAEWIDGETS_CACHE"
FORMAT_VERSION = 1


def resolve_cache_dir(cache_dir: str | os.PathLike | bool | None) -> Path | None:
    """The cache folder to use, or None for no cache."""
    if cache_dir is False:
        return None
    if cache_dir is None or cache_dir is True:
        env = os.environ.get(ENV_VAR)
        if not env:
            if cache_dir is True:
                raise ValueError(f"cache_dir=True needs the environment variable {ENV_VAR} set to a folder")
            return None
        cache_dir = env
    return Path(cache_dir).expanduser() / "self_explain"


def tensor_digest(tensor: torch.Tensor) -> str:
    """SHA-256 of a tensor's values (float32, CPU)."""
    data = tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha256(data).hexdigest()


def model_fingerprint(model: Any, layout: Any) -> str:
    """The model's name and config, plus a sample of its weights when they are loaded.

    Two random models built from the same config differ in their weights, so the sample
    (the first values of the embedding and of the unembedding) keeps their caches apart.
    """
    module = model._module
    config: Any = getattr(module, "config", None)
    parts = [model_id(model), config.to_json_string() if hasattr(config, "to_json_string") else ""]
    for name in ("embed", "unembed"):
        weight = getattr(layout.part(module, name), "weight", None)
        if isinstance(weight, torch.Tensor) and not weight.is_meta:
            parts.append(tensor_digest(weight.reshape(-1)[:4096]))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def entry_key(**settings: Any) -> str:
    """A stable hash of JSON-serialisable settings.

    The settings an entry must agree with (its ``scales``) are remembered under the key, so
    that ``load_entry(path, key)`` can refuse an entry that does not match what the key was
    built from.
    """
    text = json.dumps({"version": FORMAT_VERSION, **settings}, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()
    if settings.get("scales") is not None:
        _remember(key, {"scales": [float(s) for s in settings["scales"]]})
    return key


def entry_path(folder: Path, tag: str, key: str) -> Path:
    return folder / f"{tag}-{key[:24]}.json"


# -- the schema of an entry -----------------------------------------------------------------

# Per-scale lists: one value per scale, in the order of ``scales``.
NUMBER_LISTS = ("scales", "self_similarity", "entropy", "entropy_change", "cross_entropy")
TEXT_LISTS = ("generated",)
TEXTS = ("key", "zero_generated", "baseline_generated")


class CacheEntryWarning(UserWarning):
    """A cache file was unreadable or did not match its key; it is recomputed and overwritten."""


_EXPECTED: OrderedDict[str, dict] = OrderedDict()
_EXPECTED_MAX = 4096


def _remember(key: str, expected: dict) -> None:
    _EXPECTED[key] = expected
    _EXPECTED.move_to_end(key)
    while len(_EXPECTED) > _EXPECTED_MAX:
        _EXPECTED.popitem(last=False)


def entry_problem(entry: Any, key: str, expected: dict | None = None) -> str | None:
    """What is wrong with ``entry`` for ``key`` (None when nothing): the schema is the
    ``TEXTS`` strings, ``label`` an int or str, the ``NUMBER_LISTS`` lists of finite numbers
    and ``TEXT_LISTS`` lists of strings, all as long as ``scales``; with ``expected``
    (``{"scales": [...]}``, by default what ``entry_key`` was given for ``key``) the scales
    must be those."""
    if not isinstance(entry, dict):
        return f"it holds a JSON {type(entry).__name__}, not an object"
    missing = [name for name in (*TEXTS, "label", *NUMBER_LISTS, *TEXT_LISTS) if name not in entry]
    if missing:
        return f"it lacks {', '.join(missing)}"
    for name in TEXTS:
        if not isinstance(entry[name], str):
            return f"{name} is a {type(entry[name]).__name__}, not a string"
    if entry["key"] != key:
        return "its key is not the key of these settings (the file was edited or comes from another version)"
    label = entry["label"]
    if isinstance(label, bool) or not isinstance(label, (int, str)):
        return f"label is {label!r}, not a feature index or a direction's name"
    expected = expected if expected is not None else _EXPECTED.get(key)
    scales = entry["scales"]
    n = len(expected["scales"]) if expected else len(scales) if isinstance(scales, list) else 0
    if n == 0:
        return "scales is empty or not a list"
    for name in NUMBER_LISTS + TEXT_LISTS:
        values = entry[name]
        if not isinstance(values, list):
            return f"{name} is a {type(values).__name__}, not a list"
        if len(values) != n:
            return f"{name} has {len(values)} values for {n} scales"
        for i, value in enumerate(values):
            if name in TEXT_LISTS:
                if not isinstance(value, str):
                    return f"{name}[{i}] is {value!r}, not a string"
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"{name}[{i}] is {value!r}, not a number"
            elif not math.isfinite(value):
                return f"{name}[{i}] is {value}, not a finite number"
    if expected and [float(s) for s in scales] != expected["scales"]:
        first = next(i for i, (a, b) in enumerate(zip(scales, expected["scales"])) if float(a) != b)
        wanted = expected["scales"][first]
        return f"its scales differ from the ones asked for (scales[{first}] is {scales[first]}, expected {wanted})"
    return None


def load_entry(path: Path, key: str, expected: dict | None = None) -> dict | None:
    """The cached entry at ``path`` if it exists, parses, carries ``key`` and fits the schema
    (``entry_problem``); else None: a cache miss, so it is recomputed and overwritten. A file
    that exists but does not fit gets a ``CacheEntryWarning`` naming it and what was wrong."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        _warn(path, f"it cannot be read ({error})")
        return None
    try:
        entry = json.loads(text)
    except ValueError as error:
        _warn(path, f"it is not valid JSON ({error})")
        return None
    problem = entry_problem(entry, key, expected)
    if problem:
        _warn(path, problem)
        return None
    return entry


def _warn(path: Path, problem: str) -> None:
    warnings.warn(f"self-explanation cache file {path}: {problem}; recomputing it", CacheEntryWarning, stacklevel=3)


def save_entry(path: Path, entry: dict) -> None:
    """Write ``entry`` as JSON atomically (temporary file in the same folder, then os.replace).

    An entry that does not fit the schema (a NaN metric, say) is not written, with a
    ``CacheEntryWarning``: it would only be refused when read back.
    """
    problem = entry_problem(entry, entry.get("key", "") if isinstance(entry, dict) else "")
    if problem:
        warnings.warn(f"not caching {path.name}: {problem}", CacheEntryWarning, stacklevel=2)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(entry, handle, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
