"""The model runs behind task vectors, all through the engine: residuals at separators, and answers
scored with a vector written (or added) at the last separator.

Scoring uses teacher forcing: a row is the prompt followed by its answer's tokens, so one forward
pass gives the log-probability of every answer token and the greedy (argmax) token at every answer
position. A prompt is *answered* (greedy exact match) when every answer token is the argmax and the
argmax after the answer ends the line (a token whose text starts with the stop string, after
spaces, or an end-of-sequence token): exactly when greedy decoding, cut at the stop string and
stripped, gives the answer (up to a different tokenisation of the same text). The reductions run
inside the trace (``Read.fn``), so a remote run sends back per-row numbers, not logits.
"""

from __future__ import annotations

import numbers
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence, cast

import torch

from ..core.direction import Direction
from ..core.model import hidden_size, model_layout
from ..engine import Edit, Read, Row, eos_ids, trace
from .prompts import Encoded

INSERTS = ("replace", "add")
Insert = Literal["replace", "add"]
_ENDERS: "weakref.WeakKeyDictionary[Any, dict[str, torch.Tensor]]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Variant:
    """One way to run the zero-shot prompts: ``vector`` written (``insert="replace"``) or added at
    the last separator of the residual entering block ``layer``; ``None`` runs them unchanged."""

    layer: int | None = None
    vector: torch.Tensor | None = None
    insert: Insert = "replace"


@dataclass
class Scores:
    """Per variant and prompt: the answer tokens' log-probabilities (rows of ragged length) and
    whether greedy decoding gives the answer."""

    logprobs: list[list[list[float]]]  # variant x prompt x answer token
    correct: list[list[bool]]  # variant x prompt

    def nll(self, v: int, tokens: int | None = None) -> list[float]:
        """Per prompt: the mean NLL (nats) of its first ``tokens`` answer tokens (all if None)."""
        return [-sum(lp[:tokens]) / len(lp[:tokens]) for lp in self.logprobs[v]]


def n_layers(model: Any) -> int:
    return len(model_layout(model).blocks_of(model._module))


def d_model(model: Any) -> int:
    return hidden_size(model._module, model_layout(model))


def check_layer(model: Any, layer: Any, what: str = "layer") -> int:
    n = n_layers(model)
    if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not 0 <= int(layer) < n:
        raise ValueError(f"{what} must be a block index from 0 to {n - 1} (this model has {n} blocks), got {layer!r}")
    return int(layer)


def check_insert(insert: Any) -> Insert:
    if insert not in INSERTS:
        raise ValueError(f"insert must be one of {INSERTS} (write the vector over the residual, or add it), "
                         f"got {insert!r}")
    return cast(Insert, insert)


def check_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"batch_size must be a whole number >= 1 (rows per forward pass), got {value!r}")
    return int(value)


def as_vector(vector: Any, width: int, what: str = "the task vector") -> torch.Tensor:
    """A Direction or a d_model tensor as a float32 CPU tensor, checked."""
    direction = vector if isinstance(vector, Direction) else Direction(vector, name=what)
    return direction.check_width(width, "the model's residual stream").vector


def chunks(n: int, size: int) -> list[range]:
    return [range(start, min(n, start + size)) for start in range(0, n, size)]


# -- residuals at separators ----------------------------------------------------------------
def own_positions(positions: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Ragged per-row token indices as a padded index tensor and its validity mask."""
    width = max(1, max(len(p) for p in positions))
    index = torch.zeros(len(positions), width, dtype=torch.long)
    valid = torch.zeros(len(positions), width, dtype=torch.bool)
    for r, row in enumerate(positions):
        index[r, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        valid[r, : len(row)] = True
    return index, valid


def gather_fn(index: torch.Tensor, valid: torch.Tensor, reduce: str) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    """A ``Read.fn`` that picks each row's own positions ``index`` (left padding undone with the
    mask) and returns their sum (``reduce="sum"``) or the picked vectors (n x d, ``"stack"``)."""

    def fn(h: torch.Tensor, mask: torch.Tensor) -> Any:
        offsets = (mask == 0).sum(dim=1)
        where = offsets[:, None] + index.to(h.device)
        picked = h[torch.arange(h.shape[0], device=h.device)[:, None], where]
        keep = valid.to(h.device)
        if reduce == "sum":
            return (picked.float() * keep[..., None]).sum(dim=(0, 1))
        return picked.float()[keep]

    return fn


def separator_residuals(model: Any, encoded: Sequence[Encoded], layers: Sequence[int], *, position: str,
                        stack_layers: Sequence[int] = (), batch_size: int = 32, remote: Any = False,
                        progress: Any = None) -> tuple[dict[int, torch.Tensor], int, dict[int, torch.Tensor]]:
    """The sum of resid_pre[layer] over the chosen separator positions of every prompt, for
    every layer in one pass per batch; the number of positions; and, for ``stack_layers``, the
    residuals themselves (positions x d). ``position``: "separator" (every one) or "last"."""
    picks = [enc.separators if position == "separator" else enc.separators[-1:] for enc in encoded]
    sums: dict[int, torch.Tensor] = {}
    stacks: dict[int, list[torch.Tensor]] = {layer: [] for layer in stack_layers}
    for part in chunks(len(encoded), batch_size):
        index, valid = own_positions([picks[i] for i in part])
        reads = [Read(f"sum{layer}", layer, positions="all", fn=gather_fn(index, valid, "sum")) for layer in layers]
        reads += [Read(f"stack{layer}", layer, positions="all", fn=gather_fn(index, valid, "stack"))
                  for layer in stack_layers]
        out = trace(model, [Row(encoded[i].ids) for i in part], reads, remote=remote)
        for layer in layers:
            value = out.reads[f"sum{layer}"].detach().cpu()
            sums[layer] = value if layer not in sums else sums[layer] + value
        for layer in stack_layers:
            stacks[layer].append(out.reads[f"stack{layer}"].detach().cpu())
        if progress is not None:
            progress(len(part))
    count = sum(len(p) for p in picks)
    return sums, count, {layer: torch.cat(parts) for layer, parts in stacks.items()}


# -- scoring answers --------------------------------------------------------------------------
def enders(model: Any, stop: str) -> torch.Tensor:
    """A bool vector over the vocabulary: tokens that end an answer (text starting with ``stop``
    after spaces, or end-of-sequence)."""
    tok = model.tokenizer
    cache = _ENDERS.setdefault(tok, {})
    if stop not in cache:
        vocab = int(model_layout(model).part(model._module, "unembed").weight.shape[0])
        n = min(len(tok), vocab)
        texts = tok.batch_decode([[i] for i in range(n)], clean_up_tokenization_spaces=False)
        flags = torch.zeros(vocab, dtype=torch.bool)
        flags[:n] = torch.tensor([t.lstrip(" \t").startswith(stop) for t in texts])
        for i in eos_ids(model):
            if 0 <= i < vocab:
                flags[i] = True
        cache[stop] = flags
    return cache[stop]


def _answer_read(prompt_lengths: list[int], answers: list[list[int]]) -> tuple[Read, torch.Tensor]:
    """The logits read of a scoring batch: per row the log-probabilities of its answer tokens
    (rows x M, 0 past a row's answer) and the argmax at its answer positions and after (rows x M+1)."""
    m = max(len(a) for a in answers)
    index = torch.zeros(len(answers), m + 1, dtype=torch.long)
    targets = torch.zeros(len(answers), m, dtype=torch.long)
    valid = torch.zeros(len(answers), m, dtype=torch.bool)
    for r, (p, answer) in enumerate(zip(prompt_lengths, answers)):
        k = len(answer)
        index[r, : k + 1] = torch.arange(p - 1, p + k)
        index[r, k + 1:] = p + k - 1
        targets[r, :k] = torch.tensor(answer)
        valid[r, :k] = True

    def fn(logits: torch.Tensor, mask: torch.Tensor) -> Any:
        offsets = (mask == 0).sum(dim=1)
        where = offsets[:, None] + index.to(logits.device)
        picked = logits[torch.arange(logits.shape[0], device=logits.device)[:, None], where].float()
        logprobs = torch.log_softmax(picked[:, :m], dim=-1).gather(-1, targets.to(logits.device)[..., None])[..., 0]
        return logprobs * valid.to(logits.device), picked.argmax(dim=-1)

    return Read("answers", site="logits", positions="all", fn=fn), valid


def scoring_rows(encoded: Sequence[Encoded], variants: Sequence[Variant]) -> list[tuple[int, int, Row]]:
    """(variant, prompt, row) for every pair: the prompt and its answer, the variant's edit at the
    prompt's last separator."""
    rows = []
    for v, variant in enumerate(variants):
        for p, enc in enumerate(encoded):
            edits: tuple[Edit, ...] = ()
            if variant.vector is not None and variant.layer is not None:
                edits = (Edit(variant.layer, variant.vector, op=variant.insert, positions=(enc.separators[-1],)),)
            rows.append((v, p, Row([*enc.ids, *enc.answer_ids], edits)))
    return rows


def score(model: Any, encoded: Sequence[Encoded], variants: Sequence[Variant], stop: str, *, batch_size: int = 64,
          remote: Any = False, progress: Any = None) -> Scores:
    """Score every prompt under every variant, ``batch_size`` rows per forward pass."""
    ends = enders(model, stop)
    rows = scoring_rows(encoded, variants)
    logprobs: list[list[list[float]]] = [[[] for _ in encoded] for _ in variants]
    correct = [[False for _ in encoded] for _ in variants]
    for part in chunks(len(rows), batch_size):
        batch = [rows[i] for i in part]
        lengths = [len(encoded[p].ids) for _, p, _ in batch]
        answers = [encoded[p].answer_ids for _, p, _ in batch]
        read, valid = _answer_read(lengths, answers)
        out = trace(model, [row for _, _, row in batch], [read], remote=remote)
        lp, argmax = out.reads["answers"]
        lp, argmax = lp.detach().cpu(), argmax.detach().cpu()
        for r, (v, p, _) in enumerate(batch):
            answer = answers[r]
            k = len(answer)
            logprobs[v][p] = lp[r, :k].tolist()
            correct[v][p] = argmax[r, :k].tolist() == answer and bool(ends[int(argmax[r, k])])
        if progress is not None:
            progress(len(part))
    return Scores(logprobs, correct)


def nll_loss_read(encoded: Sequence[Encoded], tokens: int) -> tuple[Read, Callable[[dict], torch.Tensor]]:
    """The read and loss of a cleanup step: the mean NLL of each prompt's first ``tokens`` answer
    tokens, averaged over prompts (the rows of one batch)."""
    lengths = [len(enc.ids) for enc in encoded]
    answers = [enc.answer_ids[:tokens] for enc in encoded]
    read, valid = _answer_read(lengths, answers)
    counts = valid.sum(dim=1).float()

    def loss(reads: dict) -> torch.Tensor:
        logprobs = reads["answers"][0]
        return -(logprobs.sum(dim=1) / counts.to(logprobs.device)).mean()

    return read, loss


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "row") -> Any:
    """A tqdm bar (or None when disabled)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)
