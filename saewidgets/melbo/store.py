"""``MelboStore``: MELBO runs in one SQLite file, so learned vectors survive the kernel.

Tables (all prefixed ``melbo_``, so they can live inside another SQLite file, such as an atlas):

- ``melbo_runs``: one row per run: ``key`` (a hash of the model, the prompts' tokens and the
  settings), the settings and prompts as JSON, the model's name, ``d_model``, creation time.
- ``melbo_vectors``: each finished vector of a run: ``idx``, the vector (float32 little-endian
  bytes), its objective, the objective at every step (JSON), seconds spent, an optional name.
- ``melbo_progress``: the vector being learned, at its last checkpoint: step, theta and the
  optimiser's moments (float32 bytes), the objective history so far.

Nothing is pickled: numbers are JSON or raw float32 bytes, read back with ``np.frombuffer`` and
checked against ``d_model``. Every write is one transaction: an interrupted run leaves the last
checkpoint, complete.

>>> store = MelboStore("melbo.sqlite")
>>> [run.settings for run in store.runs()]
>>> store.vectors(run_id)          # VectorRecord values, in order
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

FORMAT_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS melbo_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS melbo_runs (
    id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL, model TEXT NOT NULL, d_model INTEGER NOT NULL,
    settings TEXT NOT NULL, prompts TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS melbo_vectors (
    run INTEGER NOT NULL REFERENCES melbo_runs(id), idx INTEGER NOT NULL, vector BLOB NOT NULL,
    objective REAL NOT NULL, history TEXT NOT NULL, seconds REAL NOT NULL, name TEXT,
    PRIMARY KEY (run, idx));
CREATE TABLE IF NOT EXISTS melbo_progress (
    run INTEGER PRIMARY KEY REFERENCES melbo_runs(id), idx INTEGER NOT NULL, step INTEGER NOT NULL,
    theta BLOB NOT NULL, exp_avg BLOB NOT NULL, exp_avg_sq BLOB NOT NULL, max_exp_avg_sq BLOB NOT NULL,
    history TEXT NOT NULL, seconds REAL NOT NULL);
"""


@dataclass
class RunRecord:
    """One run: its id in the file, key, model name, width, settings and prompts."""

    id: int
    key: str
    model: str
    d_model: int
    settings: dict[str, Any]
    prompts: list[str]
    created: float
    n_vectors: int = 0


@dataclass
class VectorRecord:
    """One finished vector of a run."""

    index: int
    vector: np.ndarray  # d_model float32
    objective: float
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    name: str | None = None


@dataclass
class Progress:
    """The vector in progress at its last checkpoint: ``step`` updates done, theta and AdamW's moments."""

    index: int
    step: int
    theta: np.ndarray
    exp_avg: np.ndarray
    exp_avg_sq: np.ndarray
    max_exp_avg_sq: np.ndarray
    history: list[float]
    seconds: float


def _blob(values: Any) -> bytes:
    return np.ascontiguousarray(np.asarray(values, dtype="<f4")).tobytes()


class MelboStore:
    """MELBO runs, their finished vectors and the vector in progress, in the SQLite file ``path``.

    ``path`` may be a new file, one written here before, or another SQLite database (an atlas)
    to add the ``melbo_`` tables to. A file that is not SQLite is refused with a ValueError.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        if isinstance(path, MelboStore):
            path = path.path  # type: ignore[has-type]
        if not isinstance(path, (str, os.PathLike)):
            raise ValueError(f"path must be a file path (str or Path), got {type(path).__name__}")
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder: give a file path for the MELBO store, e.g. {self.path / 'melbo.sqlite'}")
        if not self.path.parent.is_dir():
            raise ValueError(f"the folder {self.path.parent} does not exist: create it first, or give another path")
        try:
            with self._connect() as con:
                con.executescript(SCHEMA)
                row = con.execute("SELECT value FROM melbo_meta WHERE key = 'format'").fetchone()
                if row is None:
                    con.execute("INSERT INTO melbo_meta VALUES ('format', ?)", (str(FORMAT_VERSION),))
                elif row[0] != str(FORMAT_VERSION):
                    raise ValueError(f"{self.path} holds MELBO runs in format {row[0]}; this version reads format "
                                     f"{FORMAT_VERSION}: use another file")
        except sqlite3.DatabaseError as error:
            raise ValueError(f"{self.path} is not a MELBO store (an SQLite file): {error}; give another path") from None

    def __repr__(self) -> str:
        return f"MelboStore({str(self.path)!r})"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as con:
            with con:  # one transaction: committed on success, rolled back on error
                yield con

    # -- runs -------------------------------------------------------------------------------
    def run(self, key: str, *, model: str, d_model: int, settings: dict[str, Any], prompts: list[str]) -> int:
        """The id of the run with ``key``, created (with what it depends on) if new."""
        with self._connect() as con:
            row = con.execute("SELECT id FROM melbo_runs WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return int(row[0])
            cursor = con.execute(
                "INSERT INTO melbo_runs (key, model, d_model, settings, prompts, created) VALUES (?, ?, ?, ?, ?, ?)",
                (key, model, int(d_model), json.dumps(settings), json.dumps(list(prompts)), time.time()))
            return int(cursor.lastrowid)  # type: ignore[arg-type]

    def runs(self) -> list[RunRecord]:
        """Every run in the file, oldest first, with its number of finished vectors."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT r.id, r.key, r.model, r.d_model, r.settings, r.prompts, r.created, "
                "(SELECT COUNT(*) FROM melbo_vectors v WHERE v.run = r.id) FROM melbo_runs r ORDER BY r.id").fetchall()
        return [RunRecord(int(i), k, m, int(d), json.loads(s), json.loads(p), float(c), int(n))
                for i, k, m, d, s, p, c, n in rows]

    def get_run(self, run: int | None = None) -> RunRecord:
        """Run ``run`` (an id), or the only run in the file; a ValueError lists the runs otherwise."""
        runs = self.runs()
        if not runs:
            raise ValueError(f"{self.path} holds no MELBO run yet: train one with sw.melbo(..., path=...)")
        if run is None:
            if len(runs) > 1:
                listed = ", ".join(f"{r.id} ({r.n_vectors} vectors, source {r.settings.get('source_layer')}, "
                                   f"target {r.settings.get('target_layer')}, R {r.settings.get('radius')})" for r in runs)
                raise ValueError(f"{self.path} holds {len(runs)} MELBO runs: pick one with run=<id>: {listed}")
            return runs[0]
        for record in runs:
            if record.id == run:
                return record
        raise ValueError(f"no MELBO run {run!r} in {self.path}; its runs are {[r.id for r in runs]}")

    # -- vectors ----------------------------------------------------------------------------
    def vectors(self, run: int) -> list[VectorRecord]:
        """The finished vectors of ``run``, in order (each checked: width, finite values)."""
        d_model = self.get_run(run).d_model
        with self._connect() as con:
            rows = con.execute("SELECT idx, vector, objective, history, seconds, name FROM melbo_vectors "
                               "WHERE run = ? ORDER BY idx", (run,)).fetchall()
        out = []
        for position, (idx, blob, objective, history, seconds, name) in enumerate(rows):
            if idx != position:
                raise ValueError(f"{self.path}: run {run} lacks vector {position} (has {idx}): the file was edited")
            out.append(VectorRecord(int(idx), self._array(blob, d_model, f"vector {idx} of run {run}"),
                                    float(objective), [float(v) for v in json.loads(history)], float(seconds), name))
        return out

    def add_vector(self, run: int, record: VectorRecord) -> None:
        """Save a finished vector (and drop the checkpoint of the vector in progress)."""
        if not math.isfinite(record.objective):
            raise ValueError(f"vector {record.index}: its objective is {record.objective}; nothing non-finite is saved")
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO melbo_vectors VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (run, record.index, _blob(record.vector), float(record.objective),
                         json.dumps([float(v) for v in record.history]), float(record.seconds), record.name))
            con.execute("DELETE FROM melbo_progress WHERE run = ?", (run,))

    def rename(self, run: int, index: int, name: str | None) -> None:
        """Give vector ``index`` of ``run`` a name (None: none)."""
        with self._connect() as con:
            done = con.execute("UPDATE melbo_vectors SET name = ? WHERE run = ? AND idx = ?", (name, run, index))
            if done.rowcount == 0:
                raise ValueError(f"run {run} has no vector {index} in {self.path}")

    # -- the vector in progress -------------------------------------------------------------
    def progress(self, run: int) -> Progress | None:
        d_model = self.get_run(run).d_model
        with self._connect() as con:
            row = con.execute("SELECT idx, step, theta, exp_avg, exp_avg_sq, max_exp_avg_sq, history, seconds "
                              "FROM melbo_progress WHERE run = ?", (run,)).fetchone()
        if row is None:
            return None
        idx, step, *blobs, history, seconds = row
        arrays = [self._array(b, d_model, f"checkpoint of vector {idx}") for b in blobs]
        return Progress(int(idx), int(step), *arrays, [float(v) for v in json.loads(history)], float(seconds))  # type: ignore[call-arg, arg-type]

    def save_progress(self, run: int, progress: Progress) -> None:
        with self._connect() as con:
            con.execute("INSERT OR REPLACE INTO melbo_progress VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (run, progress.index, progress.step, _blob(progress.theta), _blob(progress.exp_avg),
                         _blob(progress.exp_avg_sq), _blob(progress.max_exp_avg_sq),
                         json.dumps([float(v) for v in progress.history]), float(progress.seconds)))

    def _array(self, blob: Any, d_model: int, what: str) -> np.ndarray:
        if not isinstance(blob, bytes) or len(blob) != 4 * d_model:
            raise ValueError(f"{self.path}: {what} is not {d_model} float32 values: the file is damaged")
        values = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        if not np.isfinite(values).all():
            raise ValueError(f"{self.path}: {what} holds NaN/inf values: the file is damaged")
        return values
