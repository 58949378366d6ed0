"""``MelboSession``: what the MELBO explorer computes, as plain Python (no traits, no threads).

The session owns a run's vectors (``MelboVectors``) and the store they are saved in
(``MelboStore``, a SQLite file), trains more of them (``sw.melbo`` resuming from the store), and
turns each vector's meaning into the JSON the gallery shows: a card per vector (objective, top
SAE features of its effect, logit lens of its effect at the last layer, the words its
continuations add, group), and for the selected vector its continuations on every prompt at
each multiple of R (baseline alongside) and its self-explanation. Results are cached per vector.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from ..core.binding import Binding
from ..core.direction import Direction
from ..melbo import meaning
from ..melbo.result import MelboVectors, from_store
from ..melbo.settings import MelboSettings
from ..melbo.store import MelboStore
from ..melbo.train import MelboStep, check_prompts, melbo
from ..steering import check_scale

DEFAULT_MULTIPLES = (0.5, 1.0, 1.5, 2.0)
DEFAULT_PATH = "melbo.sqlite"


def feature_label(binding: Binding, lens_tokens: Mapping[int, list[str]], feature: int) -> str:
    tokens = lens_tokens.get(feature) or []
    return " ".join(t.strip() or repr(t) for t in tokens[:3])


class MelboSession:
    """A MELBO run on ``binding`` (a model and an SAE) and what its vectors mean.

    >>> session = MelboSession(sw.bind(model, sae), prompts, settings=dict(source_layer=1, target_layer=3, radius=8))
    >>> session.train(4)            # four more vectors (resuming from the store)
    >>> session.cards()             # the gallery's JSON
    >>> session.generations(0)      # vector 0 on every prompt at every multiple of R
    """

    def __init__(self, binding: Binding, prompts: Sequence[str] | None = None, *, vectors: MelboVectors | None = None,
                 settings: Mapping[str, Any] | MelboSettings | None = None, held_out: Sequence[str] = (),
                 path: Any = DEFAULT_PATH, multiples: Sequence[float] = DEFAULT_MULTIPLES, max_new_tokens: int = 16,
                 remote: Any = False) -> None:
        self.binding = binding
        self.remote = remote
        self.max_new_tokens = int(max_new_tokens)
        self.multiples = [check_scale(m, "a multiple of R") for m in multiples]
        if not self.multiples:
            raise ValueError("multiples is empty: give the multiples of R to generate at, e.g. (0.5, 1, 2)")
        if vectors is not None and not isinstance(vectors, MelboVectors):
            raise ValueError(f"vectors must be MelboVectors (from sw.melbo or MelboVectors.load), got {type(vectors).__name__}")
        if prompts is None:
            if vectors is None:
                raise ValueError("give the prompts to train on (or vectors= learned before)")
            prompts = vectors.prompts
        self.prompts = check_prompts(list(prompts) if not isinstance(prompts, str) else prompts)
        if vectors is not None and list(vectors.prompts) != self.prompts:
            raise ValueError("vectors= were learned on other prompts than prompts=: leave prompts out to use theirs")
        self.held_out = check_prompts(list(held_out)) if held_out else []
        self.settings = self._settings(settings, vectors)
        self._temporary = None
        if path is False or path is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="saewidgets-melbo-")
            path = Path(self._temporary.name) / DEFAULT_PATH
        self.store = MelboStore(path)
        self.saved = self._temporary is None
        self._lock = threading.RLock()
        self._cards: dict[int, dict] = {}
        self._generations: dict[int, dict] = {}
        self._explanations: dict[int, dict] = {}
        self._overview: pd.DataFrame | None = None
        self.key = self._key()
        self.vectors = self._load(vectors)

    # -- setup ------------------------------------------------------------------------------
    def _settings(self, settings: Any, vectors: MelboVectors | None) -> MelboSettings:
        if vectors is not None:
            if settings is not None:
                raise ValueError("give settings= or vectors=, not both: vectors= carry their run's settings")
            return vectors.settings
        if isinstance(settings, MelboSettings):
            return settings
        if not isinstance(settings, Mapping) or not {"source_layer", "target_layer", "radius"} <= set(settings):
            raise ValueError("settings must say source_layer, target_layer and radius (and optionally steps, p, q, lr, "
                             "seed, prepend_bos), e.g. dict(source_layer=1, target_layer=3, radius=8)")
        unknown = sorted(set(settings) - (set(MelboSettings.__dataclass_fields__) - {"betas"}))
        if unknown:
            raise ValueError(f"unknown MELBO settings {unknown}; the settings are {list(MelboSettings.__dataclass_fields__)}")
        return MelboSettings.checked(self.binding.n_layers, **dict(settings))

    def _load(self, given: MelboVectors | None) -> MelboVectors:
        """The vectors to show: ``given`` (written into the store under their training key), else
        those the store holds for these prompts and settings (none at first)."""
        if given is not None and len(given):
            if given.key != self.key:
                raise ValueError("vectors= were not trained by sw.melbo with this model, these prompts and these "
                                 "settings (or are a slice or saved copy of such a run), so training cannot continue "
                                 "from them: pass the sw.melbo result itself, or MelboVectors.load(path)")
            run = self._run(given.key)
            if len(self.store.vectors(run)) < len(given):
                given.save(self.store.path)
            return from_store(self.store, run)[: max(len(given), len(self.store.vectors(run)))]
        return self._trained(0)

    def _run(self, key: str) -> int:
        return self.store.run(key, model=self.vectors_model, d_model=self.binding.d_model,
                              settings=self.settings.to_dict(), prompts=self.prompts)

    @property
    def vectors_model(self) -> str:
        from ..core.model import model_id

        return model_id(self.binding.model)

    def _key(self) -> str:
        from ..engine.batch import tokenize
        from ..melbo.train import fingerprint, run_key

        ids = tokenize(self.binding.tokenizer, self.prompts, self.settings.prepend_bos)
        return run_key(fingerprint(self.binding.model, self.binding.layout), ids, self.settings)

    def _trained(self, n_vectors: int, on_step: Callable[[MelboStep], None] | None = None,
                 progress: bool = False) -> MelboVectors:
        """The first ``n_vectors`` vectors of this run (trained, or resumed from the store), at
        least those already stored."""
        s = self.settings
        stored = len(self.store.vectors(self._run(self.key)))
        n = max(n_vectors, stored)
        if n == 0:
            return MelboVectors([], [], s, list(self.prompts), model=self.vectors_model, path=str(self.store.path),
                                key=self.key)
        return melbo(self.binding.model, self.prompts, source_layer=s.source_layer, target_layer=s.target_layer,
                     radius=s.radius, n_vectors=n, steps=s.steps, p=s.p, q=s.q, lr=s.lr, seed=s.seed,
                     prepend_bos=s.prepend_bos, path=self.store.path, on_step=on_step, progress=progress,
                     remote=self.remote)

    def close(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    # -- training ---------------------------------------------------------------------------
    def train(self, n_more: int, on_step: Callable[[MelboStep], None] | None = None,
              progress: bool = False) -> MelboVectors:
        """Learn ``n_more`` vectors after those there are (saved in the store as they finish; an
        exception from ``on_step`` stops the run, keeping what finished and a checkpoint)."""
        from ..melbo.settings import check_int

        n_more = check_int(n_more, "the number of vectors to train", 1, self.binding.d_model - len(self.vectors),
                           f" (vectors are orthogonal: at most d_model={self.binding.d_model} in all)")
        try:
            vectors = self._trained(len(self.vectors) + n_more, on_step, progress)
        finally:
            with self._lock:
                self.vectors = self._trained(0)  # whatever finished, even when stopped
                self._overview = None
        return vectors

    # -- what the gallery shows ---------------------------------------------------------------
    def overview(self, progress: bool = False) -> pd.DataFrame:
        """Every vector's continuations on the training prompts at 1 x R (baseline alongside)."""
        with self._lock:
            if self._overview is not None and set(self._overview["vector"]) == set(range(len(self.vectors))):
                return self._overview
        frame = meaning.steered_generations(self.binding, None, self.vectors, multiples=(1.0,),
                                            max_new_tokens=self.max_new_tokens, progress=progress, remote=self.remote)
        with self._lock:
            self._overview = frame
            self._cards = {i: c for i, c in self._cards.items() if i < len(self.vectors)}
        return frame

    def groups(self) -> list[dict]:
        """Vectors with similar behaviour (the words their continuations add), with labels."""
        frame = self.overview()
        if frame.empty:
            return []
        groups = meaning.group_by_behaviour(frame)
        return [{"members": g, "label": meaning.group_label(frame, g)} for g in groups]

    def card(self, index: int) -> dict:
        """One vector's card: name, objective, norm, top SAE features of its effect (with each
        feature's top logit tokens), the logit lens of its effect, the words it adds, a sample."""
        self._check_index(index)
        with self._lock:
            if index in self._cards:
                return self._with_explanation(self._cards[index])
        v = self.vectors
        code = meaning.decompose_vector(self.binding, None, v, index, remote=self.remote)
        seen = meaning.lens(self.binding, None, v, index, remote=self.remote)
        frame = self.overview()
        mine = frame[frame["vector"] == index]
        features = list(code.features.items())[:5]
        labels = self._feature_tokens([f for f, _ in features])
        first = mine.iloc[0] if len(mine) else None
        card = {
            "index": index,
            "name": v[index].name,
            "objective": float(v.objectives[index]),
            "norm": round(v[index].norm(), 6),
            "features": [{"feature": int(f), "weight": round(float(w), 4), "tokens": labels.get(int(f), [])}
                         for f, w in features],
            "cosine": round(float(code.cosine), 4),
            "top_tokens": [str(t) for t in seen["top_tokens"][:8]],
            "bottom_tokens": [str(t) for t in seen["bottom_tokens"][:5]],
            "added_words": [w for w, _ in meaning.added_words(mine).most_common(6)] if len(mine) else [],
            "sample": None if first is None else {"prompt": first["prompt"], "baseline": first["baseline"],
                                                  "steered": first["steered"]},
        }
        with self._lock:
            self._cards[index] = card
        return self._with_explanation(card)

    def _with_explanation(self, card: dict) -> dict:
        done = self._explanations.get(card["index"])
        return {**card, "explanation": done["explanation"]} if done else card

    def _feature_tokens(self, features: list[int]) -> dict[int, list[str]]:
        if not features:
            return {}
        from ..logit_lens import logit_stats

        stats = logit_stats(self.binding, features, k=3, progress=False, random_baseline=False)
        return {int(f): [str(t) for t in tokens] for f, tokens in zip(stats["feature"], stats["top_tokens"])}

    def generations(self, index: int) -> dict:
        """Vector ``index`` on every prompt (training, then held-out) at each multiple of R, with the
        baselines: ``{"index", "multiples", "rows": [{"prompt", "split", "baseline", "steered": [...]}]}``."""
        self._check_index(index)
        with self._lock:
            if index in self._generations:
                return self._generations[index]
        frame = meaning.steered_generations(self.binding, None, self.vectors, held_out=self.held_out,
                                            multiples=self.multiples, indices=[index], max_new_tokens=self.max_new_tokens,
                                            remote=self.remote)
        rows = []
        for (prompt, split), part in frame.groupby(["prompt", "split"], sort=False):
            by_multiple = dict(zip(part["multiple"], part["steered"]))
            rows.append({"prompt": prompt, "split": split, "baseline": part["baseline"].iloc[0],
                         "steered": [by_multiple[m] for m in self.multiples]})
        out = {"index": index, "multiples": list(self.multiples), "radius": self.settings.radius, "rows": rows}
        with self._lock:
            self._generations[index] = out
        return out

    def explanation(self, index: int) -> dict:
        """Vector ``index``'s self-explanation (``sw.self_explain`` patched in at its source layer)."""
        self._check_index(index)
        with self._lock:
            if index in self._explanations:
                return self._explanations[index]
        df = meaning.self_explanation(self.binding, None, self.vectors, index, remote=self.remote)
        out = {"index": index, "status": "done", "explanation": str(df.attrs.get("chosen_explanation") or ""),
               "best": [str(t) for t in df.attrs.get("best_explanations") or []],
               "failed": bool(df.attrs.get("failed")), "layer": int(df.attrs.get("layer", self.settings.source_layer))}
        with self._lock:
            self._explanations[index] = out
        return out

    def cached_explanation(self, index: int) -> dict | None:
        with self._lock:
            return self._explanations.get(index)

    def direction(self, index: int) -> Direction:
        self._check_index(index)
        return self.vectors[index]

    def rename(self, index: int, name: str) -> None:
        """Name vector ``index`` (saved in the store)."""
        self._check_index(index)
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ValueError(f"a vector's name must be non-empty text of at most 200 characters, got {name!r}")
        self.store.rename(self.vectors.run, index, name.strip())  # type: ignore[arg-type]
        with self._lock:
            self.vectors = from_store(self.store, self.vectors.run)  # type: ignore[arg-type]
            self._cards.pop(index, None)

    def _check_index(self, index: Any) -> None:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.vectors):
            raise ValueError(f"vector {index!r} does not exist: there are {len(self.vectors)} vectors "
                             f"(0..{len(self.vectors) - 1})")

    def settings_json(self) -> dict:
        s = self.settings.to_dict()
        s.pop("betas", None)
        return s
