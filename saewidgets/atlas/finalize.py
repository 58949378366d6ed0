"""Turning a finished collection's state into the atlas tables (one transaction)."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from ..core.binding import Binding
from .state import EMPTY_KEY, State
from .store import Store, norm_token

TOKENS_KEPT = 64  # activating tokens per feature written for search
PARTNERS_KEPT = 32  # co-activating partners per feature


def finalize(binding: Binding, store: Store, state: State, *, logit_stats: bool = True, progress: bool = True) -> None:
    """Write features, examples, tokens, co-activation, vocab (and logit-lens statistics); mark complete."""
    stats = _logit_rows(binding, progress) if logit_stats else {}
    F = state.d_sae
    n = max(1, state.n_tokens)
    count = state.count.cpu().numpy()
    total = state.total.cpu().numpy()
    hist = state.hist.cpu().numpy()
    ranges = state.ranges.cpu().numpy()
    top = {name: t.cpu().numpy() for name, t in vars(state.top).items() if hasattr(t, "cpu")}
    quant = {name: t.cpu().numpy() for name, t in vars(state.quant).items() if hasattr(t, "cpu")}
    max_act = np.maximum(top["value"].max(axis=1), 0.0)
    mean_act = np.where(count > 0, total / np.maximum(count, 1), 0.0)

    feature_rows = []
    for f in range(F):
        s = stats.get(f, {})
        feature_rows.append((f, int(count[f]), float(count[f] / n), float(max_act[f]), float(mean_act[f]),
                             hist[f].astype(np.int64).tobytes(), float(ranges[f]), s.get("std"), s.get("skew"),
                             s.get("kurtosis"), s.get("mean"), s.get("kind"), s.get("top"), s.get("bottom")))
    before = state.settings.before
    examples = list(_examples(top, "top", before)) + list(_examples(quant, "quantile", before))
    tokens = _feature_tokens(state, binding.vocab_size)
    pairs = _pairs(state)
    strings = binding.token_strings()
    with store.transaction() as db:
        for table in ("features", "examples", "feature_tokens", "coactivation", "vocab"):
            db.execute(f"DELETE FROM {table}")
        db.executemany("INSERT INTO features VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", feature_rows)
        db.executemany("INSERT INTO examples VALUES (?,?,?,?,?,?,?,?,?,?)", examples)
        db.executemany("INSERT INTO feature_tokens VALUES (?,?,?,?)", tokens)
        db.executemany("INSERT INTO coactivation VALUES (?,?,?)", pairs)
        db.executemany("INSERT INTO vocab VALUES (?,?,?)", [(i, s, norm_token(s)) for i, s in enumerate(strings)])
        db.execute("DELETE FROM state")
        for key, value in {"status": "complete", "n_tokens": state.n_tokens, "chunks": state.chunks_done,
                           "pairs_pruned": state.pairs.pruned, "tokens_pruned": state.tokens.pruned,
                           "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                           "logit_stats": bool(stats)}.items():
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))
    try:
        store.db.execute("VACUUM")  # drop the checkpoint's pages: a compact file to share
    except Exception:
        pass


def _examples(slots: dict[str, np.ndarray], kind: str, before: int):
    value, key, doc, pos, tokens, acts = (slots[n] for n in ("value", "key", "doc", "pos", "tokens", "acts"))
    F = value.shape[0]
    value = value.reshape(F, -1, value.shape[-1]) if value.ndim == 3 else value[:, None, :]
    key = key.reshape(value.shape)
    doc, pos = doc.reshape(value.shape), pos.reshape(value.shape)
    W = tokens.shape[-1]
    tokens, acts = tokens.reshape(*value.shape, W), acts.reshape(*value.shape, W)
    for f, g, s in zip(*np.nonzero(value > 0)):
        if kind == "quantile" and key[f, g, s] >= EMPTY_KEY:
            continue
        live = tokens[f, g, s] >= 0
        ids = tokens[f, g, s][live].astype(np.int32)
        window = acts[f, g, s][live].astype(np.float32)
        peak = int(live[:before].sum())  # the window is centred on the peak
        yield (int(f), kind, int(g) * value.shape[2] + int(s),
               None if kind == "top" else int(g), float(value[f, g, s]), int(doc[f, g, s]), int(pos[f, g, s]), peak,
               ids.tobytes(), window.tobytes())


def _feature_tokens(state: State, vocab: int) -> list[tuple]:
    table = state.tokens
    if table.codes.size == 0:
        return []
    f, tok = table.codes // vocab, table.codes % vocab
    order = np.lexsort((-table.sums, f))
    f, tok, counts, sums = f[order], tok[order], table.counts[order], table.sums[order]
    starts = np.searchsorted(f, f, side="left")
    rank = np.arange(f.size) - starts
    keep = rank < TOKENS_KEPT
    return [(int(a), int(b), int(c), float(d)) for a, b, c, d in zip(f[keep], tok[keep], counts[keep], sums[keep])]


def _pairs(state: State) -> list[tuple]:
    table = state.pairs
    if table.codes.size == 0:
        return []
    F = state.d_sae
    a, b, counts = table.codes // F, table.codes % F, table.counts
    keep = np.zeros(a.size, dtype=bool)
    for side in (a, b):  # each feature's strongest partners
        order = np.lexsort((-counts, side))
        s = side[order]
        rank = np.arange(s.size) - np.searchsorted(s, s, side="left")
        keep[order[rank < PARTNERS_KEPT]] = True
    return [(int(x), int(y), int(c)) for x, y, c in zip(a[keep], b[keep], counts[keep])]


def _logit_rows(binding: Binding, progress: bool) -> dict[int, dict]:
    from ..logit_lens.lens import logit_stats

    try:
        frame = logit_stats(binding, k=10, progress=progress)
    except ValueError:  # e.g. a model whose weights are not local (remote-only): no logit lens
        return {}
    out = {}
    for row in frame.itertuples(index=False):
        out[int(row.feature)] = {
            "std": _num(row.std), "skew": _num(row.skew), "kurtosis": _num(row.kurtosis), "mean": _num(row.mean),
            "kind": str(row.kind),
            "top": json.dumps([[str(t), _num(v)] for t, v in zip(row.top_tokens, row.top_values)]),
            "bottom": json.dumps([[str(t), _num(v)] for t, v in zip(row.bottom_tokens, row.bottom_values)]),
        }
    return out


def _num(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
