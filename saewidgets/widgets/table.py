"""``FeatureTable``: every feature of an atlas in one sortable, filterable table (smooth at 65k rows).

The columns travel packed as binary (``saewidgets.export.packing``), the view draws only the
rows in sight. Picking a row sets ``feature``; link it to an explorer with
``traitlets.link((table, "feature"), (explorer, "feature"))``, or use the table inside
``sw.FeatureExplorer(..., atlas=...)`` ("All features").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from ..atlas import Atlas
from ..export.packing import Packer

STATIC = Path(__file__).resolve().parents[1] / "static"
NUMERIC = (("frequency", "f4"), ("max_act", "f4"), ("mean_act", "f4"), ("std", "f4"), ("skew", "f4"),
           ("kurtosis", "f4"))


def table_payload(atlas: Atlas) -> tuple[dict, bytes]:
    """(JSON with packed column references, the packed bytes) for ``atlas.stats()``."""
    stats = atlas.stats()
    packer = Packer()
    columns = {"feature": packer.add(stats["feature"].to_numpy(np.int64), "u4")}
    for name, code in NUMERIC:
        values = stats[name].to_numpy(dtype=float, na_value=np.nan)
        columns[name] = packer.add(values, code)
    kinds = sorted({str(k) for k in stats["kind"].dropna()} | {""})
    kind_codes = [kinds.index(str(k)) if isinstance(k, str) else 0 for k in stats["kind"]]
    columns["kind"] = packer.add(kind_codes, "u2")
    labels = {str(int(f)): str(text) for f, text in zip(stats["feature"], stats["label"]) if text}
    explanations = {str(int(f)): str(text)[:200] for f, text in zip(stats["feature"], stats["explanation"]) if text}
    document = {"n": int(len(stats)), "columns": columns, "kinds": kinds, "labels": labels,
                "explanations": explanations, "n_tokens": atlas.n_tokens, "atlas": atlas.path.name}
    return document, packer.to_bytes()


class FeatureTable(anywidget.AnyWidget):
    """All features of an ``sw.Atlas`` (or its path): frequency, max / mean activation, logit-lens
    statistics and kind, label; click a column to sort, type to filter (label, explanation, kind,
    ``#index``, ``freq>0.01``, ``max<2``). ``feature`` is the picked row.

    >>> table = sw.FeatureTable("features.sqlite"); table
    >>> traitlets.link((table, "feature"), (explorer, "feature"))
    """

    _esm = STATIC / "widget.js" if (STATIC / "widget.js").is_file() else ""
    _css = STATIC / "widget.css" if (STATIC / "widget.css").is_file() else ""
    _kind = t.Unicode("table").tag(sync=True)
    feature = t.Int(-1).tag(sync=True)
    table = t.Dict().tag(sync=True)
    table_data = t.Bytes(b"").tag(sync=True)

    def __init__(self, atlas: Any, **kwargs: Any) -> None:
        self.atlas = Atlas.open(atlas)
        document, data = table_payload(self.atlas)
        super().__init__(table=document, table_data=data, **kwargs)

    def refresh(self) -> None:
        """Read the atlas again (labels set elsewhere, explanations added)."""
        document, data = table_payload(self.atlas)
        with self.hold_sync():
            self.table_data = data
            self.table = document
