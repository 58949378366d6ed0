"""Numeric arrays packed into one binary buffer, referenced from JSON: compact saved state.

``Packer.add(values, dtype)`` appends an array to the buffer and returns a reference
``{"$a": [offset, length, code]}`` (``code``: f2 = float16, f4 = float32, u2 = uint16,
u4 = uint32, i4 = int32; little-endian, each array aligned to 4 bytes; an array added
twice is stored once). The JSON with references
and the bytes travel together (a Dict trait and a Bytes trait); ``unpack`` restores
plain lists, and the front end does the same (js/src/standalone/packing.js).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CODES: dict[str, Any] = {"f2": np.dtype("<f2"), "f4": np.dtype("<f4"), "u2": np.dtype("<u2"), "u4": np.dtype("<u4"),
         "i4": np.dtype("<i4")}


class Packer:
    """Collects arrays into one little-endian buffer."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._seen: dict[tuple[str, bytes], dict] = {}

    def add(self, values: Any, code: str = "f4") -> dict:
        if code not in CODES:
            raise ValueError(f"unknown array code {code!r}: use one of {', '.join(CODES)}")
        array = np.asarray(values, dtype=np.float64 if code.startswith("f") else np.int64).reshape(-1)
        if code.startswith("u") and array.size and array.min() < 0:
            raise ValueError(f"{code} arrays hold non-negative integers only")
        if code in ("u2", "u4", "i4") and array.size and not np.can_cast(np.min_scalar_type(array.max()), CODES[code]):
            raise ValueError(f"values up to {array.max()} do not fit a {code} array")
        data = array.astype(CODES[code]).tobytes()
        if (code, data) in self._seen:
            return dict(self._seen[(code, data)])
        ref = {"$a": [self._size, int(array.size), code]}
        self._seen[(code, data)] = ref
        padding = (-len(data)) % 4
        self._chunks.append(data + b"\0" * padding)
        self._size += len(data) + padding
        return ref

    def to_bytes(self) -> bytes:
        return b"".join(self._chunks)

    def __len__(self) -> int:
        return self._size


def is_ref(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"$a"}


def unpack(value: Any, buffer: bytes | memoryview) -> Any:
    """``value`` with every array reference replaced by a list of numbers."""
    if is_ref(value):
        offset, length, code = value["$a"]
        values = np.frombuffer(buffer, dtype=CODES[code], count=length, offset=offset)
        return values.astype(float if code.startswith("f") else int).tolist()
    if isinstance(value, dict):
        return {k: unpack(v, buffer) for k, v in value.items()}
    if isinstance(value, list):
        return [unpack(v, buffer) for v in value]
    return value
