"""Explanations and tables in and out of an atlas: Neuronpedia-style JSON, CSV, parquet.

A Neuronpedia explanation export is a JSON list of objects such as
``{"modelId": "gpt2-small", "layer": "8-res-jb", "index": "123", "description": "...",
"explanationModelName": "gpt-4o-mini", "typeName": "oai_token-act-pair", "scores": [...]}``
(a ``{"explanations": [...]}`` wrapper is accepted too). Tables (CSV / parquet) need a
``feature`` (or ``index``) column and an ``explanation`` (or ``description`` / ``text``)
column; ``source`` and ``score`` are optional.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

TEXT_COLUMNS = ("explanation", "description", "text")
FEATURE_COLUMNS = ("feature", "index")


def _feature(value: Any, d_sae: int, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{where}: the feature index must be a whole number, got {value!r}")
    if not 0 <= int(value) < d_sae:
        raise ValueError(f"{where}: feature {int(value)} is out of range (this atlas has {d_sae} features)")
    return int(value)


def _score(value: Any) -> float | None:
    if isinstance(value, list):  # Neuronpedia: a list of score objects or numbers
        scores = [_score(v.get("value") if isinstance(v, Mapping) else v) for v in value]
        found = [v for v in scores if v is not None]
        return max(found) if found else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def explanation_rows(explanations: Any, source: str, d_sae: int) -> list[tuple]:
    """``(feature, text, source, score)`` rows from a dict, a DataFrame (a table, or
    ``sw.self_explain``'s frame) or a list of Neuronpedia records."""
    rows: list[tuple] = []
    if isinstance(explanations, Mapping):
        for f, text in explanations.items():
            if isinstance(text, str) and text.strip():
                rows.append((_feature(f, d_sae, "explanations"), text, source, None))
        return rows
    if isinstance(explanations, pd.DataFrame):
        frame = explanations
        if {"feature", "explanation", "chosen"} <= set(frame.columns):  # sw.self_explain's frame: its chosen rows
            chosen = frame[frame["chosen"].astype(bool)]
            for row in chosen.itertuples(index=False):
                score = _score(getattr(row, "composite", None))
                rows.append((_feature(int(row.feature), d_sae, "self_explain frame"), str(row.explanation),
                             "self-explanation", score))
            return rows
        fcol = next((c for c in FEATURE_COLUMNS if c in frame.columns), None)
        tcol = next((c for c in TEXT_COLUMNS if c in frame.columns), None)
        if fcol is None or tcol is None:
            raise ValueError(f"an explanations table needs a feature column ({FEATURE_COLUMNS}) and a text column "
                             f"({TEXT_COLUMNS}); it has {list(frame.columns)}")
        for i, row in enumerate(frame.to_dict("records")):
            text = row[tcol]
            if not isinstance(text, str) or not text.strip():
                continue
            src = row.get("source") if isinstance(row.get("source"), str) and row.get("source") else source
            rows.append((_feature(row[fcol], d_sae, f"row {i}"), text, src, _score(row.get("score"))))
        return rows
    if isinstance(explanations, list):
        for i, record in enumerate(explanations):
            if not isinstance(record, Mapping):
                raise ValueError(f"explanation record {i} is {type(record).__name__}, not an object")
            text = next((record[c] for c in TEXT_COLUMNS if isinstance(record.get(c), str)), None)
            index = next((record[c] for c in FEATURE_COLUMNS if c in record), None)
            if text is None or index is None:
                raise ValueError(f"explanation record {i} needs 'index' and 'description' (Neuronpedia) or "
                                 f"'feature' and 'explanation'; it has {sorted(record)}")
            model = record.get("explanationModelName") or record.get("source")
            kind = record.get("typeName")
            src = source if not model else f"neuronpedia:{model}" + (f" ({kind})" if kind else "")
            rows.append((_feature(index, d_sae, f"record {i}"), text, src, _score(record.get("scores",
                                                                                           record.get("score")))))
        return rows
    raise ValueError(f"explanations must be a dict, a DataFrame, a list of records or a file; got "
                     f"{type(explanations).__name__}")


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no file at {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise ValueError("reading .parquet needs pyarrow: pip install pyarrow") from None
    raise ValueError(f"{path}: a table is .csv or .parquet, not {suffix!r}")


def read_explanations(path: str | Path, source: str | None = None) -> Any:
    """A Neuronpedia JSON export (a list of records) or a CSV / parquet table."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error.msg} at line {error.lineno})") from None
        if isinstance(data, Mapping) and isinstance(data.get("explanations"), list):
            data = data["explanations"]
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of explanation records (Neuronpedia's export)")
        return data
    return read_table(path)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        try:
            frame.to_parquet(path, index=False)
        except ImportError:
            raise ValueError("writing .parquet needs pyarrow: pip install pyarrow") from None
    else:
        raise ValueError(f"{path}: write a table as .csv or .parquet, not {suffix!r}")
    return path


def write_explanations(atlas: Any, path: str | Path) -> Path:
    """The atlas's explanations and labels: Neuronpedia-style JSON (``.json``), or a table."""
    path = Path(path)
    frame = atlas.explanations()
    labels = [(f, text, "label", None, "") for f, text in atlas.labels().items()]
    if labels:
        frame = pd.concat([frame, pd.DataFrame(labels, columns=frame.columns)], ignore_index=True)
    if path.suffix.lower() == ".json":
        ident = atlas.info.get("identity", {})
        sae = ident.get("sae", {})
        layer = sae.get("neuronpedia_id") or f"{sae.get('layer')}-{sae.get('site')}"
        records = [{"modelId": ident.get("model"), "layer": layer, "index": str(int(r.feature)),
                    "description": r.text, "explanationModelName": r.source, "typeName": "saewidgets",
                    "scores": [] if r.score is None or (isinstance(r.score, float) and math.isnan(r.score))
                    else [float(r.score)]}
                   for r in frame.itertuples(index=False)]
        path.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
        return path
    return write_table(frame.rename(columns={"text": "explanation"}), path)
