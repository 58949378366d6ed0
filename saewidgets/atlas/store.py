"""The atlas file: one SQLite database (standard library, WAL) per (model, SAE).

Tables (schema ``SCHEMA_VERSION``):

- ``meta(key, value)``: JSON values: schema_version, model, sae (shape, hook, fingerprint), the
  collection's settings, corpus, status ("collecting" / "complete"), tokens counted, ...
- ``features``: per feature: n_fired (tokens where it fires), frequency, max_act, mean_act (mean of
  its nonzero activations), histogram (counts as int64 bytes) and hist_range (their bins span
  ``0..hist_range`` evenly), and the logit-lens statistics (``logit_stats``) when computed.
- ``examples``: top activating contexts (kind "top", rank 0 strongest) and samples of
  equal-width activation intervals (kind "quantile", ``grp`` the fine interval); each a token
  window (ids as int32 bytes, activations as float32 bytes), its peak index, document and
  position of the peak in that document.
- ``feature_tokens``: the tokens each feature fires on most (count, activation sum): search.
- ``coactivation(a, b, count)``: tokens where both features are among the strongest, a < b.
- ``vocab(token, text)``: token strings, so the file opens without the tokenizer.
- ``explanations``: text with its source (self-explanation, an import, ...), optional score.
- ``labels``: the user's label and notes per feature, committed as soon as they are set.
- ``directions``: named directions (vector as float32 bytes, provenance JSON).
- ``state``: a running collection's checkpoint (numpy arrays as bytes; never pickled).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

SCHEMA_VERSION = 1
APPLICATION_ID = 0x53574154  # "SWAT": marks the file as a saewidgets atlas

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS features (
    feature INTEGER PRIMARY KEY, n_fired INTEGER NOT NULL, frequency REAL NOT NULL,
    max_act REAL NOT NULL, mean_act REAL NOT NULL, histogram BLOB, hist_range REAL,
    std REAL, skew REAL, kurtosis REAL, logit_mean REAL, kind TEXT, top_tokens TEXT, bottom_tokens TEXT);
CREATE TABLE IF NOT EXISTS examples (
    feature INTEGER NOT NULL, kind TEXT NOT NULL, rank INTEGER NOT NULL, grp INTEGER,
    value REAL NOT NULL, doc INTEGER NOT NULL, position INTEGER NOT NULL, peak INTEGER NOT NULL,
    token_ids BLOB NOT NULL, acts BLOB NOT NULL, PRIMARY KEY (feature, kind, rank));
CREATE TABLE IF NOT EXISTS feature_tokens (
    feature INTEGER NOT NULL, token INTEGER NOT NULL, count INTEGER NOT NULL, act_sum REAL NOT NULL,
    PRIMARY KEY (feature, token));
CREATE INDEX IF NOT EXISTS feature_tokens_by_token ON feature_tokens (token);
CREATE TABLE IF NOT EXISTS coactivation (
    a INTEGER NOT NULL, b INTEGER NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (a, b));
CREATE INDEX IF NOT EXISTS coactivation_by_b ON coactivation (b);
CREATE TABLE IF NOT EXISTS vocab (token INTEGER PRIMARY KEY, text TEXT NOT NULL, norm TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS vocab_by_norm ON vocab (norm);
CREATE TABLE IF NOT EXISTS explanations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, feature INTEGER NOT NULL, text TEXT NOT NULL,
    source TEXT NOT NULL, score REAL, created TEXT NOT NULL DEFAULT (datetime('now')));
CREATE INDEX IF NOT EXISTS explanations_by_feature ON explanations (feature);
CREATE TABLE IF NOT EXISTS labels (
    feature INTEGER PRIMARY KEY, label TEXT NOT NULL DEFAULT '', notes TEXT NOT NULL DEFAULT '',
    updated TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS directions (
    name TEXT PRIMARY KEY, vector BLOB NOT NULL, d_model INTEGER NOT NULL, provenance TEXT NOT NULL,
    layer INTEGER, site TEXT, created TEXT NOT NULL DEFAULT (datetime('now')));
CREATE TABLE IF NOT EXISTS state (name TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL, data BLOB NOT NULL);
"""

# version -> function upgrading a connection from that version to the next (none yet: version 1
# is the first). Files older than the oldest entry, or newer than SCHEMA_VERSION, are refused.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}


class AtlasFileError(ValueError):
    """The file is not an atlas this version of saewidgets can read."""


def norm_token(text: str) -> str:
    """How search compares tokens: stripped of spaces and BPE space markers, lower case."""
    return text.replace("Ġ", " ").replace("▁", " ").strip().lower()


class Store:
    """A connection to one atlas file, safe to share between threads (one lock)."""

    def __init__(self, path: str | Path, *, create: bool = False, readonly: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"no atlas at {self.path}: collect one with sw.collect_activations(model, sae, "
                                    "corpus, path)")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.readonly = readonly
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        try:
            self._check_or_create(create)  # reads only, until the file is known to be an atlas
        except sqlite3.DatabaseError as error:
            self.db.close()
            raise AtlasFileError(f"{self.path} is not an atlas (not an SQLite database: {error})") from None
        except Exception:
            self.db.close()
            raise
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")  # a label survives a crash the moment it is set

    # -- schema ---------------------------------------------------------------------------
    def _check_or_create(self, create: bool) -> None:
        db = self.db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        app = db.execute("PRAGMA application_id").fetchone()[0]
        if not tables and create:
            db.execute("PRAGMA journal_mode=WAL")
            with self.lock, db:
                db.executescript(SCHEMA)
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                self._set_meta(schema_version=SCHEMA_VERSION)
            return
        if "meta" not in tables or app != APPLICATION_ID:
            raise AtlasFileError(f"{self.path} is an SQLite file but not a saewidgets atlas (no atlas metadata); "
                                 "open a file written by sw.collect_activations")
        version = self.meta().get("schema_version")
        if not isinstance(version, int):
            raise AtlasFileError(f"{self.path} has no schema version: it is damaged or not an atlas")
        if version > SCHEMA_VERSION:
            raise AtlasFileError(
                f"{self.path} uses atlas schema version {version}, newer than this saewidgets reads "
                f"({SCHEMA_VERSION}): upgrade saewidgets (pip install -U saewidgets) to open it")
        if version < SCHEMA_VERSION:
            oldest = min(MIGRATIONS, default=SCHEMA_VERSION)
            if version < oldest:
                raise AtlasFileError(
                    f"{self.path} uses atlas schema version {version}, older than any this saewidgets can "
                    f"migrate (oldest {oldest}, current {SCHEMA_VERSION}): collect it again with "
                    "sw.collect_activations, or open it with the saewidgets version that wrote it")
            if self.readonly:
                raise AtlasFileError(f"{self.path} uses schema version {version} and needs migrating to "
                                     f"{SCHEMA_VERSION}, but it is open read-only: open a writable copy")
            with self.lock, db:
                for v in range(version, SCHEMA_VERSION):
                    MIGRATIONS[v](db)
                db.executescript(SCHEMA)
                self._set_meta(schema_version=SCHEMA_VERSION)

    # -- meta -----------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        with self.lock:
            return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def _set_meta(self, **values: Any) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                            [(k, json.dumps(v)) for k, v in values.items()])

    def set_meta(self, **values: Any) -> None:
        with self.lock, self.db:
            self._set_meta(**values)

    # -- queries ----------------------------------------------------------------------------
    def query(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self.lock:
            return self.db.execute(sql, tuple(params)).fetchall()

    def write(self, sql: str, params: Iterable[Any] = ()) -> None:
        """One statement in its own transaction, committed (durable) before returning."""
        with self.lock, self.db:
            self.db.execute(sql, tuple(params))

    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    # -- checkpoint state -------------------------------------------------------------------
    def load_state(self) -> dict[str, np.ndarray]:
        out = {}
        for name, dtype, shape, data in self.query("SELECT name, dtype, shape, data FROM state"):
            out[name] = np.frombuffer(data, dtype=np.dtype(dtype)).reshape(json.loads(shape)).copy()
        return out

    def close(self) -> None:
        with self.lock:
            if not self.readonly:
                try:
                    self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # fold the WAL in: one file to share
                except sqlite3.Error:
                    pass
            self.db.close()


class _Transaction:
    """``with store.transaction() as db:`` one atomic, committed write under the store's lock."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store.lock.acquire()
        self.store.db.execute("BEGIN")
        return self.store.db

    def __exit__(self, kind, value, tb) -> None:
        try:
            if kind is None:
                self.store.db.commit()
            else:
                self.store.db.rollback()
        finally:
            self.store.lock.release()


def write_state(db: sqlite3.Connection, arrays: dict[str, np.ndarray]) -> None:
    db.execute("DELETE FROM state")
    db.executemany("INSERT INTO state (name, dtype, shape, data) VALUES (?, ?, ?, ?)",
                   [(name, a.dtype.str, json.dumps(list(a.shape)), np.ascontiguousarray(a).tobytes())
                    for name, a in arrays.items()])
