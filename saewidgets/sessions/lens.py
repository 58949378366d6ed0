"""What the explorer shows about features, as JSON for its traits.

``FeatureLens`` wraps the analyses (``saewidgets.analysis``: logit weights and
statistics, token classes, histograms, enrichment) for one Binding and caches
what the widget asks for repeatedly; the functions below turn results into the
compact JSON the front end renders. No model text is interpreted here: token
strings travel as plain strings and the view renders them as text.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Mapping

import numpy as np

from ..core.binding import Binding
from ..core.direction import Direction
from ..engine import Read, Row, trace
from ..logit_lens.charts import histogram_payload

TOP_TOKENS = 10  # promoted / suppressed tokens shown for a feature
LABEL_TOKENS = 3  # top tokens used as a feature's label in lists
SEARCH_TOKENS = 10  # top tokens per feature that search looks through
RANKED = 50  # features per ranking
SMALL = 2e8  # d_sae x vocab at most this: statistics computed at once, else in the background
REFERENCE_TEXT = "The quick brown fox jumps over the lazy dog, and then it runs home to sleep."
# Dropdown choices: label groups first, then the more useful single classes.
GROUPS = ("token_type", "case", "length", "first_letter")  # multi-way splits
GROUP_CHOICES = ("starts_with_space", *GROUPS)
HIDDEN_PREFIXES = ("first_letter_", "length_", "digits_")


class FeatureLens:
    """Logit-lens views of one Binding's features, cached for the widget."""

    def __init__(self, binding: Binding, classes: Mapping[str, Any] | None = None, remote: bool | str = False) -> None:
        from ..tokens.classes import token_classes

        self.binding = binding
        self.remote = remote
        self._reference_norm: float | None = None
        self._stats: Any = None
        self._labels: dict[int, list[str]] = {}
        self._enrichment: dict[str, np.ndarray] = {}
        self.classes = token_classes(binding)
        self._strings = self.classes.strings
        self._user: list[str] = []
        for name, tokens in (classes or {}).items():
            self.add_class(name, tokens)

    # -- token classes -------------------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        builtin = [n for n in self.classes.names if n not in self._user and not n.startswith(HIDDEN_PREFIXES)
                   and n not in ("byte", "special", "starts_with_space")]
        return [*self._user, *GROUP_CHOICES, *builtin]

    def add_class(self, name: str, tokens: Any = None, *, words: Any = None, regex: str | None = None,
                  ids: Any = None) -> None:
        """A user class from words, a regular expression or token ids (exactly one)."""
        given = [x is not None for x in (tokens, words, regex, ids)]
        if sum(given) != 1:
            raise ValueError("give exactly one of: tokens, words=[...], regex='...', ids=[...]")
        if name in GROUP_CHOICES:
            raise ValueError(f"{name!r} is a built-in split; choose another class name")
        pattern: Any = regex
        if tokens is not None:
            if isinstance(tokens, (str, re.Pattern)):
                pattern = tokens
            else:
                items = list(tokens.tolist() if hasattr(tokens, "tolist") else tokens)
                if items and all(isinstance(x, str) for x in items):
                    words = items
                else:
                    ids = items
        if pattern is not None:
            self.classes.add_regex(name, pattern)
        elif words is not None:
            self.classes.add_words(name, words)
        else:
            self.classes.add_ids(name, ids)
        self._user.append(name)
        self._enrichment.pop(name, None)

    def is_group(self, name: str) -> bool:
        return name in GROUPS

    # -- one feature ----------------------------------------------------------------------
    def token_string(self, token_id: int) -> str:
        if 0 <= token_id < len(self._strings):
            return self._strings[token_id]
        return self.binding.tokenizer.decode([token_id])

    def decoder_norm(self, feature: int) -> float:
        return float(self.binding.sae.W_dec[feature].detach().float().norm())

    def feature_info(self, feature: "int | Direction", explanation: str | None, token_class: str) -> dict:
        """Statistics, kind and top promoted / suppressed tokens of one feature (or direction)."""
        from ..logit_lens.lens import logit_stats

        raw = isinstance(feature, Direction)
        row = logit_stats(self.binding, features=feature if raw else [feature], k=TOP_TOKENS, progress=False).iloc[0]
        stats = {name: row[name] for name in ("std", "skew", "kurtosis", "mean")}
        if isinstance(feature, Direction):
            stats["norm"] = feature.norm()
            score = self.direction_enrichment(feature, token_class)
        else:
            stats["decoder norm"] = self.decoder_norm(feature)
            score = self.enrichment_score(feature, token_class)
        if score is not None:
            stats[f"enrichment: {token_class}"] = score
        return {
            "feature": None if raw else feature,
            "explanation": explanation,
            "kind": str(row["kind"]),
            "stats": {name: _json_number(value) for name, value in stats.items()},
            "top_positive": [[str(t), _json_number(v)] for t, v in zip(row["top_tokens"], row["top_values"])],
            "top_negative": [[str(t), _json_number(v)] for t, v in zip(row["bottom_tokens"], row["bottom_values"])],
        }

    def histogram(self, feature: "int | Direction", token_class: str, bins: int) -> dict:
        from ..logit_lens.histogram import logit_histogram

        raw = logit_histogram(self.binding, feature, classes=token_class, bins=bins, token_classes=self.classes)
        return histogram_payload(raw, None if isinstance(feature, Direction) else feature, token_class)

    def direction_enrichment(self, direction: "Direction", token_class: str) -> float | None:
        """Signed enrichment score of ``token_class`` for one raw direction (None for a split)."""
        if self.is_group(token_class):
            return None
        from ..logit_lens.enrichment import enrichment

        table = enrichment(self.binding, features=[direction], sets=self.classes.select([token_class]), progress=False)
        return float(table["es"].iloc[0])

    # -- the residual stream's size, for the slider's range --------------------------------
    def reference_norm(self) -> float | None:
        """Median norm of the residual stream at the hook over a reference sentence."""
        if self._reference_norm is None:
            binding = self.binding
            read = Read("norms", binding.layer, binding.site,  # type: ignore[arg-type]  # a checked HookPoint site
                        positions="all", fn=lambda h, mask: h[0].norm(dim=-1))
            try:
                run = trace(binding.model, [Row(REFERENCE_TEXT)], [read], remote=self.remote)
                norms = run.reads["norms"].detach().float()
                self._reference_norm = float(norms[1:].median() if norms.numel() > 1 else norms[0])
            except Exception:  # remote-only or unusual models: fall back to unit scale
                self._reference_norm = 0.0
        return self._reference_norm or None

    # -- every feature: statistics, labels, rankings ------------------------------------------
    @property
    def small(self) -> bool:
        return self.binding.d_sae * self.binding.vocab_size <= SMALL

    @property
    def stats_ready(self) -> bool:
        return self._stats is not None

    @property
    def stats(self) -> Any:
        return self._stats

    def compute_stats(self, progress: Callable[[int, int], None] | None = None) -> None:
        """Statistics and top tokens of every feature, in chunks. With ``progress(done, total)``
        (a background run, reported in the widget) no tqdm bar is drawn."""
        if self._stats is not None:
            return
        import pandas as pd
        from tqdm.auto import tqdm

        from ..logit_lens.lens import logit_stats

        n = self.binding.d_sae
        chunk = max(16, min(4096, int(2**26 // max(1, self.binding.vocab_size))))
        frames = []
        with tqdm(total=n, desc="feature statistics", unit="feature", disable=self.small or progress is not None) as bar:
            for start in range(0, n, chunk):
                ids = list(range(start, min(n, start + chunk)))
                frames.append(logit_stats(self.binding, features=ids, k=SEARCH_TOKENS, progress=False))
                bar.update(len(ids))
                if progress is not None:
                    progress(ids[-1] + 1, n)
        stats = pd.concat(frames, ignore_index=True).set_index("feature", drop=False)
        self._labels = {int(f): list(tokens) for f, tokens in zip(stats["feature"], stats["top_tokens"])}
        self._stats = stats

    def stats_row(self, feature: int) -> dict | None:
        if self._stats is None:
            return None
        frame = self._stats
        return frame.loc[feature].to_dict() if feature in frame.index else None

    def top_token_labels(self) -> dict[int, list[str]]:
        return self._labels

    def label(self, feature: int) -> str:
        return " ".join(repr_token(t) for t in self._labels.get(feature, [])[:LABEL_TOKENS])

    def enrichment_ready(self, token_class: str) -> bool:
        return self.is_group(token_class) or token_class in self._enrichment

    def enrichment_scores(self, token_class: str, compute: bool = True) -> np.ndarray | None:
        """Signed enrichment score (``es``) of ``token_class`` for every feature; None for a
        multi-way split, or when not computed yet and ``compute`` is False."""
        if self.is_group(token_class):
            return None
        if token_class not in self._enrichment:
            if not compute:
                return None
            from ..logit_lens.enrichment import enrichment

            table = enrichment(self.binding, sets=self.classes.select([token_class]), progress=False)
            values = np.full(self.binding.d_sae, np.nan)
            values[table["feature"].to_numpy(dtype=int)] = table["es"].to_numpy(dtype=float)
            self._enrichment[token_class] = values
        return self._enrichment[token_class]

    def enrichment_score(self, feature: int, token_class: str) -> float | None:
        scores = self.enrichment_scores(token_class, compute=False)
        return None if scores is None else float(scores[feature])

    def rankings(self, metrics: tuple[str, ...], token_class: str) -> dict[str, list]:
        out: dict[str, list] = {}
        for metric in metrics:
            if metric == "enrichment":
                values = self.enrichment_scores(token_class, compute=False)
                if values is None:
                    out[metric] = []
                    continue
            else:
                values = self._stat_column(metric)
            order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[:RANKED]
            out[metric] = [[int(f), _json_number(values[f]), self.label(int(f))] for f in order]
        return out

    def _stat_column(self, metric: str) -> np.ndarray:
        frame = self._stats
        values = np.full(self.binding.d_sae, np.nan)
        features = frame["feature"].to_numpy() if "feature" in frame.columns else frame.index.to_numpy()
        values[features.astype(int)] = frame[metric].to_numpy(dtype=float)
        return values


def repr_token(token: str) -> str:
    """A token as a list label: quoted, so leading spaces show."""
    return "'" + token.replace("\n", "\\n") + "'"


def search_features(query: str, labels: Mapping[int, list[str]], explanations: Mapping[int, str],
                    limit: int = 30) -> list[list]:
    """Features whose top tokens or explanation match ``query`` (case-insensitive).

    A query that is a number finds that feature. Then: features with a top token
    equal to the query (by that token's rank), explanations containing it, and
    top tokens containing it.
    """
    text = query.strip()
    if not text:
        return []
    needle = text.lower()
    hits: list[tuple[tuple, int, str]] = []
    if needle.isdigit():
        f = int(needle)
        if f in labels or f in explanations:
            hits.append(((-1, 0, f), f, _label(f, labels, explanations)))
    for f, tokens in labels.items():
        for rank, token in enumerate(tokens):
            t = token.strip().lower()
            if t == needle:
                hits.append(((0, rank, f), f, _label(f, labels, explanations)))
                break
            if needle in t:
                hits.append(((2, rank, f), f, _label(f, labels, explanations)))
                break
    for f, explanation in explanations.items():
        if needle in explanation.lower():
            hits.append(((1, 0, f), f, explanation))
    seen, out = set(), []
    for _, f, label in sorted(hits, key=lambda h: h[0]):
        if f not in seen:
            seen.add(f)
            out.append([f, label])
        if len(out) >= limit:
            break
    return out


def _label(f: int, labels: Mapping[int, list[str]], explanations: Mapping[int, str]) -> str:
    if f in explanations:
        return explanations[f]
    return " ".join(repr_token(t) for t in labels.get(f, [])[:LABEL_TOKENS])


ORGANISM_NAME = "saewidgets-organism"
# Folder names that say little alone: the title keeps their parent folder too.
GENERIC_FOLDERS = re.compile(r"^(model|models|hf|final|latest|weights|snapshot|checkpoint[-_]?\d*|step[-_]?\d+|[0-9a-f]{40})$",
                             re.IGNORECASE)


def model_name(name: str) -> str:
    """A short name for a model id: the organism by name, a local folder by its last part (and
    its parent when the last part is generic, e.g. ``run3/checkpoint-500``), a hub id as is."""
    from pathlib import Path, PurePath

    path = PurePath(name)
    if not path.is_absolute():
        return name
    try:
        from ..model_organism.ground_truth import MODEL_DIR

        if Path(name).resolve() == Path(MODEL_DIR).resolve():
            return ORGANISM_NAME
    except Exception:  # the organism's package part is optional here
        pass
    parts = [p for p in path.parts if p not in ("/", "\\")]
    if not parts:
        return name
    if GENERIC_FOLDERS.match(parts[-1]) and len(parts) > 1:
        return "/".join(parts[-2:])
    return parts[-1]


def title(binding: Binding) -> str:
    """``model · SAE architecture width at site[layer]`` with the model's short name (``model_name``)."""
    from ..core.model import model_id

    sae = binding.sae
    where = f"{binding.site}[{binding.layer}]"
    return f"{model_name(model_id(binding.model))} · SAE {sae.architecture} {sae.d_sae} features at {where}"


def default_class(names: list[str]) -> str:
    """The first user class if any, else "starts_with_space"."""
    return names[0] if names[0] not in GROUP_CHOICES else "starts_with_space"


def _json_number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
