"""Self-contained HTML for saved widget views: module source, styles and state inline; no network.

Everything a view needs sits in the page as inert JSON script elements plus one small
bootstrap script (``assets/bootstrap.js``) that renders each view with the widget's
own front-end module, imported from a ``blob:`` URL.
"""

from __future__ import annotations

import base64
import gzip
import html
import json
import secrets
from functools import lru_cache
from importlib.resources import files
from typing import Any, Iterable, Mapping

from .state import anywidget_id, without_esm

VIEW_MIMETYPE = "application/vnd.saewidgets.view+json"

# A standalone page may run inline scripts carrying its nonce and modules from blob: URLs;
# it may not load or send anything: no network, whatever the widget code tries.
CSP = (
    "default-src 'none'; script-src 'nonce-{nonce}' blob: 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; form-action 'none'; base-uri 'none'"
)


def inline_json(value: Any) -> str:
    """JSON safe to place inside a ``<script>`` element (no ``<``, ``>``, ``&`` or line separators)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


@lru_cache(maxsize=1)
def bootstrap_js() -> str:
    return files("saewidgets.export").joinpath("assets/bootstrap.js").read_text(encoding="utf-8")


def view_block(view: Mapping) -> str:
    """The inert element that marks where a view renders (its state minus module source)."""
    return f'<script type="{VIEW_MIMETYPE}">{inline_json(without_esm(view))}</script>'


def _module_block(wid: str, source: str, compress: bool) -> str:
    attr = f'data-saewidgets-esm="{html.escape(wid)}"'
    if not compress:
        return f'<script type="application/json" {attr}>{inline_json(source)}</script>'
    packed = base64.b64encode(gzip.compress(source.encode("utf-8"), compresslevel=9, mtime=0)).decode("ascii")
    return f'<script type="application/octet-stream" data-encoding="gzip-base64" {attr}>{packed}</script>'


def module_blocks(views: Iterable[Mapping], compress: bool = True) -> str:
    """One inline copy of each distinct widget module (and its CSS) used by ``views``; the module
    gzip-compressed (the page inflates it with the browser's DecompressionStream) unless ``compress``
    is False."""
    seen: dict[str, Mapping] = {}
    for view in views:
        seen.setdefault(anywidget_id(view), view)
    blocks = []
    for wid, view in seen.items():
        state = view.get("state", {})
        if not state.get("_esm"):
            raise ValueError(f"the saved state of {wid or 'a widget'} has no _esm module source to inline")
        blocks.append(_module_block(wid, state["_esm"], compress))
        if state.get("_css"):
            css = inline_json(state["_css"])
            blocks.append(f'<script type="application/json" data-saewidgets-css="{html.escape(wid)}">{css}</script>')
    return "\n".join(blocks)


def bootstrap_block(nonce: str | None = None) -> str:
    attr = f' nonce="{nonce}"' if nonce else ""
    source = bootstrap_js()
    if "</script" in source.lower() or "<!--" in source:
        raise AssertionError("bootstrap.js must not contain '</script' or '<!--' (it is inlined in a script element)")
    return f"<script{attr}>\n{source}</script>"


PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5rem auto; max-width: 1100px;
       padding: 0 1rem; color: #1f2328; background: #fff; }
header.saewidgets-page { margin-bottom: 1rem; }
header.saewidgets-page h1 { font-size: 1.3rem; margin: 0 0 .25rem; }
header.saewidgets-page p { margin: 0; color: #59636e; font-size: .85rem; }
section.saewidgets-section { margin: 1.5rem 0 2.5rem; }
section.saewidgets-section > h2 { font-size: 1.05rem; border-bottom: 1px solid #d1d9e0; padding-bottom: .3rem; }
nav.saewidgets-toc a { margin-right: .8rem; }
"""


def standalone_page(views: list[Mapping], *, title: str, subtitle: str = "", headings: list[str] | None = None) -> str:
    """A complete HTML document rendering ``views`` offline, with a no-network CSP."""
    if not views:
        raise ValueError("nothing to save: no widget views were given")
    nonce = secrets.token_urlsafe(16)
    sections = []
    for i, view in enumerate(views):
        heading = f"<h2 id=\"view-{i}\">{html.escape(headings[i])}</h2>" if headings else ""
        sections.append(f'<section class="saewidgets-section">{heading}\n{view_block(view)}\n</section>')
    toc = ""
    if headings and len(headings) > 1:
        links = " ".join(f'<a href="#view-{i}">{html.escape(h)}</a>' for i, h in enumerate(headings))
        toc = f'<nav class="saewidgets-toc">{links}</nav>'
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP.format(nonce=nonce)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{PAGE_STYLE}</style>",
        "</head><body>",
        f'<header class="saewidgets-page"><h1>{html.escape(title)}</h1>'
        + (f"<p>{html.escape(subtitle)}</p>" if subtitle else "") + "</header>",
        toc,
        *sections,
        module_blocks(views),
        bootstrap_block(nonce),
        "</body></html>",
    ])
