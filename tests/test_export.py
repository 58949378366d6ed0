"""Export: snapshots on a grid of scales, standalone HTML, chart images, offline nbconvert, notebooks."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import saewidgets as sw
from saewidgets.export import save_gallery  # offline_html (nbconvert: seconds to import) where used
from saewidgets.export.packing import Packer, unpack
from saewidgets.export.page import VIEW_MIMETYPE
from saewidgets.export.snapshot import symlog_grid
from hostile import CLASS, FIELDS, hostile, hostile_explorer, visible
from tiny_models import random_sae, tiny_model

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
NOTEBOOKS = REPO / "notebooks"
SWEEP = dict(scales=[0.0, 1.0, 2.0], max_new_tokens=3)  # a short self-explanation sweep
# a tag that would load something from another host (links in text are fine: they load nothing)
REMOTE = re.compile(r"""<(?:script|link|img|iframe|source|embed|object)\b[^>]*\b(?:src|href|data)\s*=\s*["']?(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def binding():
    model = tiny_model("gpt2")
    return sw.bind(model, random_sae(32, 64, layer=1))


@pytest.fixture(scope="module")
def explorer(binding):
    ex = sw.FeatureExplorer(binding, feature=3, prompt="The quick", max_new_tokens=6)
    ex.snapshot(features=[5], n_scales=5, self_explain=SWEEP, progress=False)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def plain_explorer(binding):
    """An explorer with no snapshot and no self-explanation (for checks made before any work)."""
    ex = sw.FeatureExplorer(binding, feature=3, prompt="The quick", max_new_tokens=2, auto_self_explain=False)
    yield ex
    ex.close()


def _scripts(html: str, kind: str) -> list[str]:
    return re.findall(rf'<script type="{re.escape(kind)}"[^>]*>(.*?)</script>', html, re.S)


# -- packing and grids ---------------------------------------------------------------------

def test_packed_arrays_round_trip_and_are_compact():
    packer = Packer()
    counts = list(range(0, 60_000, 1000))
    refs = {"counts": packer.add(counts, "u4"), "logprobs": packer.add([-0.5, -1.25, float("nan")], "f2")}
    data = packer.to_bytes()
    out = unpack(refs, data)
    assert out["counts"] == counts
    assert out["logprobs"][:2] == [-0.5, -1.25] and out["logprobs"][2] != out["logprobs"][2]
    assert len(data) == 4 * len(counts) + 8  # 3 float16 padded to 8 bytes
    again = packer.add(counts, "u4")
    assert again == refs["counts"] and len(packer.to_bytes()) == len(data)  # stored once
    small = packer.add([1, 2, 65535], "u2")
    assert unpack(small, packer.to_bytes()) == [1, 2, 65535]
    with pytest.raises(ValueError, match="do not fit"):
        packer.add([65536], "u2")
    with pytest.raises(ValueError, match="non-negative"):
        packer.add([-1], "u4")
    with pytest.raises(ValueError, match="unknown array code"):
        packer.add([1], "f8")


def test_symlog_grid_follows_the_slider():
    grid = symlog_grid({"max": 40.0, "linear": 0.4}, 7)
    assert grid[0] == -40 and grid[-1] == 40 and 0 in grid and len(grid) == 7
    assert grid == sorted(grid) and [-g for g in grid[::-1]] == grid
    with pytest.raises(ValueError, match="n_scales"):
        symlog_grid({"max": 1}, 1)


# -- snapshot ----------------------------------------------------------------------------

@pytest.mark.slow
def test_snapshot_holds_what_the_live_explorer_computes(explorer, binding):
    doc, data = explorer.precomputed, explorer.precomputed_data
    assert set(doc["items"]) == {"3", "5"}
    item = unpack(doc["items"]["5"], data)
    assert len(item["scales"]) == 5 and 0.0 in item["scales"] and len(item["steered"]) == 5
    assert set(item["histograms"]) == set(explorer.class_names)
    hist = item["histograms"][explorer.token_class]
    assert sum(sum(s["counts"]) for s in hist["series"]) == binding.vocab_size
    # feature_info is stored once per feature; every class's is rebuilt exactly
    from saewidgets.export.snapshot import ExplorerReader
    from saewidgets.export.standalone import class_info

    reader = ExplorerReader(explorer)
    for name in explorer.class_names:
        assert class_info(item, name) == json.loads(json.dumps(reader.feature_info(5, name)))
    # the current feature's grid holds the current scale, so the saved view keeps its text
    assert explorer.scale in doc["items"]["3"]["scales"]
    assert unpack(doc["baseline"], data)["tokens"] == explorer.generation["baseline"]["tokens"]
    # the self-explanation is sw.self_explain's chosen one, with every scale of its sweep
    sweep = sw.self_explain(binding, features=[5], progress=False, **SWEEP)
    assert item["self_explanation"]["explanation"] == sweep.attrs["chosen_explanation"]
    assert [row[0] for row in item["self_explanation"]["rows"]] == SWEEP["scales"]
    # every grid point equals a fresh live generation through sw.steer at that scale
    texts = set()
    for scale, side in zip(item["scales"], item["steered"]):
        result = sw.steer(binding, prompt="The quick", features={5: scale}, max_new_tokens=6)
        tokens = [explorer.session.token_string(t) for t in result.steered_ids]  # as the live view shows them
        assert side["tokens"] == tokens, scale
        assert side["logprobs"] == pytest.approx(result.steered_logprobs, abs=2e-2)  # float16
        texts.add("".join(tokens))
    assert len(texts) > 1  # the grid's rows differ, so a row shifted along the grid would show


@pytest.mark.slow
def test_snapshot_answers_the_live_slider_too(binding):
    ex = sw.FeatureExplorer(binding, feature=7, prompt="Hello", max_new_tokens=4, scale=1.3)
    try:
        summary = ex.snapshot(scales=[-2, 0, 2], self_explain=False, progress=False)
        assert summary.features == (7,) and summary.n_scales == 4 and summary.data_bytes > 0
        assert "precomputed 1 feature(s) x 4 scales" in str(summary)
        item = ex.precomputed["items"]["7"]
        assert item["scales"] == [-2.0, 0.0, 1.3, 2.0]  # the current scale joins the grid: the view keeps its text
        snap = unpack(item["steered"], ex.precomputed_data)
        assert ex.generation["steered"]["tokens"] == snap[2]["tokens"]
        ex.scale = 2.0
        ex.wait()
        assert ex.generation["steered"]["tokens"] == snap[-1]["tokens"]
        ex.clear_snapshot()
        assert ex.precomputed == {} and ex.precomputed_data == b""
    finally:
        ex.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(scales="big"), "scales must be a list"),
        (dict(scales=[1, float("nan")]), "finite numbers"),
        (dict(scales=[]), "scales is empty"),
        (dict(n_scales=1), "n_scales"),
        (dict(features=[64]), "64"),
        (dict(token_classes=["no such class"]), "unknown token class"),
        (dict(token_classes=3), "token_classes must be"),
        (dict(batch_size=0), "batch_size"),
        (dict(self_explain="yes"), "self_explain= takes"),
    ],
)
def test_snapshot_rejects_bad_input(plain_explorer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        plain_explorer.snapshot(progress=False, **kwargs)


# -- standalone HTML ------------------------------------------------------------------------

@pytest.mark.slow
def test_save_html_writes_one_offline_file(explorer, tmp_path):
    saved = explorer.save_html(tmp_path / "explorer.html")
    html = saved.path.read_text(encoding="utf-8")
    assert saved.bytes == saved.path.stat().st_size == sum(saved.parts.values())
    assert "MB" in str(saved) or "kB" in str(saved)
    assert not REMOTE.search(html), REMOTE.search(html)
    assert "connect-src 'none'" in html  # CSP: the page may not open connections
    # the widget's own bundle, inline and unchanged
    packed = re.search(r'data-encoding="gzip-base64" data-saewidgets-esm="[^"]+">(.*?)</script>', html, re.S)
    esm = gzip.decompress(base64.b64decode(packed.group(1))).decode("utf-8")
    assert esm == (REPO / "saewidgets" / "static" / "widget.js").read_text(encoding="utf-8")
    [view] = [json.loads(v) for v in _scripts(html, VIEW_MIMETYPE)]
    assert view["state"]["feature"] == 3 and "_esm" not in view["state"]
    buffers = {tuple(b["path"]): b for b in view["buffers"]}
    assert set(buffers) <= {("precomputed_data",), ("table_data",)}  # table_data: the atlas's table (none here)
    assert not base64.b64decode(buffers.get(("table_data",), {"data": ""})["data"])
    buffer = buffers[("precomputed_data",)]
    assert base64.b64decode(buffer["data"]) == explorer.precomputed_data
    # the packed arrays cost less than the same numbers as JSON
    as_json = len(json.dumps(unpack(explorer.precomputed, explorer.precomputed_data)))
    assert len(json.dumps(explorer.precomputed)) + len(buffer["data"]) < as_json


@pytest.mark.slow
def test_save_html_precomputes_missing_features_and_checks_the_path(explorer, tmp_path):
    explorer.save_html(tmp_path / "more.html", features=[5, 9], n_scales=3, self_explain=False, progress=False)
    assert set(explorer.precomputed["items"]) == {"3", "5", "9"}
    with pytest.raises(ValueError, match="ending in .html"):
        explorer.save_html(tmp_path / "explorer.txt")


@pytest.mark.slow
def test_gallery_has_one_self_contained_view_per_feature(explorer, tmp_path):
    saved = save_gallery(explorer, [3, 5], tmp_path / "gallery.html", progress=False)
    html = saved.path.read_text(encoding="utf-8")
    views = [json.loads(v) for v in _scripts(html, VIEW_MIMETYPE)]
    assert [v["state"]["feature"] for v in views] == [3, 5]
    for view in views:
        assert list(view["state"]["precomputed"]["items"]) == [str(view["state"]["feature"])]
        assert view["state"]["generation"]["steered"]["tokens"]
    assert html.count(' data-saewidgets-esm="') == 1  # the module once, not per view
    assert "Feature 5" in html
    with pytest.raises(ValueError, match="features"):
        save_gallery(explorer, None, tmp_path / "g.html")


# -- images --------------------------------------------------------------------------------

@pytest.mark.slow
def test_charts_export_to_png_and_svg_offline(explorer, tmp_path, no_network):
    png = explorer.save_chart(tmp_path / "hist.png")
    svg = explorer.save_chart(tmp_path / "hist.svg")
    assert png.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.bytes > 1000
    text = svg.path.read_text()
    assert text.lstrip().startswith("<svg") and "logit weight" in text
    # one spec: the image renders the live view's spec (the trait's), with data and a light theme
    spec = explorer.chart_spec("histogram")
    live = {k: v for k, v in explorer.histogram["spec"].items() if k not in ("width", "height")}
    assert {k: spec[k] for k in live} == live
    assert spec["datasets"]["bins"] and spec["encoding"]["y"]["title"] == "tokens (square-root scale)"
    alt_chart = sw.export.save_chart(spec, tmp_path / "spec.svg")
    assert alt_chart.bytes > 1000
    sweep = sw.self_explain(explorer.binding, features=[explorer.feature], progress=False, **SWEEP)
    metrics = explorer.save_chart(tmp_path / "self_explanation.svg", "self_explanation", sweep=sweep)
    assert "self-similarity" in metrics.path.read_text()
    with pytest.raises(ValueError, match="no rows for feature"):
        explorer.save_chart(tmp_path / "x.svg", "self_explanation", sweep=sweep[sweep["feature"] == -1])
    # tokenizers produce control characters, which XML (so SVG, so PNG through it) forbids
    spec = {"data": {"values": [{"x": 1, "token": "a\x11b"}]}, "mark": "bar",
            "encoding": {"x": {"field": "x", "type": "quantitative"}, "tooltip": [{"field": "token"}]}}
    assert sw.export.save_chart(spec, tmp_path / "control.png").bytes > 1000
    with pytest.raises(ValueError, match=".png, .svg or .pdf"):
        explorer.save_chart(tmp_path / "hist.gif")
    with pytest.raises(ValueError, match="unknown chart"):
        explorer.save_chart(tmp_path / "x.png", chart="pie")
    with pytest.raises(ValueError, match="not a Vega-Lite chart"):
        sw.export.save_chart({"data": {}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="histogram is empty"):
        type(explorer).chart_spec(type("Empty", (), {"histogram": {}})(), "histogram")


# -- hostile text: nothing breaks out of the page's script elements or the static picture ------------

class Parsed(HTMLParser):
    """A page as the HTML parser reads it: start tags with attributes, script bodies, text, comments."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self.text: list[str] = []
        self.comments: list[str] = []
        self._script: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = []

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self.tags[-1][1] if self.tags[-1][0] == "script" else {}, "".join(self._script)))
            self._script = None

    def handle_data(self, data):
        (self._script if self._script is not None else self.text).append(data)

    def handle_comment(self, data):
        self.comments.append(data)


PAYLOADS = [hostile(field) for field in FIELDS] + ["</SCRIPT >", "<!--", "-->", "\u2028", "\u2029", "a & b", "</style>"]


def test_inline_json_keeps_script_text_inert():
    """Inside ``<script>``, JSON may hold no ``<``, ``>`` or ``&`` (``</script>``, ``<!--`` and
    ``-->`` change how HTML parses a script) and no U+2028 / U+2029; it decodes to the same value."""
    from saewidgets.export.page import inline_json, view_block

    for payload in PAYLOADS:
        value = {"text": payload, "tokens": [payload, payload.upper()]}
        text = inline_json(value)
        assert not set(text) & set("<>&\u2028\u2029"), text
        assert json.loads(text) == value
        page = Parsed(view_block({"state": value}))
        assert [tag for tag, _ in page.tags] == ["script"] and page.comments == []
        assert json.loads(page.scripts[0][1]) == {"state": value}


def _minimal_view(name: str) -> dict:
    return {"model_id": name, "state": {"_anywidget_id": "tests.Minimal", "_esm": "export default {};",
                                        "_css": ".x { color: red }", "label": hostile("label")}, "buffers": []}


def test_standalone_page_escapes_its_title_subtitle_and_headings():
    from saewidgets.export.page import standalone_page

    views = [_minimal_view("a"), _minimal_view("b")]
    headings = [hostile("heading") + " 1", hostile("heading") + " 2"]
    page = Parsed(standalone_page(views, title=hostile("page-title"), subtitle=hostile("subtitle"), headings=headings))
    assert len(page.scripts) == 2 + 3 and page.comments == []  # two views, one module, its styles, bootstrap
    assert {tag for tag, _ in page.tags} <= PAGE_TAGS
    text = "".join(page.text)
    assert text.count(hostile("page-title")) == 2 and hostile("subtitle") in text
    assert text.count(headings[0]) == 2 and text.count(headings[1]) == 2  # section heading and table of contents
    labels = [json.loads(body)["state"]["label"] for attrs, body in page.scripts if attrs.get("type") == VIEW_MIMETYPE]
    assert labels == [hostile("label")] * 2


def test_static_picture_of_a_hostile_state():
    """Every string field of the script-free picture, from a state dict (no model needed)."""
    from saewidgets.export.static_view import static_explorer_html

    info = {"feature": 7, "explanation": hostile("explanation"), "stats": {hostile("stat"): 1.5},
            "top_positive": [[hostile("top-token"), 2.0]], "top_negative": [[hostile("bottom-token"), -2.0]]}
    generation = {"prompt": hostile("prompt"), "features": [[7, 2.0]],
                  "baseline": {"tokens": [hostile("baseline-token")]}, "steered": {"tokens": [hostile("token")]}}
    state = {"title": hostile("title"), "feature": 7, "feature_info": info, "histogram": {}, "generation": generation,
             "self_explanation": {"explanation": hostile("self-explanation")}, "precomputed": {}}
    page = Parsed(static_explorer_html(state, note=hostile("note")))
    assert {tag for tag, _ in page.tags} <= STATIC_TAGS and page.comments == [] and page.scripts == []
    assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
    text = "".join(page.text)
    for field in ("title", "explanation", "stat", "baseline-token", "token", "self-explanation", "note"):
        assert hostile(field) in text, field
    assert text.count(hostile("prompt")) == 2
    for field in ("top-token", "bottom-token"):
        assert visible(hostile(field)) in text
        assert repr(hostile(field)) in [attrs.get("title") for _, attrs in page.tags]


@pytest.fixture(scope="module")
def hostile_ex(binding):
    ex = hostile_explorer(binding)
    yield ex
    ex.close()


PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "p", "section", "h2", "nav", "a",
             "script"}


@pytest.mark.slow
def test_hostile_text_stays_inside_the_pages_json(hostile_ex, tmp_path):
    """Every field's payload (``</script>``, ``<!--``, ``-->``, U+2028) is written as JSON escapes:
    the page keeps its script elements (views + module + styles + bootstrap), no tag or comment
    comes from model text, and each field decodes back to exactly what was saved."""
    single = hostile_ex.save_html(tmp_path / "one.html", title=hostile("page-title"))
    gallery = save_gallery(hostile_ex, [3, 5], tmp_path / "gallery.html", title=hostile("page-title"))
    for saved, n_views in ((single, 1), (gallery, 2)):
        page = Parsed(saved.path.read_text(encoding="utf-8"))
        kinds = [attrs.get("type") for attrs, _ in page.scripts]
        assert kinds.count(VIEW_MIMETYPE) == n_views and len(page.scripts) == n_views + 3, kinds
        assert sum(tag == "script" for tag, _ in page.tags) == n_views + 3
        assert {tag for tag, _ in page.tags} <= PAGE_TAGS and page.comments == []
        assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
        assert "".join(page.text).count(hostile("page-title")) == 2  # <title> and <h1>, as text
        for attrs, body in page.scripts:
            if attrs.get("type") in (VIEW_MIMETYPE, "application/json"):
                assert not set(body) & set("<>&\u2028\u2029"), body[:200]
        views = [json.loads(body) for attrs, body in page.scripts if attrs.get("type") == VIEW_MIMETYPE]
        for view in views:
            state = view["state"]
            assert state["prompt"] == hostile("prompt") and state["title"] == hostile("title")
            assert state["class_names"][0] == CLASS and state["token_class"] == CLASS
            assert state["feature_info"]["explanation"] == hostile("explanation")
            assert state["feature_info"]["top_positive"][0][0] == hostile("top-token")
            assert state["feature_info"]["top_negative"][0][0] == hostile("bottom-token")
            assert state["generation"]["steered"]["tokens"][0] == hostile("token")
            assert state["generation"]["baseline"]["tokens"][0] == hostile("baseline-token")
            assert state["rankings"]["skew"][0][2] == hostile("label")
            assert state["precomputed"]["inputs"]["prompt"] == hostile("prompt")
            for item in state["precomputed"]["items"].values():
                assert item["self_explanation"]["explanation"].startswith(hostile("self-explanation"))
                assert all(row[1].startswith(hostile("self-explanation")) for row in item["self_explanation"]["rows"])
                assert all(s["tokens"][0] == hostile("token") for s in item["steered"])
        headings = [text for text in page.text if text.startswith("Feature ")]
        assert n_views == 1 or headings == [f"Feature {f} · {hostile('explanation')}" for f in (3, 5)] * 2


STATIC_TAGS = {"div", "span", "strong", "p", "img", "table", "caption", "tr", "td", "code"}


@pytest.mark.slow
def test_static_picture_escapes_every_field(hostile_ex):
    """The script-free picture (``text/html`` beside the widget): every field's payload shows as
    text and makes no tag, attribute or comment; the only image is the chart, as a data: URL."""
    data, _ = hostile_ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    from saewidgets.export.static_view import static_explorer_html

    state = {**hostile_ex._static_state(), "self_explanation": {"explanation": hostile("self-explanation")}}
    for html in (data["text/html"], static_explorer_html(state, note=hostile("note"))):
        page = Parsed(html)
        assert {tag for tag, _ in page.tags} <= STATIC_TAGS and page.comments == [] and page.scripts == []
        [img] = [attrs for tag, attrs in page.tags if tag == "img"]
        assert img["src"].startswith("data:image/svg+xml;base64,") and img["alt"] == "logit weight histogram"
        assert not [a for _, attrs in page.tags for a in attrs if a.startswith("on")]
        text = "".join(page.text)
        for field in ("title", "explanation", "prompt", "token", "baseline-token"):
            assert hostile(field) in text, field
        assert text.count(hostile("prompt")) == 2  # baseline and steered columns
        assert f"enrichment: {CLASS}" in text  # the statistic's name holds the class name
        for field in ("top-token", "bottom-token"):  # spaces made visible, the exact token in the tooltip
            assert visible(hostile(field)) in text, field
            assert repr(hostile(field)) in [attrs.get("title") for _, attrs in page.tags]
    assert hostile("self-explanation") in text and hostile("note") in text
    assert "Feature 3" in text


# -- notebooks ------------------------------------------------------------------------------

def _run(nb, cwd: Path, monkeypatch) -> None:
    from nbclient import NotebookClient

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), str(TESTS), os.environ.get("PYTHONPATH", "")]))
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()


def _substituted(name: str, load: str, parameters: str):
    import nbformat

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    tags = {tag for cell in nb.cells for tag in cell.get("metadata", {}).get("tags", [])}
    assert {"load", "parameters"} <= tags, f"{name} needs cells tagged 'load' and 'parameters'"
    for cell in nb.cells:
        cell_tags = cell.get("metadata", {}).get("tags", [])
        if "load" in cell_tags:
            cell.source = load
        elif "parameters" in cell_tags:
            cell.source = parameters
    return nb


TINY_GEMMA = """import saewidgets as sw
from tiny_models import tiny_model, random_sae
model = tiny_model("gemma2")
sae = random_sae(32, 64, layer=1, site="resid_post")"""

PARAMETERS = """FEATURE = 3
FEATURES = [3, 5]
PROMPT = "The quick"
MAX_NEW_TOKENS = 5
N_SCALES = 3
OUT = "exported" """


@pytest.mark.slow
def test_gemma_notebook_runs_end_to_end_on_a_substituted_model(tmp_path, monkeypatch):
    """The Gemma Scope notebook's cells, with a tiny Gemma-2 and a resid_post SAE in place of the
    downloads (tests/browser/test_offline_views.py runs the GPT-2 notebook the same way)."""
    import nbformat

    nb = _substituted("gemma2_2b_gemma_scope.ipynb", TINY_GEMMA, PARAMETERS)
    _run(nb, tmp_path, monkeypatch)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    written = sorted(p.name for p in (tmp_path / "exported").iterdir())
    assert {"feature_3.html", "gallery.html", "feature_3_histogram.png", "feature_3_histogram.svg",
            "feature_3_self_explanation.png"} <= set(written)
    saved = tmp_path / "saved.ipynb"
    nbformat.write(nb, saved)
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {})
    from saewidgets.export import offline_html

    html = offline_html(saved)
    assert html.count(f'<script type="{VIEW_MIMETYPE}">') == 3  # the explorer, displayed twice, and the chart
    assert html.count('"_kind":"chart"') + html.count('"_kind": "chart"') >= 1
    assert not REMOTE.search(html), REMOTE.search(html)
    # progress bars show as text; no widget state is left for a CDN loader to render
    assert "application/vnd.jupyter.widget-state+json" not in html and "unpkg.com" not in html


@pytest.mark.slow  # imports nbconvert: seconds
def test_offline_html_command_line(tmp_path, monkeypatch, capsys):
    """``python -m saewidgets.export`` (run in-process through runpy: the same entry point)."""
    import runpy

    from saewidgets.export import offline_html

    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# nothing to convert but text, $x^2$")]
    path = tmp_path / "plain.ipynb"
    nbformat.write(nb, path)

    def run(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["saewidgets.export", *args])
        with pytest.raises(SystemExit) as done:
            runpy.run_module("saewidgets.export", run_name="__main__")
        return done.value.code

    assert run(str(path)) == 0
    assert "wrote" in capsys.readouterr().out
    html = (tmp_path / "plain.html").read_text()
    assert "nothing to convert" in html and not REMOTE.search(html)
    assert run(str(tmp_path / "nope.ipynb")) == 2
    assert "no notebook at" in capsys.readouterr().err
    with pytest.raises(ValueError, match="other_widgets"):
        offline_html(path, other_widgets="cdn")
