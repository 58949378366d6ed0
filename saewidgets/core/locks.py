"""One re-entrant lock per model: nnsight cannot run two traces on the same model at once.

Anything that traces or generates with a model (``sw.steer``, ``sw.self_explain``, the
explorer's worker threads, snapshots) holds ``model_lock(model)`` while it does. The lock is
re-entrant, so a caller that already holds it (the explorer around ``steer``) can call code
that takes it again. Locks are weak-keyed: they go away with their model.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

_MODEL_LOCKS: "weakref.WeakKeyDictionary[Any, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: Any) -> threading.RLock:
    """The re-entrant lock of ``model`` (one per model object): hold it while tracing the model."""
    with _LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock
