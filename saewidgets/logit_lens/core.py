"""Shared machinery of the logit-lens analyses: argument resolution, the effective
unembedding (final-norm folding, cosine scaling) and chunked feature x vocab weights."""

from __future__ import annotations

import numbers
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Union

import torch

from ..core.binding import Binding, bind
from ..core.sae import SAE

# Memory for one chunk of feature x vocab float32 weights when chunk_size is not given.
CHUNK_BYTES = 64 * 2**20


class _NotGiven:
    def __repr__(self) -> str:
        return "<not given>"


NOT_GIVEN: Any = _NotGiven()  # default of the ``sae`` argument: tells "(binding, None, x)" from keywords


def resolve(model: Any, sae: Any, *rest: Any) -> tuple[Binding, tuple[Any, ...]]:
    """``(model, sae, *rest)`` or ``(binding, *rest)`` -> ``(binding, rest)``.

    With a ``Binding`` first, a positional value in the ``sae`` slot is the first of
    ``rest`` (so ``f(binding, 3)`` means feature 3 and ``f(binding, None, sets)`` means
    all features); the last slot must then be left empty.
    """
    if isinstance(model, Binding):
        if sae is NOT_GIVEN or isinstance(sae, Binding):
            return model, rest
        if isinstance(sae, SAE):
            if sae is not model.sae:
                raise ValueError("got a Binding and a different SAE; pass either (model, sae) or a Binding")
            return model, rest
        if rest and rest[-1] is not None:
            raise TypeError("too many positional arguments: with a Binding, leave out the sae argument")
        return model, (sae, *rest[:-1])
    if sae is None or sae is NOT_GIVEN:
        raise ValueError("no SAE given: pass (model, sae) or a Binding from sw.bind(model, sae)")
    if not isinstance(sae, (SAE, Binding)):
        raise TypeError(f"expected an sw.SAE (or a Binding) as the second argument, got {type(sae).__name__}")
    return bind(model, sae), rest


@dataclass
class FeatureSpec:
    """Which decoder rows to read: SAE feature ids, or raw direction vectors."""

    ids: list[int]
    directions: torch.Tensor | None = None  # n x d_model, when raw vectors were given

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, binding: Binding, start: int, stop: int) -> torch.Tensor:
        if self.directions is not None:
            return self.directions[start:stop]
        index = torch.as_tensor(self.ids[start:stop], device=binding.sae.W_dec.device)
        return binding.sae.W_dec.detach().index_select(0, index)


def feature_spec(binding: Binding, features: Any, *, default_all: bool = True) -> FeatureSpec:
    """Validate ``features``: None (every feature), an index, indices, or float direction(s)."""
    if features is None:
        if not default_all:
            raise ValueError("give the feature(s) to analyse: an index, a list of indices or a direction vector")
        return FeatureSpec(list(range(binding.d_sae)))
    features = _directions_as_rows(binding, features)
    if isinstance(features, torch.Tensor) and features.is_floating_point():
        vectors = features.detach()
        if vectors.ndim == 1:
            vectors = vectors[None]
        if vectors.ndim != 2 or vectors.shape[1] != binding.d_model:
            raise ValueError(
                f"a direction must have d_model={binding.d_model} values (or be n x {binding.d_model}); "
                f"got shape {tuple(features.shape)}"
            )
        if not torch.isfinite(vectors).all():
            bad = (~torch.isfinite(vectors)).any(dim=1).nonzero()[:, 0].tolist()
            raise ValueError(f"direction(s) {bad[:10]} contain NaN or infinite values; give finite vectors")
        return FeatureSpec(list(range(vectors.shape[0])), vectors)
    if isinstance(features, range):
        features = list(features)
    ids = binding.check_features(features)
    if not ids:
        raise ValueError("the feature list is empty: give at least one feature index")
    return FeatureSpec(ids)


def _directions_as_rows(binding: Binding, features: Any) -> Any:
    """``sw.Direction`` values as feature ids (when each is one feature of this SAE) or vectors."""
    from ..core.direction import Direction

    if isinstance(features, Direction):
        features = [features]
    if not (isinstance(features, (list, tuple)) and features and all(isinstance(f, Direction) for f in features)):
        return features
    if all(f.is_feature and f.sae is binding.sae for f in features):
        return [f.feature_index for f in features]
    where = f"the residual stream at {binding.site}[{binding.layer}]"
    return torch.stack([f.check_width(binding.d_model, where).vector for f in features])


@dataclass
class Unembedding:
    """``W_eff`` such that a direction's logit weights are ``d @ W_eff``.

    ``W_eff = C diag(g) W_U`` with the final norm folded (``g`` its gain, ``C``
    the mean removal of a LayerNorm), else ``W_U``. With ``cosine`` every
    column of ``W_eff`` is scaled to unit norm and each direction divided by its norm.
    """

    W_U: torch.Tensor  # d_model x vocab, float32, on the compute device
    gain: torch.Tensor | None  # d_model, or None when the norm is not folded
    center: bool
    inv_col_norm: torch.Tensor | None  # vocab, when cosine
    mean_column: torch.Tensor  # d_model, float64 on the CPU: mean over the vocab of the (scaled) columns

    @property
    def device(self) -> torch.device:
        return self.W_U.device

    @property
    def vocab_size(self) -> int:
        return self.W_U.shape[1]

    def prepare(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Directions as the matmul needs them, and their norms when cosine."""
        rows = rows.to(self.device, torch.float32)
        norms = rows.norm(dim=1).clamp_min(1e-30) if self.inv_col_norm is not None else None
        if self.center:
            rows = rows - rows.mean(dim=1, keepdim=True)
        if self.gain is not None:
            rows = rows * self.gain
        return rows, norms

    def weights(self, rows: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Logit weights (n x vocab, float32, on ``self.device``) of the direction rows,
        written into the first n rows of ``out`` when given (no fresh pages per chunk)."""
        return self.weights_and_means(rows, out)[0]

    def weights_and_means(
        self, rows: torch.Tensor, out: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The logit weights and, from the same prepared rows, each row's mean over the
        vocabulary (float64, exact up to the float32 rows: ``d_eff @ mean_column``)."""
        prepared, norms = self.prepare(rows)
        if out is None:
            weights = prepared @ self.W_U
        else:
            weights = torch.matmul(prepared, self.W_U, out=out[: prepared.shape[0]])
        if self.inv_col_norm is not None:
            weights.mul_(self.inv_col_norm).div_(norms[:, None])  # type: ignore[index]
        return weights, self._means(prepared, norms)

    def means(self, rows: torch.Tensor) -> torch.Tensor:
        """Mean over the vocab of each row's logit weights (float64, CPU), without forming them."""
        return self._means(*self.prepare(rows))

    def _means(self, prepared: torch.Tensor, norms: torch.Tensor | None) -> torch.Tensor:
        mean = prepared.detach().cpu().double() @ self.mean_column
        return mean if norms is None else mean / norms.detach().cpu().double()


_LENS_CACHE: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def unembedding(
    binding: Binding, *, cosine: bool = False, fold_norm: bool = True, device: Any = None
) -> Unembedding:
    """The effective unembedding of ``binding`` (see ``Unembedding``). Cached per LM head,
    final norm, options and weight versions: an in-place edit of either is seen."""
    head = binding.layout.part(binding.model._module, "unembed")  # modules hash by identity
    norm = binding.final_norm()
    versions = tuple((p.data_ptr(), p._version) for p in (*head.parameters(), *norm.parameters()))
    key = (bool(cosine), bool(fold_norm), str(device), id(norm), versions)
    cache = _LENS_CACHE.setdefault(head, {})
    if key not in cache:
        cache.clear()  # one entry per head: the effective unembedding is as large as W_U
        cache[key] = _build_unembedding(binding, cosine=cosine, fold_norm=fold_norm, device=device)
    return cache[key]


def _build_unembedding(binding: Binding, *, cosine: bool, fold_norm: bool, device: Any) -> Unembedding:
    W_U = binding.unembedding().detach()
    device = torch.device(device) if device is not None else W_U.device
    W_U = W_U.to(device=device, dtype=torch.float32)
    gain, center = (None, False)
    if fold_norm:
        gain, center = norm_fold(binding.final_norm(), binding.d_model)
        gain = gain.to(device)
    inv_col_norm = None
    if cosine:
        inv_col_norm = 1.0 / _effective_column_norms(W_U, gain, center).clamp_min(1e-30)
    mean_column = _mean_column(W_U, inv_col_norm)
    return Unembedding(W_U, gain, center, inv_col_norm, mean_column)


def _mean_column(W_U: torch.Tensor, inv_col_norm: torch.Tensor | None) -> torch.Tensor:
    """Mean over the vocab of the (scaled) columns of ``W_U``, by one matrix-vector product
    (no copy of W_U); kept in float64 on the CPU (some accelerators have no float64)."""
    scale = inv_col_norm if inv_col_norm is not None else torch.ones(W_U.shape[1], device=W_U.device)
    return (W_U @ scale).cpu().double() / W_U.shape[1]


def _effective_column_norms(W_U: torch.Tensor, gain: torch.Tensor | None, center: bool) -> torch.Tensor:
    """Norms of the columns of ``C diag(g) W_U``, computed in vocab blocks (no copy of W_U)."""
    norms = torch.empty(W_U.shape[1], device=W_U.device)
    d = W_U.shape[0]
    step = max(1, CHUNK_BYTES // (4 * d))
    for start in range(0, W_U.shape[1], step):
        block = W_U[:, start : start + step]
        if gain is not None:
            block = block * gain[:, None]
        sq = block.square().sum(0)
        if center:
            sq = sq - block.sum(0).square() / d
        norms[start : start + step] = sq.clamp_min(0).sqrt()
    return norms


@torch.no_grad()
def norm_fold(norm: torch.nn.Module, d_model: int) -> tuple[torch.Tensor, bool]:
    """The final norm's elementwise gain ``g`` and whether it centres its input.

    Measured by calling the module, so every convention is handled without a
    table of classes: LayerNorm and Llama-style RMSNorm give ``g = weight``,
    Gemma's RMSNorm ``g = 1 + weight``, a norm without parameters ``g = 1``.
    A probe ``s`` of alternating signs (scaled so the norm's epsilon is
    negligible) gives ``g = (N(s) - N(-s)) / (2 s_hat)``, where ``s_hat`` is
    ``s`` normalised the way the norm does; a LayerNorm is recognised by
    mapping constant inputs to the same output (it removes the mean).
    """
    try:
        param = next(norm.parameters(), None)
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        device = param.device if param is not None else torch.device("cpu")
        if param is not None and param.is_meta:
            raise ValueError("the final norm's weights are not loaded (meta device)")
        scale = 64.0
        probe = torch.ones(d_model, dtype=torch.float64)
        probe[1::2] = -1
        ones = torch.ones(d_model, dtype=torch.float64)

        def run(x: torch.Tensor) -> torch.Tensor:
            return norm((x * scale).to(device=device, dtype=dtype)[None]).reshape(-1).double().cpu()

        up, down = run(probe), run(-probe)
        flat_up, flat_down = run(ones), run(-ones)
    except Exception as error:  # a custom norm we cannot call on a bare vector
        raise ValueError(
            f"cannot measure the final norm's gain ({type(norm).__name__}: {error}); "
            "pass fold_norm=False to use the raw unembedding"
        ) from error
    center = bool((flat_up - flat_down).abs().max() <= 1e-3 * up.abs().max().clamp_min(1e-12))
    centred = probe - probe.mean() if center else probe
    s_hat = centred / centred.square().mean().sqrt()
    gain = (up - down) / (2 * s_hat)
    if not torch.isfinite(gain).all():
        raise ValueError("the final norm's gain came out non-finite; pass fold_norm=False")
    return gain.float(), center


def auto_chunk(vocab_size: int, n: int, chunk_size: int | None) -> int:
    if chunk_size is None:
        chunk_size = max(8, min(1024, CHUNK_BYTES // (4 * max(1, vocab_size))))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(min(chunk_size, max(1, n)))


def worker_pool(workers: int | None = None) -> ThreadPoolExecutor:
    """Threads for the per-row work on the CPU (numpy releases the GIL): ``workers``, by
    default torch's thread count (at most 4)."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    return ThreadPoolExecutor(int(workers or min(4, torch.get_num_threads())))


@dataclass
class Chunk:
    """One chunk of features: their positions in the request, their logit weights (a view
    of a buffer that the next chunk overwrites) and their means over the vocabulary."""

    positions: slice
    weights: torch.Tensor  # rows x vocab, float32, on the compute device
    means: torch.Tensor  # rows, float64, on the CPU


Progress = Union[bool, Callable[[int, int], None]]


def stream(
    binding: Binding,
    spec: FeatureSpec,
    lens: Unembedding,
    chunk_size: int,
    *,
    progress: Progress = True,
    desc: str = "logit weights",
) -> Iterator[Chunk]:
    """Yield the features' logit weights chunk by chunk, all in one reused buffer: a fresh
    chunk-sized allocation costs page faults comparable to the statistics themselves.

    ``progress``: True (a tqdm bar when there is more than one chunk), False, or a callable
    ``progress(done, total)`` called after every chunk (no bar then).
    """
    from tqdm.auto import tqdm

    n = len(spec)
    report = progress if callable(progress) else None
    show = progress is True and n > chunk_size
    buffer = torch.empty(min(chunk_size, n), lens.vocab_size, device=lens.device)
    with torch.no_grad(), tqdm(total=n, desc=desc, unit="feature", disable=not show) as bar:
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            weights, means = lens.weights_and_means(spec.rows(binding, start, stop), out=buffer)
            yield Chunk(slice(start, stop), weights, means)
            bar.update(stop - start)
            if report is not None:
                report(stop, n)
