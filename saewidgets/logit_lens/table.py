"""One pass over the logit lens: statistics and token-class enrichment of every feature.

>>> table = sw.logit_lens_table(model, sae)                      # every feature, default classes
>>> table.sort_values("es:starts_with_space").head()
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .core import NOT_GIVEN, Progress, auto_chunk, feature_spec, resolve, stream, unembedding, worker_pool
from .enrichment import RankAccumulator, token_sets
from .lens import StatsAccumulator, check_k
from .ranks import ks_p_value


def logit_lens_table(
    model: Any,
    sae: Any = NOT_GIVEN,
    classes: Any = None,
    *,
    features: Any = None,
    k: int = 10,
    cosine: bool = False,
    fold_norm: bool = True,
    chunk_size: int | None = None,
    device: Any = None,
    random_baseline: bool = True,
    workers: int | None = None,
    progress: Progress = True,
) -> pd.DataFrame:
    """``sw.logit_stats`` and ``sw.enrichment``'s scores of every feature from ONE stream of
    ``W_dec @ W_U`` chunks: one row per feature.

    Columns: those of ``sw.logit_stats`` (``feature``, ``mean``, ``std``, ``skew``,
    ``kurtosis``, ``excess_kurtosis``, ``bimodality``, ``kind``, ``top_tokens``,
    ``top_values``, ``top_ids``, ``bottom_tokens``, ``bottom_values``, ``bottom_ids``),
    then ``es:<class>`` for each class (the signed enrichment score, exactly
    ``sw.enrichment``'s ``es``), then ``top_class``, ``top_class_es`` and
    ``top_class_log10_ks_p``: the class whose score is the most significant (smallest KS
    p-value, as ``sw.enrichment``'s ``log10_ks_p``; a raw ``|es|`` would favour classes of
    a few tokens), its score and that log10 p-value. The numbers are the same as calling
    ``sw.logit_stats`` and ``sw.enrichment`` separately with the same options.

    ``classes``: as ``sw.enrichment``'s ``sets`` (default: its ``DEFAULT_SETS``; class
    names, a ``TokenClasses``, or a mapping name -> mask or token ids). ``features``:
    None (all), indices or direction vectors. ``progress``: a tqdm bar (True), none
    (False) or ``progress(done, total)``. ``result.attrs``: ``kind_thresholds`` and
    ``class_sizes`` (class -> number of tokens). For p-values, AUROC and q-values of a
    few classes use ``sw.enrichment``.
    """
    binding, (classes,) = resolve(model, sae, classes)
    spec = feature_spec(binding, features)
    lens = unembedding(binding, cosine=cosine, fold_norm=fold_norm, device=device)
    vocab = lens.vocab_size
    names, members = token_sets(binding, classes, vocab)
    k = check_k(k, vocab)
    with worker_pool(workers) as pool:
        stats = StatsAccumulator(len(spec), vocab, k, lens.device, spec.ids, pool)
        ranks = RankAccumulator(len(spec), members, vocab, pool, with_u=False)
        for chunk in stream(binding, spec, lens, auto_chunk(vocab, len(spec), chunk_size),
                            progress=progress, desc="logit lens"):
            stats.add(chunk)
            ranks.add(chunk)
    table = stats.table(binding, spec, lens, cosine, fold_norm, random_baseline)
    es = ranks.scores.es
    columns = {f"es:{name}": es[:, i] for i, name in enumerate(names)}
    _, log10_ks_p = ks_p_value(es, ranks.sets.sizes[None, :], vocab)
    # most significant class: smallest KS p-value (a raw |es| favours tiny classes); ties: larger |es|
    best = np.lexsort((-np.abs(es), log10_ks_p), axis=1)[:, 0] if es.shape[1] > 1 else np.zeros(len(es), int)
    rows = np.arange(len(es))
    columns["top_class"] = pd.Categorical(np.asarray(names, dtype=object)[best], categories=list(names))
    columns["top_class_es"] = es[rows, best]
    columns["top_class_log10_ks_p"] = log10_ks_p[rows, best]
    out = pd.concat([table, pd.DataFrame(columns, index=table.index)], axis=1)
    out.attrs = dict(table.attrs)
    out.attrs["class_sizes"] = {name: int(size) for name, size in zip(names, ranks.sets.sizes)}
    return out
