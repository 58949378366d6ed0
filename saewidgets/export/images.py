"""Charts to PNG, SVG or PDF files, offline (vl-convert renders Vega-Lite without a browser or network)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .saved import Saved

FORMATS = ("png", "svg", "pdf")


def vega_lite_spec(chart: Any) -> dict:
    """The Vega-Lite spec of an altair chart, or ``chart`` itself if it already is a spec dict."""
    if isinstance(chart, dict):
        spec = chart
    elif hasattr(chart, "to_dict"):
        spec = chart.to_dict()
    else:
        raise ValueError(
            f"cannot export a {type(chart).__name__}: pass an altair chart or a Vega-Lite spec dict"
        )
    if not isinstance(spec, dict) or not ({"mark", "layer", "hconcat", "vconcat", "concat", "facet", "repeat"} & spec.keys()):
        raise ValueError("the spec has no mark/layer/concat/facet/repeat: it is not a Vega-Lite chart spec")
    return spec


# Characters XML forbids (C0 controls other than tab/newline/return, U+FFFE/U+FFFF, lone
# surrogates): tokenizers do produce them, and an SVG that holds one is not valid XML.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_safe(value: Any) -> Any:
    """``value`` (a spec) with every string's XML-forbidden characters written as ``\\xNN`` escapes."""
    if isinstance(value, str):
        return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256 else "\ufffd", value)
    if isinstance(value, dict):
        return {k: xml_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [xml_safe(v) for v in value]
    return value


def chart_bytes(chart: Any, fmt: str, *, scale: float = 2.0, ppi: float = 72) -> bytes:
    """``chart`` rendered as ``fmt`` ("png", "svg" or "pdf"); external data URLs are refused."""
    import vl_convert as vlc

    fmt = fmt.lower().lstrip(".")
    spec = xml_safe(vega_lite_spec(chart))
    offline: dict[str, Any] = {"allowed_base_urls": []}
    if fmt == "png":
        return vlc.vegalite_to_png(spec, scale=scale, ppi=ppi, **offline)
    if fmt == "svg":
        return vlc.vegalite_to_svg(spec, **offline).encode()
    if fmt == "pdf":
        return vlc.vegalite_to_pdf(spec, scale=scale, **offline)
    raise ValueError(f"unknown image format {fmt!r}: use one of {', '.join(FORMATS)}")


def chart_svg(chart: Any) -> str:
    """``chart`` as an SVG document string."""
    return chart_bytes(chart, "svg").decode()


def save_chart(chart: Any, path: str | Path, *, scale: float = 2.0, ppi: float = 72) -> Saved:
    """Write ``chart`` (altair chart or Vega-Lite dict) to ``path``; the suffix picks PNG, SVG or PDF.

    Rendering runs locally through vl-convert, with no network. ``scale`` multiplies the
    pixel size of PNG/PDF output (2 gives crisp images on high-density screens).
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path.name!r}: the file name must end in .png, .svg or .pdf to pick the format")
    data = chart_bytes(chart, fmt, scale=scale, ppi=ppi)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Saved(path, len(data))
