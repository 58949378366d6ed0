"""What MELBO vectors do and mean: steered generations, SAE codes, logit lens, self-explanation, groups.

Every piece takes the vectors as ``sw.Direction`` values (``MelboVectors`` items) and goes through
the package's own analyses: generations as ``sw.steer`` makes them (the vector added at its source
layer, at every position, at multiples of R, baseline alongside; all rows batched in one engine
generation), SAE codes through ``sw.decompose``, the logit lens through ``sw.logit_stats``,
self-explanation through ``sw.self_explain``.

The SAE usually reads another layer than the one the vector is added to. ``effect`` is then what
the vector does there: the mean change it causes in the residual at the SAE's point over the
training prompts' tokens (the vector itself when the SAE reads the source layer). The logit lens
reads the effect at the model's last residual (the input of the final norm): what the vector
makes the model say.

>>> meaning = sw.melbo_meaning(model, sae, vectors, held_out=["The garden was", ...])
>>> meaning.to_frame()            # one row per vector: top features, top tokens, explanation, group
>>> meaning.generations           # vector, prompt, split, multiple, baseline, steered
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..core.binding import Binding, bind
from ..core.direction import Direction
from ..core.sae import HookPoint
from ..decomposition import SparseCode, decompose
from ..engine import Decoding, Edit, Read, Row, generate, trace
from ..engine.batch import tokenize
from ..steering import Continuation
from .result import MelboVectors
from .train import check_prompts

DEFAULT_MULTIPLES = (0.5, 1.0, 2.0)
WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?|\d+")


# -- steered generations ----------------------------------------------------------------------
def source_binding(model: Any, sae: Any, vectors: MelboVectors) -> Binding:
    """``model`` and ``sae`` bound at the vectors' source point (where steering adds them)."""
    base = bind(model, sae) if not isinstance(model, Binding) else (model if sae is None else bind(model.model, sae))
    return bind(base.model, base.sae, HookPoint(vectors.source_layer, "resid_pre",
                                                f"blocks.{vectors.source_layer}.hook_resid_pre"))


def steered_generations(
    model: Any,
    sae: Any,
    vectors: MelboVectors,
    *,
    prompts: Sequence[str] | None = None,
    held_out: Sequence[str] = (),
    multiples: Sequence[float] = DEFAULT_MULTIPLES,
    indices: Sequence[int] | None = None,
    max_new_tokens: int = 16,
    temperature: float = 0.0,
    seed: int = 0,
    batch_size: int = 128,
    progress: bool = False,
    remote: Any = False,
) -> pd.DataFrame:
    """Continuations of each prompt with each vector added at ``multiples`` of itself (norms
    ``m * R``), at every position of the prompt and of each generated token, and unsteered.

    ``prompts`` default to the run's training prompts; ``held_out`` are more prompts (split
    ``"held_out"``). All rows (baselines, then each vector and multiple on each prompt) run in
    generations of ``batch_size`` rows, each the continuation ``sw.steer`` gives. Returns one row per
    (vector, prompt, multiple): ``vector``, ``prompt``, ``split`` (``"train"``/``"held_out"``),
    ``multiple``, ``norm``, ``baseline``, ``steered``.
    """
    binding = source_binding(model, sae, vectors)
    train = list(vectors.prompts) if prompts is None else check_prompts(prompts)
    extra = [] if not held_out else check_prompts(list(held_out))
    multiples = _check_multiples(multiples)
    picked = _indices(vectors, indices)
    decoding = Decoding(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                        prepend_bos=vectors.settings.prepend_bos)
    directions = [vectors[i].scaled(m) for i in picked for m in multiples]
    texts = train + extra
    splits = ["train"] * len(train) + ["held_out"] * len(extra)
    baselines, steered = _generate(binding, texts, directions, decoding, batch_size, remote, progress)
    records = []
    for p, prompt in enumerate(texts):
        for k, run in enumerate(steered[p]):
            i, m = picked[k // len(multiples)], multiples[k % len(multiples)]
            records.append(dict(vector=i, prompt=prompt, split=splits[p], multiple=m, norm=m * vectors.radius,
                                baseline=baselines[p].text, steered=run.text))
    return pd.DataFrame.from_records(records, columns=["vector", "prompt", "split", "multiple", "norm", "baseline",
                                                       "steered"])


def _generate(binding: Binding, prompts: list[str], directions: list[Direction], decoding: Decoding, batch_size: int,
              remote: Any, progress: bool) -> tuple[list[Continuation], list[list[Continuation]]]:
    """Baseline and steered continuations of every prompt for every direction, all rows in as few
    engine generations as ``batch_size`` allows: the rows ``sw.steer`` / ``steer_variants`` run (the
    direction added at the binding's point, at every position), which do not depend on their batch.
    A zero direction's continuation is the baseline."""
    from tqdm.auto import tqdm

    vectors = [d.check_width(binding.d_model).vector for d in directions]
    rows = [Row(p) for p in prompts]
    wanted = [(k, p) for k, v in enumerate(vectors) if bool(v.any()) for p in range(len(prompts))]
    rows += [Row(prompts[p], (Edit(binding.layer, vectors[k], site=binding.site),)) for k, p in wanted]  # type: ignore[arg-type]
    runs: list[Continuation] = []
    with tqdm(total=len(rows), desc="steering", unit="row", disable=not progress) as bar:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            generation = generate(binding.model, chunk, decoding, remote=remote)
            runs += [_continuation(generation, r, binding.tokenizer) for r in range(len(chunk))]
            bar.update(len(chunk))
    baselines = runs[:len(prompts)]
    steered = [[baselines[p]] * len(vectors) for p in range(len(prompts))]
    for (k, p), run in zip(wanted, runs[len(prompts):]):
        steered[p][k] = run
    return baselines, steered


def _continuation(generation: Any, row: int, tokenizer: Any) -> Continuation:
    """Row ``row`` of a generation as ``sw.steer`` reports it: text without the final EOS."""
    ids, logprobs = generation.continuation(row)
    ended = generation.ended[row]
    eos = tokenizer.eos_token_id
    trim = ended and bool(ids) and isinstance(eos, int) and ids[-1] == eos
    return Continuation(tokenizer.decode(ids[:-1] if trim else ids, clean_up_tokenization_spaces=False), ids,
                        logprobs, ended)


# -- what a vector does at another layer ------------------------------------------------------
def effect(model: Any, vectors: MelboVectors, index: int, point: int, *, remote: Any = False) -> torch.Tensor:
    """The mean change vector ``index`` causes in the residual entering block ``point`` (``n_layers``:
    the last block's output), over the real tokens of the training prompts. At the source layer it
    is the vector itself; before it, zero."""
    direction = vectors[index]
    s = vectors.settings
    if point < s.source_layer:
        return torch.zeros_like(direction.vector)
    if point == s.source_layer:
        return direction.vector
    nn_model = model.model if isinstance(model, Binding) else model
    ids = tokenize(nn_model.tokenizer, vectors.prompts, s.prepend_bos)
    rows = [Row(r) for r in ids] + [Row(r, (Edit(s.source_layer, direction.vector),)) for r in ids]
    run = trace(nn_model, rows, [Read("z", point, positions="all")], remote=remote)
    z, mask = run.reads["z"].detach().float().cpu(), run.mask.bool()
    n = len(ids)
    delta = (z[n:] - z[:n])[mask[:n]]
    return delta.mean(0)


def sae_point(binding: Binding) -> int:
    """The residual point the SAE reads (block input index; resid_post[l] is point l + 1)."""
    return binding.layer + (1 if binding.site == "resid_post" else 0)


def decompose_vector(model: Any, sae: Any, vectors: MelboVectors, index: int, *, of: str = "effect",
                     method: str = "ito", l0: int = 8, remote: Any = False) -> SparseCode:
    """Vector ``index`` as SAE features (``sw.decompose``): of its ``effect`` at the SAE's point
    (default), or of the ``vector`` itself (in the source layer's basis)."""
    binding = bind(model, sae) if not isinstance(model, Binding) else model
    if of not in ("effect", "vector"):
        raise ValueError(f"of must be 'effect' (what the vector changes where the SAE reads) or 'vector', got {of!r}")
    if of == "vector":
        target = vectors[index].vector
    else:
        point = sae_point(binding)
        if point < vectors.source_layer:
            raise ValueError(f"the SAE reads residual point {point}, before the vectors' source layer "
                             f"{vectors.source_layer}: the vectors change nothing there; use of='vector'")
        target = effect(binding.model, vectors, index, point, remote=remote)
    return decompose(binding.sae, target, method=method, l0=l0)


def lens(model: Any, sae: Any, vectors: MelboVectors, index: int, *, k: int = 10, remote: Any = False) -> dict:
    """The logit lens of what vector ``index`` does at the model's last residual: its mean effect
    there through the final norm and the unembedding (``sw.logit_stats``). Returns ``top_tokens``,
    ``top_values``, ``bottom_tokens``, ``bottom_values``, ``kind``."""
    from ..logit_lens import logit_stats

    binding = bind(model, sae) if not isinstance(model, Binding) else model
    delta = effect(binding.model, vectors, index, binding.n_layers, remote=remote)
    direction = Direction(delta, name=f"effect of {vectors[index].name} at the last layer")
    row = logit_stats(binding, [direction], k=k, progress=False, random_baseline=False).iloc[0]
    return {name: (list(row[name]) if isinstance(row[name], (list, np.ndarray)) else row[name])
            for name in ("top_tokens", "top_values", "bottom_tokens", "bottom_values", "kind")}


def self_explanation(model: Any, sae: Any, vectors: MelboVectors, index: int, *, max_new_tokens: int = 6,
                     remote: Any = False, progress: bool = False, **options: Any) -> pd.DataFrame:
    """``sw.self_explain`` of vector ``index``, patched in at its own source layer (its basis) unless
    ``layer=`` says otherwise; the DataFrame's ``attrs`` hold the chosen and best explanations."""
    from ..self_explanation import self_explain

    binding = bind(model, sae) if not isinstance(model, Binding) else model
    options.setdefault("layer", vectors.source_layer)
    return self_explain(binding, feature=vectors[index], max_new_tokens=max_new_tokens, remote=remote, progress=progress,
                        **options)


# -- behaviour: words and groups --------------------------------------------------------------
def words(text: str) -> list[str]:
    """Lower-cased words (and numbers) of ``text``."""
    return [w.lower() for w in WORD.findall(text)]


def word_shares(texts: Iterable[str], word_lists: Mapping[str, Iterable[str]]) -> dict[str, float]:
    """For each named list: the share of the words of ``texts`` that are in it (case-insensitive).
    E.g. ``word_shares(steered, sw.organism_ground_truth().concepts)``."""
    counts = Counter(w for text in texts for w in words(text))
    total = sum(counts.values())
    out = {}
    for name, members in word_lists.items():
        wanted = {m.lower() for m in members}
        out[name] = sum(n for w, n in counts.items() if w in wanted) / total if total else 0.0
    return out


def added_words(frame: pd.DataFrame) -> Counter:
    """Words the steered continuations of ``frame`` use more often than their baselines (count excess)."""
    steered = Counter(w for text in frame["steered"] for w in words(text))
    baseline = Counter(w for text in frame.drop_duplicates("prompt")["baseline"] for w in words(text))
    n_multiples = max(1, frame["multiple"].nunique())
    return Counter({w: c - baseline.get(w, 0) * n_multiples for w, c in steered.items()
                    if c - baseline.get(w, 0) * n_multiples > 0})


def group_by_behaviour(generations: pd.DataFrame, *, threshold: float = 0.3) -> list[list[int]]:
    """Vectors grouped by what they make the model write: each vector's profile is the words its
    steered continuations add over the baselines (all prompts and multiples of ``generations``);
    average-linkage clustering on the cosine of the profiles, merging while a pair of groups is
    more similar than ``threshold``. Groups are lists of vector indices, largest first."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be a cosine similarity from 0 to 1, got {threshold!r}")
    indices = sorted(generations["vector"].unique().tolist())
    profiles = [added_words(generations[generations["vector"] == i]) for i in indices]
    vocab = sorted(set().union(*profiles)) if profiles else []
    at = {w: j for j, w in enumerate(vocab)}
    matrix = np.zeros((len(indices), max(1, len(vocab))))
    for r, profile in enumerate(profiles):
        for w, c in profile.items():
            matrix[r, at[w]] = c
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    similarity = unit @ unit.T
    groups = [[r] for r in range(len(indices))]
    while len(groups) > 1:
        best, pair = -1.0, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                value = float(similarity[np.ix_(groups[a], groups[b])].mean())
                if value > best:
                    best, pair = value, (a, b)
        if pair is None or best <= threshold:
            break
        a, b = pair
        groups[a] = groups[a] + groups.pop(b)
    out = [sorted(indices[r] for r in g) for g in groups]
    return sorted(out, key=lambda g: (-len(g), g[0]))


def group_label(generations: pd.DataFrame, group: Sequence[int], n: int = 4) -> str:
    """The words a group's vectors add most, e.g. ``"joyful upset calm"``."""
    profile: Counter = Counter()
    for i in group:
        profile.update(added_words(generations[generations["vector"] == i]))
    return " ".join(w for w, _ in profile.most_common(n))


# -- all of it --------------------------------------------------------------------------------
@dataclass
class VectorMeaning:
    """What one vector does and means."""

    index: int
    name: str
    objective: float
    features: dict[int, float]  # SAE code of its effect at the SAE's point, largest weight first
    code: SparseCode = field(repr=False)
    top_tokens: list[str]
    bottom_tokens: list[str]
    explanation: str  # self-explanation at the chosen scale ("" if none or off)
    best_explanations: list[str]
    added_words: list[str]  # what its continuations add over the baselines
    group: int = -1


@dataclass
class MelboMeaning:
    """The meaning of a run's vectors: ``items`` (one ``VectorMeaning`` each), ``generations``
    (every steered continuation, baseline alongside), ``groups`` (vector indices by behaviour)
    and their ``group_labels``."""

    vectors: MelboVectors
    items: list[VectorMeaning]
    generations: pd.DataFrame
    groups: list[list[int]]
    group_labels: list[str]

    def __getitem__(self, index: int) -> VectorMeaning:
        return next(item for item in self.items if item.index == index)

    def to_frame(self) -> pd.DataFrame:
        """One row per vector: index, name, objective, group, top_features, top_tokens,
        added_words, explanation."""
        return pd.DataFrame({
            "index": [m.index for m in self.items],
            "name": [m.name for m in self.items],
            "objective": [m.objective for m in self.items],
            "group": [m.group for m in self.items],
            "top_features": [list(m.features)[:5] for m in self.items],
            "top_tokens": [m.top_tokens[:5] for m in self.items],
            "added_words": [m.added_words[:5] for m in self.items],
            "explanation": [m.explanation for m in self.items],
        })


def melbo_meaning(
    model: Any,
    sae: Any,
    vectors: MelboVectors,
    *,
    held_out: Sequence[str] = (),
    multiples: Sequence[float] = DEFAULT_MULTIPLES,
    indices: Sequence[int] | None = None,
    max_new_tokens: int = 16,
    method: str = "ito",
    l0: int = 8,
    explain: bool = True,
    group_threshold: float = 0.3,
    progress: bool = True,
    remote: Any = False,
) -> MelboMeaning:
    """Everything about ``vectors`` (or those at ``indices``): steered generations on the training
    prompts and ``held_out`` at ``multiples`` of R with the baselines, the SAE code of each
    vector's effect (``method``, ``l0``: ``sw.decompose``), the logit lens of its effect at the last
    layer, its self-explanation (``explain``), and groups of vectors with similar behaviour."""
    from tqdm.auto import tqdm

    binding = bind(model, sae) if not isinstance(model, Binding) else model
    picked = _indices(vectors, indices)
    generations = steered_generations(binding, None, vectors, held_out=held_out, multiples=multiples, indices=picked,
                                      max_new_tokens=max_new_tokens, remote=remote)
    items = []
    for i in tqdm(picked, desc="MELBO meaning", unit="vector", disable=not progress):
        code = decompose_vector(binding, None, vectors, i, method=method, l0=l0, remote=remote)
        seen = lens(binding, None, vectors, i, remote=remote)
        text, best = "", []
        if explain:
            df = self_explanation(binding, None, vectors, i, remote=remote)
            text, best = str(df.attrs.get("chosen_explanation") or ""), list(df.attrs.get("best_explanations") or [])
        added = [w for w, _ in added_words(generations[generations["vector"] == i]).most_common(8)]
        items.append(VectorMeaning(i, vectors[i].name, vectors.objectives[i], code.features, code,
                                   list(seen["top_tokens"]), list(seen["bottom_tokens"]), text, best, added))
    groups = group_by_behaviour(generations, threshold=group_threshold)
    for g, members in enumerate(groups):
        for item in items:
            if item.index in members:
                item.group = g
    labels = [group_label(generations, members) for members in groups]
    return MelboMeaning(vectors, items, generations, groups, labels)


def _indices(vectors: MelboVectors, indices: Sequence[int] | None) -> list[int]:
    if indices is None:
        return list(range(len(vectors)))
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < len(vectors):
            raise ValueError(f"vector index {i!r} does not exist: the run has vectors 0..{len(vectors) - 1}")
        out.append(int(i))
    return out


def _check_multiples(multiples: Sequence[float]) -> list[float]:
    from ..steering import check_scale

    values = [check_scale(m, "a multiple of R") for m in (multiples if isinstance(multiples, (list, tuple)) else [multiples])]
    if not values:
        raise ValueError("multiples is empty: give at least one multiple of R, e.g. (0.5, 1, 2)")
    return values
