"""Telling task features apart by measurement: *detectors* fire on the few-shot examples, *executors*
make zero-shot prompts do the task when inserted (the seed's two kinds).

>>> roles = feature_roles(model, sae, tf, few_shot_prompts, zero_shot_prompts)
>>> roles[["feature", "weight", "on_examples", "alone_share", "needed_share", "role"]]

Per feature ``f`` of a task-feature code (weight ``w``):

- ``on_examples``: the share of few-shot prompts in which the SAE's encoder (its normal use)
  activates ``f`` on some token of the shots' inputs and outputs (separators, BOS and the query
  line left out); ``at_separators``: the share of all separator positions where it is active;
- ``alone_nll`` / ``alone_accuracy``: zero-shot prompts with ``f`` alone inserted (``b_dec +
  w * W_dec[f]`` written at the last separator, or ``w * W_dec[f]`` added), and
  ``alone_share = (nll(b_dec) - alone_nll) / (nll(b_dec) - nll(code))``: how much of the whole
  code's NLL gain over its bias alone the feature brings by itself (sufficiency);
- ``without_nll`` / ``without_accuracy``: the code without ``f``, and ``needed_share =
  (without_nll - nll(code)) / (nll(b_dec) - nll(code))``: how much of that gain is lost without
  it (necessity).

``role``: "executor" when inserting it does the task (``alone_share >= 0.5``) or the code cannot
do it without it (``needed_share >= 0.5``); "detector" when ``on_examples >= 0.5``; "both"; or
"other". The thresholds are stated, not tuned; the numbers are in the frame.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..core.binding import bind
from ..engine import Read, Row, trace
from .evaluate import prepare, summary
from .prompts import as_prompts, encode_all, with_answers
from .runs import Variant, check_batch_size, check_insert, chunks, own_positions, score
from .vector import resolve_bos

EXECUTOR_SHARE = 0.5
DETECTOR_SHARE = 0.5


def _example_positions(enc: Any) -> list[int]:
    """Token indices of the shots' content: everything before the query's line but BOS and the
    separators."""
    return [i for i in range(int(enc.starts_with_bos), enc.query_start) if i not in enc.separators]


def activity(model: Any, sae: Any, features: Sequence[int], prompts: Sequence[Any], bos: bool, *,
             batch_size: int = 32, remote: Any = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Per feature: the share of prompts where it fires on the shot lines, and the share of
    separator positions where it fires (the SAE's encoder on resid_pre at its layer)."""
    encoded = encode_all(model.tokenizer, prompts, bos)
    index = torch.tensor(list(features), dtype=torch.long)
    layer = sae.hook.layer
    on_examples = torch.zeros(len(index))
    at_separators = torch.zeros(len(index))
    separators = 0
    for part in chunks(len(encoded), batch_size):
        batch = [encoded[i] for i in part]
        examples = [_example_positions(enc) for enc in batch]
        seps = [enc.separators for enc in batch]
        ex_index, ex_valid = own_positions([e or [0] for e in examples])
        ex_valid &= torch.tensor([bool(e) for e in examples])[:, None]
        sep_index, sep_valid = own_positions(seps)

        def fn(h: torch.Tensor, mask: torch.Tensor, ex_index=ex_index, ex_valid=ex_valid, sep_index=sep_index,
               sep_valid=sep_valid) -> Any:
            acts = sae.encode(h)[..., index.to(h.device)] > 0  # rows x width x F
            offsets = (mask == 0).sum(dim=1)
            rows = torch.arange(h.shape[0], device=h.device)[:, None]
            ex = acts[rows, offsets[:, None] + ex_index.to(h.device)] & ex_valid.to(h.device)[..., None]
            sep = acts[rows, offsets[:, None] + sep_index.to(h.device)] & sep_valid.to(h.device)[..., None]
            return ex.any(dim=1).float().sum(dim=0), sep.float().sum(dim=(0, 1))

        out = trace(model, [Row(enc.ids) for enc in batch], [Read("acts", layer, positions="all", fn=fn)],
                    remote=remote)
        ex_count, sep_count = out.reads["acts"]
        on_examples += ex_count.cpu()
        at_separators += sep_count.cpu()
        separators += sum(len(s) for s in seps)
    return on_examples / len(encoded), at_separators / max(1, separators)


def feature_roles(model: Any, sae: Any, code: Any, few_shot: Any, zero_shot: Any, *, insert: str | None = None,
                  prepend_bos: bool | None = None, batch_size: int = 64, remote: Any = False) -> Any:
    """One row per feature of ``code`` (a ``TaskFeatures``, or ``{feature: weight}``): its
    activity on ``few_shot`` prompts, its effect inserted alone into ``zero_shot`` prompts and the
    code's without it, and its ``role`` (see the module doc). Returns a DataFrame."""
    import pandas as pd

    binding = bind(model, sae)
    model, sae = binding.model, binding.sae
    weights = dict(getattr(code, "features", code))
    if not weights:
        raise ValueError("the code has no features to measure")
    for f in weights:
        binding.check_feature(f)
    insert = check_insert(insert or getattr(code, "insert", "replace"))
    batch_size = check_batch_size(batch_size)
    bos = resolve_bos(prepend_bos, sae, getattr(code, "vector", None))
    few = with_answers(as_prompts(few_shot), "few_shot")
    items, encoded = prepare(model, zero_shot, bos)
    features = list(weights)
    on_examples, at_separators = activity(model, sae, features, few, bos, batch_size=batch_size, remote=remote)

    bias = sae.b_dec.detach().float().cpu() if insert == "replace" else torch.zeros(binding.d_model)
    decoder = sae.W_dec.detach().float().cpu()
    full = bias + sum(w * decoder[f] for f, w in weights.items())
    layer = binding.layer
    variants = [Variant(layer, bias, insert), Variant(layer, full, insert)]
    variants += [Variant(layer, bias + weights[f] * decoder[f], insert) for f in features]
    variants += [Variant(layer, full - weights[f] * decoder[f], insert) for f in features]
    if insert == "add":
        variants[0] = Variant()  # adding nothing: the plain zero-shot prompts
    scores = score(model, encoded, variants, items[0].stop, batch_size=batch_size, remote=remote)
    base_nll, _ = summary(scores, 0, None)
    code_nll, code_acc = summary(scores, 1, None)
    rows = []
    n = len(features)
    for i, f in enumerate(features):
        alone_nll, alone_acc = summary(scores, 2 + i, None)
        without_nll, without_acc = summary(scores, 2 + n + i, None)
        gain = base_nll - code_nll
        alone = (base_nll - alone_nll) / gain if abs(gain) > 1e-9 else float("nan")
        needed = (without_nll - code_nll) / gain if abs(gain) > 1e-9 else float("nan")
        detector = float(on_examples[i]) >= DETECTOR_SHARE
        executor = alone >= EXECUTOR_SHARE or needed >= EXECUTOR_SHARE
        role = "both" if detector and executor else "executor" if executor else "detector" if detector else "other"
        rows.append({"feature": f, "weight": weights[f], "on_examples": float(on_examples[i]),
                     "at_separators": float(at_separators[i]), "alone_nll": alone_nll, "alone_accuracy": alone_acc,
                     "alone_share": alone, "without_nll": without_nll, "without_accuracy": without_acc,
                     "needed_share": needed,
                     "role": role})
    frame = pd.DataFrame(rows)
    frame.attrs.update({"code_nll": code_nll, "code_accuracy": code_acc, "base_nll": base_nll, "insert": insert})
    return frame
