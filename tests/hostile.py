"""Hostile text for the export and browser security tests, and an explorer that carries it in every
field that reaches a page: prompt, generated tokens, top tokens, explanations, self-explanations
(rows, best list, chart tooltips), ranking labels, token-class names and titles.

Each field gets its own payload (``hostile("prompt")``, ...) so a test can say which field leaked.
A payload closes a ``<script>`` element, opens an HTML comment and a new script (the "script data
escaped" states of the HTML parser), carries the JavaScript line terminators U+2028 / U+2029, an
``<img onerror>`` and an entity (``&lt;b&gt;``, which must show as those six characters, not as
``<b>``). Run on a page, any of them sets ``window.__pwned``.
"""

from __future__ import annotations

import copy
from typing import Any

import saewidgets as sw


def hostile(field: str) -> str:
    """The payload planted in ``field`` (short: a prompt must fit a 128-token context)."""
    return (f"</script><script>__pwned='{field}'</script><!--<script>-->\u2028\u2029"
            f"<img src=x onerror=__pwned='{field}'>&lt;b&gt;{field}")


def visible(token: str) -> str:
    """A token as the top-tokens table shows it (js/src/dom.js ``visibleToken``)."""
    return token.replace(" ", "·").replace("\n", "↵").replace("\t", "→")


FIELDS = ("prompt", "token", "baseline-token", "top-token", "bottom-token", "explanation", "self-explanation",
          "label", "class", "title", "page-title")
CLASS = hostile("class")


def hostile_explorer(binding: Any, feature: int = 3, other: int = 5, max_new_tokens: int = 4) -> Any:
    """A FeatureExplorer whose every text field (and snapshot of ``feature`` and ``other`` on 4 scales)
    holds its field's payload: the user-given ones through the API (prompt, class name,
    explanations, a self-explanation sweep), the model-given ones planted in its traits."""
    words = [binding.tokenizer.decode([i]) for i in range(40, 80)]
    ex = sw.FeatureExplorer(binding, feature=feature, prompt=hostile("prompt"), max_new_tokens=max_new_tokens,
                            classes={CLASS: words}, explanations={feature: hostile("explanation"),
                                                                   other: hostile("explanation")},
                            auto_self_explain=False)
    assert ex.token_class == CLASS
    sweep = sw.self_explain(binding, features=[feature, other], scales=[0.0, 1.0, 2.0], max_new_tokens=3,
                            progress=False)
    sweep["explanation"] = [hostile("self-explanation") + f" {i}" for i in range(len(sweep))]
    sweep["default_answer"] = False
    ex.snapshot(features=[other], scales=[-4.0, 0.0, 2.0, 8.0], self_explain=sweep, progress=False)
    plant(ex)
    return ex


def plant(ex: Any) -> None:
    """Model-side payloads in the explorer's traits and snapshot: a generated token (steered and
    baseline), the top promoted and suppressed tokens, the ranking labels, the title."""
    doc = copy.deepcopy(ex.precomputed)
    doc["baseline"]["tokens"][0] = hostile("baseline-token")
    for item in doc["items"].values():
        for side in item["steered"]:
            side["tokens"][0] = hostile("token")
        for info in [item["info"], *(item.get("infos") or {}).values()]:
            _plant_info(info)
    ex.precomputed = doc
    info = copy.deepcopy(ex.feature_info)
    _plant_info(info)
    ex.feature_info = info
    generation = copy.deepcopy(ex.generation)
    generation["baseline"]["tokens"][0] = hostile("baseline-token")
    generation["steered"]["tokens"][0] = hostile("token")
    ex.generation = generation
    ex.rankings = {name: [[f, v, hostile("label")] for f, v, _ in rows] for name, rows in ex.rankings.items()}
    ex.title = hostile("title")


def _plant_info(info: dict) -> None:
    info["top_positive"][0][0] = hostile("top-token")
    info["top_negative"][0][0] = hostile("bottom-token")
