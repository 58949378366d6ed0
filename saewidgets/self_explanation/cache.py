"""On-disk cache of self-explanations: one JSON file per (feature, settings), written atomically.

Off unless asked for: ``cache_dir=`` a folder, or ``cache_dir=None`` with the environment
variable ``SAEWIDGETS_CACHE`` set (``cache_dir=False`` turns it off even then). Files live
in ``<cache_dir>/self_explain/``. Each is JSON (never pickle), written to a temporary file
in the same folder and moved into place with ``os.replace``, so a run that is interrupted
leaves only complete files and the next run resumes with the features still missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
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
    config = getattr(module, "config", None)
    parts = [model_id(model), config.to_json_string() if hasattr(config, "to_json_string") else ""]
    for name in ("embed", "unembed"):
        weight = getattr(layout.part(module, name), "weight", None)
        if isinstance(weight, torch.Tensor) and not weight.is_meta:
            parts.append(tensor_digest(weight.reshape(-1)[:4096]))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def entry_key(**settings: Any) -> str:
    """A stable hash of JSON-serialisable settings."""
    text = json.dumps({"version": FORMAT_VERSION, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def entry_path(folder: Path, tag: str, key: str) -> Path:
    return folder / f"{tag}-{key[:24]}.json"


def load_entry(path: Path, key: str) -> dict | None:
    """The cached entry at ``path`` if it exists, parses and carries ``key``; else None."""
    try:
        entry = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("key") == key else None


def save_entry(path: Path, entry: dict) -> None:
    """Write ``entry`` as JSON atomically (temporary file in the same folder, then os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(entry, handle, allow_nan=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
