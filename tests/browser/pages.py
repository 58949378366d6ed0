"""Driving saved (kernel-less) explorer views in Chromium: a browser context cut off from the
network, page-error and CSP-violation tracking, the slider walked along the snapshot's grid, and
the rendered generation read back token by token (text and the log-probability in its tooltip)."""

from __future__ import annotations

import re
from typing import Any

# Recorded in every page before its own scripts run: blocked scripts, handlers and loads.
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample || ''}`));
"""


def offline_context(browser: Any, allow_origin: str | None = None, **options: Any):
    """A browser context that lets file:, data: and blob: through (and ``allow_origin``), aborts and
    records every other request, and records page errors of every page it opens.
    Returns (context, outside requests, page errors)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, **options)
    outside: list[str] = []
    errors: list[str] = []

    def route(r):
        url = r.request.url
        if url.startswith(("file:", "data:", "blob:")) or (allow_origin and url.startswith(allow_origin)):
            r.continue_()
        else:
            outside.append(url)
            r.abort()

    context.route("**/*", route)
    context.add_init_script(WATCH_CSP)
    context.on("page", lambda page: page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}")))
    return context, outside, errors


def rendered_side(root: Any, role: str) -> list[dict]:
    """The tokens of one generation column as shown: text and the log-probability in each tooltip."""
    spans = root.locator(f".sw-text[data-role={role}] .sw-tok")
    out = []
    for text, title in spans.evaluate_all("spans => spans.map(s => [s.textContent, s.getAttribute('title')])"):
        match = re.search(r"log p = (\S+)", title or "")
        out.append({"token": text, "logprob": float(match.group(1).replace("−", "-")) if match else None})
    return out


# js/src/explorer/visible.js: control and invisible format characters show as escapes (\x0c, \u202e)
CONTROLS = re.compile("[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def visible_text(text: str) -> str:
    """A token as the view shows it (Python's twin of visibleText)."""
    return CONTROLS.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def assert_side_matches(shown: list[dict], tokens: list[str], logprobs: list[float], where: str) -> None:
    """Each shown token is the snapshot's token at that position (control characters as escapes),
    with its float16 log-probability (shown to 3 significant digits)."""
    assert [s["token"] for s in shown] == [visible_text(t) for t in tokens], where
    for i, (s, expected) in enumerate(zip(shown, logprobs)):
        assert s["logprob"] is not None, f"{where}: token {i} shows no log-probability"
        assert abs(s["logprob"] - expected) <= 0.006 * abs(expected) + 1e-6, (where, i, s["logprob"], expected)


def walk_grid(page: Any, root: Any, scales: list[float], top: float, check: Any = None) -> None:
    """Move the explorer's slider to each grid scale through its number box (typed off the grid: the
    view must snap) and call ``check(index)`` there; then the range input to both ends (``-top`` and
    ``top``, the slider's range), where the view shows the nearest grid scale."""
    box = root.locator(".sw-steering .sw-scale-box").first
    for index, scale in enumerate(scales):
        box.fill(str(scale * 0.93 if scale else 0))
        box.press("Enter")
        page.wait_for_function(
            "([el, s]) => Number(el.value) === s", arg=[box.element_handle(), scale], timeout=5_000
        )
        if check is not None:
            check(index)
    slider = root.locator(".sw-steering .sw-slider").first
    for position, end in (("-100", -top), ("100", top)):
        index = min(range(len(scales)), key=lambda i: abs(scales[i] - end))
        slider.fill(position)
        slider.dispatch_event("change")
        page.wait_for_function(
            "([el, s]) => Number(el.value) === s", arg=[box.element_handle(), scales[index]], timeout=5_000
        )
        if check is not None:
            check(index)


def hover_tooltip(page: Any, marks: Any, wanted: str, limit: int = 60) -> str:
    """Hover ``marks`` (vega mark elements) one by one until vega-tooltip shows text containing
    ``wanted``; returns the tooltip element's text (its HTML is checked by the caller)."""
    tooltip = page.locator("#vg-tooltip-element")
    seen = []
    for i in range(min(marks.count(), limit)):
        mark = marks.nth(i)
        mark.scroll_into_view_if_needed()
        box = mark.bounding_box()
        if not box or (box["width"] < 1 and box["height"] < 1):
            continue
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        try:
            page.wait_for_function("() => { const t = document.querySelector('#vg-tooltip-element');"
                                   " return t && t.classList.contains('visible'); }", timeout=1_000)
        except Exception:
            continue
        text = tooltip.text_content() or ""
        seen.append(text)
        if wanted in text:
            return text
    raise AssertionError(f"no tooltip showed {wanted!r}; tooltips seen: {seen[:5]}")
