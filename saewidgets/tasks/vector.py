"""Task vectors: the mean residual entering a block at the separators of in-context prompts.

>>> prompts = sw.icl_prompts(pairs, shots=6, n=16)
>>> tv = sw.task_vector(model, prompts, layer=2)                     # every "->" (Kharlapenko)
>>> tv = sw.task_vector(model, prompts, layer=2, position="last")    # the query's "->" (Hendel et al.)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..core.direction import Direction
from ..core.model import load_model
from .prompts import SEPARATOR, as_prompts, encode_all
from .runs import check_batch_size, check_layer, progress_bar, separator_residuals

POSITIONS = ("separator", "last")


def check_position(position: Any) -> str:
    if position not in POSITIONS:
        raise ValueError(f"position must be 'separator' (the mean over every separator, Kharlapenko) or 'last' "
                         f"(the last separator of each prompt, Hendel et al.), got {position!r}")
    return position


def resolve_bos(prepend_bos: Any, sae: Any = None, vector: Any = None) -> bool:
    """``prepend_bos`` as given; None: the vector's (a task vector remembers how it was made),
    else the SAE's setting, else False (the engine's convention)."""
    if prepend_bos is not None:
        if not isinstance(prepend_bos, bool):
            raise ValueError(f"prepend_bos must be True, False or None (the SAE's setting), got {prepend_bos!r}")
        return prepend_bos
    if isinstance(vector, Direction) and isinstance(vector.provenance.get("prepend_bos"), bool):
        return vector.provenance["prepend_bos"]
    sae = getattr(sae, "sae", sae)
    if sae is not None:
        return bool(getattr(sae, "metadata", {}).get("prepend_bos", False))
    return False


def task_vector(model: Any, prompts: Any, layer: int, *, position: str = "separator", separator: str = SEPARATOR,
                prepend_bos: bool | None = None, batch_size: int = 32, progress: bool = False,
                remote: Any = False) -> Direction:
    """The task vector of ``prompts`` at ``layer``: the mean of resid_pre[layer] over their separators.

    ``prompts``: ``sw.icl_prompts(...)`` or raw text with ``x -> y`` lines. ``position="separator"``
    averages every separator of every prompt (the seed's way); ``"last"`` only each prompt's last
    one, its query's (Hendel et al.). ``prepend_bos`` (default False) starts each prompt with BOS.
    Returns an ``sw.Direction`` at resid_pre[layer] whose provenance records how it was made.
    """
    model = load_model(model)
    layer = check_layer(model, layer)
    vectors = task_vectors(model, prompts, [layer], position=position, separator=separator, prepend_bos=prepend_bos,
                           batch_size=batch_size, progress=progress, remote=remote)
    return vectors[layer]


def task_vectors(model: Any, prompts: Any, layers: Sequence[int], *, position: str = "separator",
                 separator: str = SEPARATOR, prepend_bos: bool | None = None, batch_size: int = 32,
                 progress: bool = False, remote: Any = False, reconstruct: dict[int, Any] | None = None,
                 ) -> dict[Any, Direction]:
    """Task vectors at several layers from ONE pass per batch: ``{layer: Direction}``; with
    ``reconstruct={layer: sae}`` also ``{("on_reconstruction", layer): Direction}``, the mean of
    the SAE's reconstructions of the same residuals (the task vector collected on reconstructions)."""
    model = load_model(model)
    position = check_position(position)
    batch_size = check_batch_size(batch_size)
    layers = [check_layer(model, layer) for layer in layers]
    bos = resolve_bos(prepend_bos)
    items = as_prompts(prompts, separator)
    encoded = encode_all(model.tokenizer, items, bos)
    reconstruct = dict(reconstruct or {})
    bar = progress_bar(len(encoded), "task vector", progress, "prompt")
    try:
        sums, count, stacks = separator_residuals(
            model, encoded, layers, position=position, stack_layers=sorted(reconstruct), batch_size=batch_size,
            remote=remote, progress=None if bar is None else bar.update)
    finally:
        if bar is not None:
            bar.close()
    made = {"method": "task_vector", "position": position, "prompts": len(items), "positions": count,
            "prepend_bos": bos, "shots": _shots(items)}
    out: dict[Any, Direction] = {}
    for layer in layers:
        out[layer] = Direction(sums[layer] / count, name=f"task vector @ resid_pre[{layer}]",
                               provenance={**made, "layer": layer}, layer=layer, site="resid_pre")
    for layer, sae in reconstruct.items():
        with torch.no_grad():
            recon = sae(stacks[layer].to(sae.W_enc.device, sae.W_enc.dtype)).float().cpu().mean(dim=0)
        out[("on_reconstruction", layer)] = Direction(
            recon, name=f"task vector on SAE reconstructions @ resid_pre[{layer}]",
            provenance={**made, "method": "task_vector_on_reconstruction", "layer": layer}, layer=layer,
            site="resid_pre")
    return out


def _shots(items: Sequence[Any]) -> int | None:
    counts = {item.n_shots for item in items if item.query is not None}
    return counts.pop() if len(counts) == 1 else None
