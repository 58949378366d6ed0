"""``collect_activations``: stream a corpus through the model and fill an atlas.

Every batch is one ``engine.trace`` whose single ``Read`` on the SAE's hook has a
``BatchSummary`` as its ``fn``: the SAE encoding and the top-k bookkeeping run inside the
trace and only per-batch sparse results come back (remotely too). The running ``State`` is
bounded (per feature: k contexts, a few samples per activation interval, a histogram; sparse
tables of capped size), never a tokens x features matrix. Every ``checkpoint_every`` seconds
the state and the position in the corpus are written in one SQLite transaction: a killed run
resumes from the last checkpoint, counting nothing twice.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np
import torch

from ..core.binding import Binding, bind
from ..core.model import model_id
from ..engine import Read, Row, trace
from .atlas import Atlas
from .corpus import Chunk, Corpus, chunks, open_corpus
from .finalize import finalize
from .state import Settings, State
from .store import Store, write_state
from .summary import FIELDS, BatchSummary

BUDGET = 2**27  # activations (rows x width x d_sae) per batch at most, when batch_size is not given


def collect_activations(
    model: Any,
    sae: Any = None,
    corpus: Any = None,
    path: Any = None,
    *,
    k: int = 20,
    context: int | tuple[int, int] = (10, 5),
    batch_size: int | None = None,
    seq_len: int | None = None,
    quantile_groups: int = 10,
    quantile_samples: int = 3,
    max_tokens: int | None = None,
    text_field: str | None = None,
    split: str = "train",
    logit_stats: bool = True,
    checkpoint_every: float = 30.0,
    remote: bool | str = False,
    progress: bool = True,
) -> Atlas:
    """Collect what makes each feature fire over ``corpus``; returns the ``sw.Atlas`` at ``path``.

    For every feature: the top ``k`` activating contexts (``context`` = tokens before and after
    the peak, or one number for both) with every token's activation, samples of equal-width
    activation intervals (``quantile_groups`` intervals from 0 to the max, about
    ``quantile_samples``-``2 x quantile_samples`` contexts each), firing frequency, an activation
    histogram, max and mean activation, co-activation counts of the strongest feature pairs,
    and (``logit_stats``) the logit-lens statistics.

    ``corpus``: a list of strings, a ``.txt`` (a document a line) / ``.jsonl`` / ``.parquet``
    file, a Hugging Face ``datasets`` dataset or its name (streamed; ``split``, ``text_field``),
    or ``None`` for the organism's own corpus. Documents are cut into rows of ``seq_len`` tokens
    (default: the SAE's context size, at most 128...1024), a BOS token first when the SAE was
    trained so (not counted). ``path``: the atlas file (default ``atlas-<model>-<sae>.sqlite``
    here); a file holding a killed run of the same settings is resumed, a finished one returned.
    ``max_tokens`` stops after that many counted tokens. ``remote`` runs each batch on NDIF.
    """
    binding = model if isinstance(model, Binding) and sae is None else bind(model, sae)
    settings = _settings(binding, k, context, seq_len, quantile_groups, quantile_samples)
    if batch_size is None:
        batch_size = max(1, min(64, BUDGET // (settings.seq_len * binding.d_sae)))
    _check_int(batch_size, "batch_size", 1, 4096)
    if max_tokens is not None:
        _check_int(max_tokens, "max_tokens", 1, 2**62)
    if not isinstance(checkpoint_every, (int, float)) or checkpoint_every < 0:
        raise ValueError(f"checkpoint_every must be a number of seconds >= 0, got {checkpoint_every!r}")
    source = open_corpus(corpus, text_field=text_field, split=split, organism=_is_organism(binding))
    path = _default_path(binding) if path is None else path
    identity = _identity(binding)
    run = {"settings": settings.as_dict(), "corpus": source.name, "corpus_fingerprint": source.fingerprint,
           "max_tokens": max_tokens, "prepend_bos": _prepend_bos(binding)}

    store = _open_store(path, identity, run)
    meta = store.meta()
    if meta.get("status") == "complete":
        store.close()
        return Atlas.open(path)
    state = State(binding.d_sae, settings, device=binding.sae.device)
    saved = store.load_state()
    if saved:
        state.load(saved)
    try:
        _run(binding, source, settings, state, store, batch_size, max_tokens, checkpoint_every, remote, progress)
        finalize(binding, store, state, logit_stats=logit_stats, progress=progress)
    finally:
        store.close()
    return Atlas.open(path)


# -- setup --------------------------------------------------------------------------------------
def _check_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def _settings(binding: Binding, k: Any, context: Any, seq_len: Any, groups: Any, samples: Any) -> Settings:
    _check_int(k, "k", 1, 1000)
    if isinstance(context, (int, np.integer)) and not isinstance(context, bool):
        before = after = _check_int(context, "context", 0, 512)
    elif isinstance(context, (tuple, list)) and len(context) == 2:
        before, after = (_check_int(c, "context", 0, 512) for c in context)
    else:
        raise ValueError(f"context must be tokens each side (an int) or (before, after), got {context!r}")
    limit = _model_context(binding)
    if seq_len is None:
        seq_len = int(binding.sae.metadata.get("context_size") or 128)
        seq_len = max(8, min(seq_len, limit or seq_len, 1024))
    _check_int(seq_len, "seq_len", 2, limit or 2**20)
    _check_int(groups, "quantile_groups", 1, 100)
    _check_int(samples, "quantile_samples", 1, 100)
    return Settings(k=int(k), before=before, after=after, groups=2 * int(groups), samples=int(samples),
                    seq_len=int(seq_len))


def _model_context(binding: Binding) -> int | None:
    from ..engine import context_length

    try:
        return context_length(binding.model)
    except Exception:
        return None


def _prepend_bos(binding: Binding) -> bool:
    return bool(binding.sae.metadata.get("prepend_bos", True)) and binding.tokenizer.bos_token_id is not None


def _is_organism(binding: Binding) -> bool:
    from ..sessions.lens import ORGANISM_NAME, model_name

    return model_name(model_id(binding.model)) == ORGANISM_NAME


def _identity(binding: Binding) -> dict:
    sae = binding.sae
    w = sae.W_dec.detach().float().cpu()
    probe = w.reshape(-1)[:: max(1, w.numel() // 4096)]
    return {
        "model": model_id(binding.model), "family": binding.layout.family, "n_layers": binding.n_layers,
        "d_model": binding.d_model, "vocab_size": binding.vocab_size,
        "sae": {"architecture": sae.architecture, "d_sae": sae.d_sae, "layer": binding.layer, "site": binding.site,
                "hook": sae.hook.name if sae.hook else "", "fingerprint": _fingerprint(probe),
                "release": sae.metadata.get("release"), "sae_id": sae.metadata.get("sae_id"),
                "neuronpedia_id": sae.metadata.get("neuronpedia_id")},
    }


def _fingerprint(values: torch.Tensor) -> str:
    import hashlib

    return hashlib.sha1(values.numpy().astype(np.float32).tobytes()).hexdigest()[:16]


def _default_path(binding: Binding) -> str:
    import re

    from ..sessions.lens import model_name

    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name(model_id(binding.model)))[:60]
    return f"atlas-{name}-L{binding.layer}-{binding.site}-{binding.d_sae}.sqlite"


def _open_store(path: Any, identity: dict, run: dict) -> Store:
    from pathlib import Path

    exists = Path(path).is_file()
    store = Store(path, create=True)
    meta = store.meta()
    fresh = meta.get("status") == "collecting" and not (meta.get("progress") or {}).get("chunks")
    if not exists or "identity" not in meta or (fresh and meta.get("identity") == identity):
        # a new file, or one whose collection stopped before counting anything: nothing to keep
        store.set_meta(identity=identity, run=run, status="collecting", created=time.strftime("%Y-%m-%d %H:%M:%S"))
        return store
    if meta["identity"] != identity:
        store.close()
        raise ValueError(f"{path} is the atlas of another model or SAE ({meta['identity'].get('model')}, SAE "
                         f"{meta['identity'].get('sae')}); give another path for this one")
    if meta.get("run") != run:
        store.close()
        old = meta.get("run") or {}
        diff = sorted(k for k in set(old) | set(run) if old.get(k) != run.get(k))
        raise ValueError(f"{path} holds a collection with other settings ({', '.join(diff)} differ: "
                         f"{ {k: old.get(k) for k in diff} }); resume with the same corpus and settings, or give "
                         "another path")
    return store


# -- the loop ------------------------------------------------------------------------------------
def _batches(source: Corpus, binding: Binding, settings: Settings, skip: int, batch_size: int) -> Iterator[list[Chunk]]:
    batch: list[Chunk] = []
    for chunk in chunks(source, binding.tokenizer, settings.seq_len, _prepend_bos(binding), skip=skip):
        batch.append(chunk)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _run(binding: Binding, source: Corpus, settings: Settings, state: State, store: Store, batch_size: int,
         max_tokens: int | None, checkpoint_every: float, remote: Any, progress: bool) -> None:
    bar = _bar(progress, state.n_tokens)
    last = time.monotonic()
    try:
        for batch in _batches(source, binding, settings, state.chunks_done, batch_size):
            if max_tokens is not None and state.n_tokens >= max_tokens:
                break
            if max_tokens is not None:
                batch = _trim(batch, max_tokens - state.n_tokens)
            counted = run_batch(binding, batch, settings, state, remote)
            if bar is not None:
                bar.update(counted)
            if time.monotonic() - last >= checkpoint_every:
                checkpoint(store, state)
                last = time.monotonic()
    finally:
        if bar is not None:
            bar.close()
    checkpoint(store, state)


def _trim(batch: list[Chunk], left: int) -> list[Chunk]:
    out = []
    for chunk in batch:
        if left <= 0:
            break
        out.append(chunk)
        left -= len(chunk.ids) - chunk.bos
    return out


def checkpoint(store: Store, state: State) -> None:
    """Write the state and the corpus position in one transaction (a kill loses only what came after)."""
    arrays = state.arrays()
    with store.transaction() as db:
        write_state(db, arrays)
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('progress', ?)",
                   (f'{{"chunks": {state.chunks_done}, "tokens": {state.n_tokens}}}',))


def padded(batch: list[Chunk], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded token ids (as the engine pads) and the mask of counted tokens (real, not BOS)."""
    width = max(len(c.ids) for c in batch)
    ids = torch.full((len(batch), width), pad, dtype=torch.long)
    counted = torch.zeros((len(batch), width), dtype=torch.bool)
    for r, c in enumerate(batch):
        ids[r, width - len(c.ids):] = torch.tensor(c.ids)
        counted[r, width - len(c.ids) + int(c.bos):] = True
    return ids, counted


def run_batch(binding: Binding, batch: list[Chunk], settings: Settings, state: State, remote: Any) -> int:
    """One trace over ``batch``; its sparse results merged into ``state``. Returns tokens counted."""
    tok = binding.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    ids, counted = padded(batch, pad)
    summary = BatchSummary(
        sae=binding.sae, chunk_ids=torch.tensor([c.index for c in batch]), token_ids=ids, counted=counted,
        ranges=state.ranges.cpu() if remote else state.ranges, top_threshold=state.top_threshold(),
        q_threshold=state.q_threshold().float(), k=settings.k, before=settings.before, after=settings.after,
        groups=settings.groups, bins=settings.bins, pairs=settings.pairs, vocab=binding.vocab_size)
    read = Read("summary", binding.layer, binding.site, positions="all", fn=summary)  # type: ignore[arg-type]
    # stop=True: the blocks after the SAE's hook and the unembedding never run
    out = trace(binding.model, [Row(list(c.ids)) for c in batch], [read], remote=remote, stop=True).reads["summary"]
    results = dict(zip(FIELDS, out))
    merge(state, results, batch, ids, counted, settings)
    state.chunks_done = batch[-1].index + 1
    n = int(results["n_tokens"])
    state.n_tokens += n
    return n


def merge(state: State, r: dict, batch: list[Chunk], ids: torch.Tensor, counted: torch.Tensor,
          settings: Settings) -> None:
    """Fold one batch's results into the state (histogram ranges first, then everything else)."""
    dev = state.device
    r = {name: (value.to(dev) if isinstance(value, torch.Tensor) else value) for name, value in r.items()}
    state.count.index_add_(0, r["fired"], r["fired_n"].long())
    state.total.index_add_(0, r["fired"], r["fired_sum"].double())
    state.grow_ranges(r["range_f"], r["range_v"].float())
    state.hist.view(-1).index_add_(0, r["hist_code"], r["hist_n"].long())

    width = ids.shape[1]
    docs = torch.tensor([c.doc for c in batch], device=dev)
    # position in the document of padded position p: p - (pad + bos) + chunk start
    first = torch.tensor([width - len(c.ids) + int(c.bos) for c in batch], device=dev)
    starts = torch.tensor([c.start for c in batch], device=dev)
    ids, counted = ids.to(dev), counted.to(dev)
    offsets = torch.arange(-settings.before, settings.after + 1, device=dev)

    def windows(rows: torch.Tensor, peaks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        index = peaks[:, None] + offsets[None, :]
        inside = (index >= 0) & (index < width)
        at = index.clamp(0, width - 1)
        tokens = ids[rows[:, None], at]
        live = inside & counted[rows[:, None], at]
        return torch.where(live, tokens, torch.full_like(tokens, -1)), live

    def window_acts(w: torch.Tensor, live: torch.Tensor, peak_values: torch.Tensor) -> torch.Tensor:
        acts = torch.where(live, w.float(), torch.zeros_like(w, dtype=torch.float32))
        acts[:, settings.before] = peak_values.float()  # the exact peak (the window came as float16)
        return acts

    if r["top_f"].numel():
        rows, peaks = r["top_r"].long(), r["top_p"].long()
        tokens, live = windows(rows, peaks)
        acts = window_acts(r["top_w"], live, r["top_v"])
        state.add_top(r["top_f"].long(), r["top_v"].float(), docs[rows], (peaks - first[rows] + starts[rows]),
                      tokens, acts)
    if r["q_f"].numel():
        rows, peaks, f = r["q_r"].long(), r["q_p"].long(), r["q_f"].long()
        tokens, live = windows(rows, peaks)
        acts = window_acts(r["q_w"], live, r["q_v"])
        group = (r["q_v"].float() / state.ranges[f] * settings.groups).long().clamp(0, settings.groups - 1)
        state.add_quantiles(f, group, r["q_v"].float(), r["q_key"].double(), docs[rows],
                            (peaks - first[rows] + starts[rows]), tokens, acts)
    state.pairs.add(r["pair_code"].cpu().numpy(), r["pair_n"].cpu().numpy())
    state.tokens.add(r["tok_code"].cpu().numpy(), r["tok_n"].cpu().numpy(), r["tok_sum"].cpu().numpy())


def _bar(progress: bool, initial: int) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc="collecting activations", unit="tok", unit_scale=True, initial=initial, smoothing=0.1)


def bytes_per_token(results: tuple, n_tokens: int) -> float:
    """Serialised size of one batch's results per counted token (what a remote run sends back)."""
    import io

    buffer = io.BytesIO()
    torch.save(tuple(t.cpu() for t in results), buffer)
    return buffer.tell() / max(1, n_tokens)


__all__ = ["collect_activations", "checkpoint", "run_batch", "bytes_per_token"]
