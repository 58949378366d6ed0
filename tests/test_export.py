"""Export: snapshots on a grid of scales, standalone HTML, chart images, offline nbconvert, notebooks."""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import sys
from pathlib import Path

import pytest

import saewidgets as sw
from saewidgets.export import offline_html, save_gallery
from saewidgets.export.packing import Packer, unpack
from saewidgets.export.page import VIEW_MIMETYPE
from saewidgets.export.snapshot import symlog_grid
from tiny_models import random_sae, tiny_model

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
NOTEBOOKS = REPO / "notebooks"
PAYLOAD = "<img src=x onerror=window.__pwned=1>"
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
    # a grid point equals a fresh live generation through sw.steer
    scale = item["scales"][-1]
    result = sw.steer(binding, prompt="The quick", features={5: scale}, max_new_tokens=6)
    tokens = [binding.tokenizer.decode([t], clean_up_tokenization_spaces=False) for t in result.steered_ids]
    assert item["steered"][-1]["tokens"] == tokens
    assert item["steered"][-1]["logprobs"] == pytest.approx(result.steered_logprobs, abs=2e-2)  # float16


def test_snapshot_answers_the_live_slider_too(binding):
    ex = sw.FeatureExplorer(binding, feature=7, prompt="Hello", max_new_tokens=4)
    try:
        summary = ex.snapshot(scales=[-2, 0, 2], self_explain=False, progress=False)
        assert summary.features == (7,) and summary.n_scales == 3 and summary.data_bytes > 0
        assert "precomputed 1 feature(s) x 3 scales" in str(summary)
        ex.scale = 2.0
        ex.wait()
        snap = unpack(ex.precomputed["items"]["7"]["steered"], ex.precomputed_data)
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
def test_snapshot_rejects_bad_input(explorer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        explorer.snapshot(progress=False, **kwargs)


# -- standalone HTML ------------------------------------------------------------------------

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
    [buffer] = view["buffers"]
    assert buffer["path"] == ["precomputed_data"]
    assert base64.b64decode(buffer["data"]) == explorer.precomputed_data
    # the packed arrays cost less than the same numbers as JSON
    as_json = len(json.dumps(unpack(explorer.precomputed, explorer.precomputed_data)))
    assert len(json.dumps(explorer.precomputed)) + len(buffer["data"]) < as_json


def test_save_html_precomputes_missing_features_and_checks_the_path(explorer, tmp_path):
    explorer.save_html(tmp_path / "more.html", features=[5, 9], n_scales=3, self_explain=False, progress=False)
    assert set(explorer.precomputed["items"]) == {"3", "5", "9"}
    with pytest.raises(ValueError, match="ending in .html"):
        explorer.save_html(tmp_path / "explorer.txt")


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


# -- the script-free fallback ------------------------------------------------------------------

def test_mimebundle_carries_an_escaped_static_picture(binding):
    ex = sw.FeatureExplorer(binding, feature=2, prompt="The quick", max_new_tokens=3)
    try:
        info = dict(ex.feature_info)
        info["top_positive"] = [[PAYLOAD, 1.0], *info["top_positive"][1:]]
        ex.feature_info = info
        ex.generation = {**ex.generation, "steered": {"tokens": [PAYLOAD], "logprobs": [-1.0]}}
        data, _ = ex._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in data
        html = data["text/html"]
        assert "<script" not in html and "<img src=x" not in html
        assert "&lt;img src=x onerror=window.__pwned=1&gt;" in html  # the continuation, as text
        assert "&lt;img·src=x·onerror=window.__pwned=1&gt;" in html  # the token, spaces made visible
        assert '<img src="data:image/svg+xml;base64,' in html and "Feature 2" in html
    finally:
        ex.close()


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
    html = offline_html(saved)
    assert html.count(f'<script type="{VIEW_MIMETYPE}">') == 2  # the explorer, displayed twice
    assert not REMOTE.search(html), REMOTE.search(html)
    # progress bars show as text; no widget state is left for a CDN loader to render
    assert "application/vnd.jupyter.widget-state+json" not in html and "unpkg.com" not in html


def test_offline_html_command_line(tmp_path, monkeypatch, capsys):
    """``python -m saewidgets.export`` (run in-process through runpy: the same entry point)."""
    import runpy

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
