"""``sw.Atlas``: what makes each feature fire, your labels and notes, in one file.

>>> atlas = sw.collect_activations(model, sae, corpus, "features.sqlite")
>>> atlas = sw.Atlas.open("features.sqlite")          # later, or on a colleague's machine
>>> atlas.examples(47)            # strongest first: tokens, acts, value, peak, text
>>> atlas.stats()                 # feature, frequency, max_act, mean_act, logit-lens stats, label
>>> atlas.search("crimson")       # features ranked by activating tokens, labels, explanations
>>> atlas.set_label(47, "colours"); atlas.label(47)
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from .store import Store

LABEL_LIMIT = 10_000  # characters in a label or a note


class Atlas:
    """An atlas file opened for reading and for your labels (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._meta = store.meta()
        self._vocab: list[str] | None = None

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | Path, *, readonly: bool = False) -> "Atlas":
        """Open the atlas at ``path`` (written by ``sw.collect_activations``); ``readonly`` for a
        file you may not change (labels are then refused)."""
        if isinstance(path, Atlas):
            return path
        return cls(Store(path, readonly=readonly))

    def close(self) -> None:
        """Close the file (its write-ahead log folded in: one file to hand round)."""
        self._store.close()

    def __enter__(self) -> "Atlas":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return self._store.path

    @property
    def info(self) -> dict:
        """Metadata: model and SAE identity, collection settings, corpus, tokens counted, status."""
        self._meta = self._store.meta()
        return dict(self._meta)

    @property
    def d_sae(self) -> int:
        return int(self._meta["identity"]["sae"]["d_sae"])

    @property
    def complete(self) -> bool:
        return self._store.meta().get("status") == "complete"

    @property
    def n_tokens(self) -> int:
        return int(self._store.meta().get("n_tokens") or 0)

    def __repr__(self) -> str:
        ident = self._meta.get("identity", {})
        sae = ident.get("sae", {})
        status = self._meta.get("status", "?")
        return (f"Atlas({str(self.path)!r}: {ident.get('model', '?')}, SAE {sae.get('d_sae', '?')} features at "
                f"{sae.get('site', '?')}[{sae.get('layer', '?')}], {self.n_tokens:,} tokens, {status})")

    def check_feature(self, feature: Any) -> int:
        if isinstance(feature, bool) or not isinstance(feature, numbers.Integral):
            raise ValueError(f"feature must be an integer index, got {feature!r}")
        f = int(feature)
        if not 0 <= f < self.d_sae:
            raise ValueError(f"feature {f} is out of range: this atlas has {self.d_sae} features "
                             f"(valid indices 0..{self.d_sae - 1})")
        return f

    def matches(self, binding: Any) -> None:
        """Raise a ValueError unless this atlas was collected for ``binding``'s SAE (width and hook)."""
        sae = self._meta.get("identity", {}).get("sae", {})
        if sae.get("d_sae") != binding.d_sae or sae.get("layer") != binding.layer or sae.get("site") != binding.site:
            raise ValueError(
                f"the atlas {self.path} is for an SAE of {sae.get('d_sae')} features at {sae.get('site')}"
                f"[{sae.get('layer')}], but this SAE has {binding.d_sae} at {binding.site}[{binding.layer}]: "
                "open the atlas collected for it")

    # -- token strings ------------------------------------------------------------------------
    def token_strings(self) -> list[str]:
        if self._vocab is None:
            rows = self._store.query("SELECT token, text FROM vocab ORDER BY token")
            vocab = [""] * (rows[-1][0] + 1 if rows else 0)
            for token, text in rows:
                vocab[token] = text
            self._vocab = vocab
        return self._vocab

    def _strings(self, ids: np.ndarray) -> list[str]:
        vocab = self.token_strings()
        return [vocab[i] if 0 <= i < len(vocab) else f"<{i}>" for i in ids.tolist()]

    # -- examples -----------------------------------------------------------------------------
    def examples(self, feature: Any, kind: str = "top", limit: int | None = None) -> pd.DataFrame:
        """Activating contexts of ``feature``, strongest first: ``kind`` "top" (the top k),
        "quantile" (samples of equal-width activation intervals, with ``group``, ``low``, ``high``)
        or "all". Columns: feature, kind, rank, value (the peak activation), peak (its index in
        ``tokens``), tokens (the context's token strings), acts (their activations), token_ids,
        doc and position (the peak's document and token position), text, and for quantile
        samples group / low / high (the interval)."""
        f = self.check_feature(feature)
        if kind not in ("top", "quantile", "all"):
            raise ValueError(f"kind must be 'top', 'quantile' or 'all', got {kind!r}")
        where = "" if kind == "all" else "AND kind = ?"
        params: list[Any] = [f] + ([] if kind == "all" else [kind])
        rows = self._store.query(
            f"SELECT feature, kind, rank, grp, value, doc, position, peak, token_ids, acts FROM examples "
            f"WHERE feature = ? {where} ORDER BY kind DESC, value DESC", params)
        records = []
        for feat, k, rank, grp, value, doc, position, peak, ids, acts in rows:
            token_ids = np.frombuffer(ids, dtype=np.int32)
            strings = self._strings(token_ids)
            records.append({"feature": feat, "kind": k, "rank": rank, "value": value, "peak": peak,
                            "tokens": strings, "acts": np.frombuffer(acts, dtype=np.float32).tolist(),
                            "token_ids": token_ids.tolist(), "doc": doc, "position": position,
                            "text": "".join(strings), "fine_group": grp})
        frame = pd.DataFrame(records, columns=["feature", "kind", "rank", "value", "peak", "tokens", "acts",
                                               "token_ids", "doc", "position", "text", "fine_group"])
        frame = self._with_groups(f, frame)
        frame["rank"] = range(len(frame)) if kind != "all" else frame["rank"]
        if limit is not None:
            frame = frame.head(int(limit))
        return frame.reset_index(drop=True)

    def _with_groups(self, feature: int, frame: pd.DataFrame) -> pd.DataFrame:
        """Quantile samples grouped into ``quantile_groups`` equal-width intervals of 0..max."""
        groups = int(self._settings().get("groups", 20)) // 2
        top = self.feature_stats(feature).get("max_act") or 0.0
        width = top / groups if top > 0 else 1.0
        is_q = frame["kind"] == "quantile"
        group = np.where(is_q, np.minimum(groups - 1, (frame["value"].to_numpy(float) / width).astype(int)), -1)
        frame = frame.drop(columns=["fine_group"])
        frame["group"] = np.where(is_q, group, pd.NA) if len(frame) else pd.Series(dtype="Int64")
        frame["low"] = np.where(is_q, group * width, np.nan) if len(frame) else pd.Series(dtype=float)
        frame["high"] = np.where(is_q, (group + 1) * width, np.nan) if len(frame) else pd.Series(dtype=float)
        return frame

    def quantile_groups(self, feature: Any) -> list[dict]:
        """The quantile samples as intervals, highest first: ``{group, low, high, count, examples}``
        (``count``: tokens in the interval, from the histogram)."""
        f = self.check_feature(feature)
        frame = self.examples(f, "quantile")
        hist = self.histogram(f)
        edges, counts = np.asarray(hist["edges"]), np.asarray(hist["counts"])
        centres = (edges[:-1] + edges[1:]) / 2 if len(edges) > 1 else np.zeros(0)
        out = []
        for group, part in sorted(frame.groupby("group"), key=lambda item: -int(item[0])):
            low, high = float(part["low"].iloc[0]), float(part["high"].iloc[0])
            inside = (centres >= low) & (centres < high)
            out.append({"group": int(group), "low": low, "high": high, "count": int(counts[inside].sum()),
                        "examples": part.sort_values("value", ascending=False).reset_index(drop=True)})
        return out

    # -- statistics -----------------------------------------------------------------------------
    def stats(self) -> pd.DataFrame:
        """One row per feature: feature, frequency (share of tokens where it fires), n_fired,
        max_act, mean_act (of its nonzero activations), the logit-lens statistics (std, skew,
        kurtosis, logit_mean, kind) when collected, label and explanation."""
        rows = self._store.query(
            "SELECT f.feature, f.frequency, f.n_fired, f.max_act, f.mean_act, f.std, f.skew, f.kurtosis, "
            "f.logit_mean, f.kind, COALESCE(l.label, ''), COALESCE(l.notes, '') "
            "FROM features f LEFT JOIN labels l ON l.feature = f.feature ORDER BY f.feature")
        frame = pd.DataFrame(rows, columns=["feature", "frequency", "n_fired", "max_act", "mean_act", "std", "skew",
                                            "kurtosis", "logit_mean", "kind", "label", "notes"])
        explained = self._best_explanations()
        frame["explanation"] = [explained.get(int(f), "") for f in frame["feature"]]
        return frame

    def feature_stats(self, feature: Any) -> dict:
        """One feature's row of ``stats()`` as a dict, with its top logit tokens (empty if not collected)."""
        f = self.check_feature(feature)
        rows = self._store.query("SELECT frequency, n_fired, max_act, mean_act, std, skew, kurtosis, kind, "
                                 "top_tokens, bottom_tokens FROM features WHERE feature = ?", [f])
        if not rows:
            return {}
        frequency, n_fired, max_act, mean_act, std, skew, kurtosis, kind, top, bottom = rows[0]
        return {"feature": f, "frequency": frequency, "n_fired": n_fired, "max_act": max_act, "mean_act": mean_act,
                "std": std, "skew": skew, "kurtosis": kurtosis, "kind": kind,
                "top_tokens": json.loads(top) if top else [], "bottom_tokens": json.loads(bottom) if bottom else []}

    def histogram(self, feature: Any) -> dict:
        """The density of ``feature``'s nonzero activations: ``{edges, counts, n_tokens, frequency}``,
        equal-width bins from 0 up to just past its max activation."""
        f = self.check_feature(feature)
        rows = self._store.query("SELECT histogram, hist_range, max_act, frequency FROM features WHERE feature = ?",
                                 [f])
        if not rows or rows[0][0] is None:
            return {"edges": [], "counts": [], "n_tokens": self.n_tokens, "frequency": 0.0}
        blob, top, max_act, frequency = rows[0]
        counts = np.frombuffer(blob, dtype=np.int64)
        if not top or counts.sum() == 0:
            return {"edges": [], "counts": [], "n_tokens": self.n_tokens, "frequency": frequency}
        width = top / counts.size
        used = int(min(counts.size, math.floor(max_act / width) + 1))
        edges = (np.arange(used + 1) * width).tolist()
        return {"edges": edges, "counts": counts[:used].tolist(), "n_tokens": self.n_tokens, "frequency": frequency}

    def coactivation(self, feature: Any, limit: int = 10) -> pd.DataFrame:
        """Features most often among the strongest at the same tokens as ``feature``: partner,
        count, and share (count / tokens where ``feature`` fires)."""
        f = self.check_feature(feature)
        rows = self._store.query(
            "SELECT CASE WHEN a = ? THEN b ELSE a END AS partner, count FROM coactivation WHERE a = ? OR b = ? "
            "ORDER BY count DESC LIMIT ?", [f, f, f, int(limit)])
        fired = (self.feature_stats(f).get("n_fired") or 0) or 1
        return pd.DataFrame([(p, c, c / fired) for p, c in rows], columns=["feature", "count", "share"])

    def activating_tokens(self, feature: Any, limit: int = 10) -> pd.DataFrame:
        """The tokens ``feature`` fires on most (by activation mass): token, count, act_sum."""
        f = self.check_feature(feature)
        rows = self._store.query("SELECT token, count, act_sum FROM feature_tokens WHERE feature = ? "
                                 "ORDER BY act_sum DESC LIMIT ?", [f, int(limit)])
        vocab = self.token_strings()
        return pd.DataFrame([(vocab[t] if t < len(vocab) else f"<{t}>", t, c, s) for t, c, s in rows],
                            columns=["token", "token_id", "count", "act_sum"])

    # -- search -----------------------------------------------------------------------------------
    def search(self, text: str, limit: int = 20) -> pd.DataFrame:
        """Features ranked by how well ``text`` matches: a label (exact, then contained), an
        explanation, then activating tokens (exact token first; by the share of the feature's
        activation mass on matching tokens). A number finds that feature. Columns: feature,
        score, match (what matched), label."""
        if not isinstance(text, str):
            raise ValueError(f"search text must be a string, got {type(text).__name__}")
        needle = text.strip().lower()
        if not needle:
            return pd.DataFrame(columns=["feature", "score", "match", "label"])
        scores: dict[int, tuple[float, str]] = {}

        def hit(feature: int, score: float, match: str) -> None:
            if feature not in scores or scores[feature][0] < score:
                scores[feature] = (score, match)

        if needle.isdigit() and int(needle) < self.d_sae:
            hit(int(needle), 10.0, "index")
        like = f"%{_escape_like(needle)}%"
        for f, label in self._store.query("SELECT feature, label FROM labels WHERE lower(label) LIKE ? ESCAPE '\\'",
                                          [like]):
            hit(f, 5.0 if label.strip().lower() == needle else 4.0, f"label: {label}")
        for f, note in self._store.query("SELECT feature, notes FROM labels WHERE lower(notes) LIKE ? ESCAPE '\\'",
                                         [like]):
            hit(f, 3.0, f"note: {note[:80]}")
        for f, expl in self._store.query(
                "SELECT feature, text FROM explanations WHERE lower(text) LIKE ? ESCAPE '\\'", [like]):
            hit(f, 3.0 if needle in _words(expl) else 2.5, f"explanation: {expl[:80]}")
        # activating tokens: a feature scores by its share of the activation on the matching
        # tokens (which features explain this token), and a little by how much of its own
        # activation those tokens take (how specific it is)
        token_sql = ("SELECT ft.feature, ft.token, ft.act_sum, v.text, mass.total FROM vocab v "
                     "JOIN feature_tokens ft ON ft.token = v.token "
                     "JOIN (SELECT feature, SUM(act_sum) AS total FROM feature_tokens GROUP BY feature) mass "
                     "ON mass.feature = ft.feature WHERE ")
        exact = self._store.query(token_sql + "v.norm = ?", [needle])
        partial = [] if len(needle) < 2 else self._store.query(
            token_sql + "v.norm LIKE ? ESCAPE '\\' AND v.norm != ?", [like, needle])
        for rows, base in ((exact, 1.0), (partial, 0.0)):
            on_token: dict[int, float] = {}
            for _, token, act_sum, _, _ in rows:
                on_token[token] = on_token.get(token, 0.0) + act_sum
            share_of_token: dict[int, float] = {}
            share_of_feature: dict[int, float] = {}
            names: dict[int, str] = {}
            for f, token, act_sum, text, total in rows:
                share_of_token[f] = share_of_token.get(f, 0.0) + act_sum / max(on_token[token], 1e-12)
                share_of_feature[f] = share_of_feature.get(f, 0.0) + act_sum / max(total, 1e-12)
                names.setdefault(f, text)
            n_tokens = max(1, len(on_token))
            for f in share_of_token:
                score = 0.7 * share_of_token[f] / n_tokens + 0.3 * min(share_of_feature[f], 1.0)
                hit(f, base + score, f"fires on {names[f]!r} ({share_of_token[f] / n_tokens:.0%} of the activation "
                                     "there)")
        order = sorted(scores.items(), key=lambda item: (-item[1][0], item[0]))[: int(limit)]
        labels = self.labels()
        return pd.DataFrame([(f, s, m, labels.get(f, "")) for f, (s, m) in order],
                            columns=["feature", "score", "match", "label"])

    # -- labels and notes -----------------------------------------------------------------------
    def set_label(self, feature: Any, text: str, *, notes: str | None = None) -> None:
        """Label ``feature`` (and optionally set its notes); committed to the file at once."""
        f = self.check_feature(feature)
        text = _check_text(text, "label")
        if notes is not None:
            notes = _check_text(notes, "notes")
        self._writable()
        self._store.write(
            "INSERT INTO labels (feature, label, notes, updated) VALUES (?, ?, COALESCE(?, ''), datetime('now')) "
            "ON CONFLICT(feature) DO UPDATE SET label = excluded.label, "
            "notes = COALESCE(?, labels.notes), updated = excluded.updated", [f, text, notes, notes])

    def set_notes(self, feature: Any, text: str) -> None:
        """Set ``feature``'s notes (its label is kept); committed at once."""
        f = self.check_feature(feature)
        text = _check_text(text, "notes")
        self._writable()
        self._store.write(
            "INSERT INTO labels (feature, label, notes, updated) VALUES (?, '', ?, datetime('now')) "
            "ON CONFLICT(feature) DO UPDATE SET notes = excluded.notes, updated = excluded.updated", [f, text])

    def label(self, feature: Any) -> str:
        """``feature``'s label ("" when none)."""
        f = self.check_feature(feature)
        rows = self._store.query("SELECT label FROM labels WHERE feature = ?", [f])
        return rows[0][0] if rows else ""

    def notes(self, feature: Any) -> str:
        f = self.check_feature(feature)
        rows = self._store.query("SELECT notes FROM labels WHERE feature = ?", [f])
        return rows[0][0] if rows else ""

    def labels(self) -> dict[int, str]:
        """Every nonempty label, ``{feature: label}``."""
        return {f: t for f, t in self._store.query("SELECT feature, label FROM labels WHERE label != ''")}

    def _writable(self) -> None:
        if self._store.readonly:
            raise ValueError(f"the atlas {self.path} is open read-only: open it with readonly=False (or a copy you "
                             "can write) to label features")

    # -- explanations -----------------------------------------------------------------------------
    def add_explanation(self, feature: Any, text: str, source: str = "user", score: float | None = None) -> None:
        """Store an explanation of ``feature`` with its ``source`` ("self-explanation", "neuronpedia", ...)."""
        f = self.check_feature(feature)
        text = _check_text(text, "explanation")
        if not isinstance(source, str) or not source.strip():
            raise ValueError("an explanation's source must be a nonempty string (e.g. 'self-explanation')")
        if score is not None and (not isinstance(score, numbers.Real) or not math.isfinite(score)):
            raise ValueError(f"an explanation's score must be a finite number or None, got {score!r}")
        self._writable()
        self._store.write("INSERT INTO explanations (feature, text, source, score) VALUES (?, ?, ?, ?)",
                          [f, text, source, None if score is None else float(score)])

    def add_explanations(self, explanations: Any, source: str = "imported") -> int:
        """Store many: ``{feature: text}``, or a DataFrame with feature + explanation/description
        (and optional source, score) columns, or ``sw.self_explain``'s DataFrame (its best row per
        feature, source "self-explanation"). Returns how many were stored."""
        from .io import explanation_rows

        rows = explanation_rows(explanations, source, self.d_sae)
        self._writable()
        with self._store.transaction() as db:
            db.executemany("INSERT INTO explanations (feature, text, source, score) VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def explanations(self, feature: Any = None) -> pd.DataFrame:
        """Stored explanations (of one feature, or all): feature, text, source, score, created."""
        if feature is None:
            rows = self._store.query("SELECT feature, text, source, score, created FROM explanations ORDER BY feature, id")
        else:
            rows = self._store.query("SELECT feature, text, source, score, created FROM explanations WHERE feature = ? "
                                     "ORDER BY id", [self.check_feature(feature)])
        return pd.DataFrame(rows, columns=["feature", "text", "source", "score", "created"])

    def _best_explanations(self) -> dict[int, str]:
        rows = self._store.query("SELECT feature, text, score FROM explanations ORDER BY feature, "
                                 "COALESCE(score, -1e300) DESC, id DESC")
        out: dict[int, str] = {}
        for f, text, _ in rows:
            out.setdefault(f, text)
        return out

    def explanation(self, feature: Any) -> str:
        """The best-scored (else the latest) explanation of ``feature``, or ""."""
        return self._best_explanations().get(self.check_feature(feature), "")

    def import_explanations(self, path: str | Path, source: str | None = None) -> int:
        """Import a Neuronpedia explanation export (JSON) or a CSV / parquet table; returns the count."""
        from .io import read_explanations

        return self.add_explanations(read_explanations(path, source), source or "imported")

    def export_explanations(self, path: str | Path) -> Path:
        """Write the explanations (and labels, as source "label") as Neuronpedia-style JSON, CSV or parquet."""
        from .io import write_explanations

        return write_explanations(self, path)

    def export_stats(self, path: str | Path) -> Path:
        """Write ``stats()`` as CSV or parquet (by the file's suffix)."""
        from .io import write_table

        return write_table(self.stats(), path)

    # -- directions ------------------------------------------------------------------------------
    def save_direction(self, direction: Any, name: str | None = None) -> str:
        """Store an ``sw.Direction`` (its vector as float32, its provenance) under ``name`` (default
        its own name); a direction of the same name is replaced. Returns the name."""
        from ..core.direction import Direction

        if not isinstance(direction, Direction):
            raise ValueError(f"save_direction takes an sw.Direction, got {type(direction).__name__}")
        name = name or direction.name
        if not isinstance(name, str) or not name.strip():
            raise ValueError("a saved direction needs a name: Direction(..., name='...') or save_direction(d, name=)")
        vector = direction.vector.detach().float().cpu().numpy().astype(np.float32)
        provenance = json.dumps(_jsonable(direction.provenance or {}))
        self._writable()
        self._store.write("INSERT OR REPLACE INTO directions (name, vector, d_model, provenance, layer, site) "
                          "VALUES (?, ?, ?, ?, ?, ?)",
                          [name, vector.tobytes(), int(vector.size), provenance, direction.layer, direction.site])
        return name

    def directions(self) -> dict[str, Any]:
        """The saved directions, ``{name: sw.Direction}``."""
        import torch

        from ..core.direction import Direction

        out = {}
        for name, blob, d, provenance, layer, site in self._store.query(
                "SELECT name, vector, d_model, provenance, layer, site FROM directions ORDER BY created, name"):
            vector = torch.from_numpy(np.frombuffer(blob, dtype=np.float32, count=d).copy())
            kwargs = {"layer": layer} if layer is not None else {}
            if site:
                kwargs["site"] = site
            out[name] = Direction(vector, name=name, provenance=json.loads(provenance), **kwargs)
        return out

    # -- sharing -----------------------------------------------------------------------------------
    def copy_to(self, path: str | Path) -> Path:
        """A consistent single-file copy (SQLite's backup, no WAL) at ``path`` for a colleague."""
        import sqlite3

        path = Path(path)
        with self._store.lock:
            target = sqlite3.connect(path)
            try:
                self._store.db.backup(target)
                target.execute("PRAGMA journal_mode=DELETE")
            finally:
                target.close()
        return path

    def _settings(self) -> dict:
        return (self._meta.get("run") or {}).get("settings") or {}


def _check_text(text: Any, what: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"the {what} must be a string, got {type(text).__name__}")
    if len(text) > LABEL_LIMIT:
        raise ValueError(f"the {what} has {len(text)} characters; at most {LABEL_LIMIT}")
    return text


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"\w+", text.lower()))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


__all__ = ["Atlas"]
