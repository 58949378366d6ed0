"""The Python side of the view's smaller details: the token-class form's message, the
self-explanation chart's legend, and progress bars in offline exports."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

import saewidgets as sw
from saewidgets.export import offline_html
from saewidgets.export.notebook import progress_text
from saewidgets.widgets.explorer.widget import class_form
from kernel_run import execute_notebook

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def organism():
    return sw.organism()


@pytest.fixture
def explorer(organism):
    model, sae = organism
    ex = sw.FeatureExplorer(model, sae, feature=3, max_new_tokens=4, auto_self_explain=False)
    yield ex
    ex.close()


def _send(explorer, content: dict) -> dict:
    """A message from the view, through the widget's own message dispatch."""
    explorer._handle_custom_msg(content, [])
    return explorer.class_message


# -- the token-class form ----------------------------------------------------------------
def test_a_class_from_the_form_is_added_selected_and_reported(explorer):
    answer = _send(explorer, {"type": "add_class", "id": "r1", "name": " my colours ", "words": "red, green,, zzqxv ,"})
    assert answer["id"] == "r1" and answer["status"] == "added" and answer["name"] == "my colours"
    classes = explorer.session.lens.classes
    size = int(classes["my colours"].sum())
    assert answer["text"].startswith(f"added class 'my colours': {size} tokens from 3 words")
    assert "'zzqxv'" in answer["text"] and "not single tokens" in answer["text"]  # add_words' report
    strings = {classes.strings[i] for i in classes.ids("my colours")}
    assert {" red", " green"} <= strings
    assert "my colours" in explorer.class_names and explorer.token_class == "my colours"
    assert explorer.histogram["class"] == "my colours" and explorer.error == ""


@pytest.mark.parametrize("content, message", [
    ({"name": "case", "words": "red"}, "built-in split"),
    ({"name": "lower", "words": "red"}, "already exists"),
    ({"name": "", "words": "red"}, "1 to 64 characters"),
    ({"name": "x" * 65, "words": "red"}, "1 to 64 characters"),
    ({"name": "bell\x07", "words": "red"}, "control characters"),
    ({"name": 5, "words": "red"}, "as text"),
    ({"name": "x", "words": ["red"]}, "as text"),
    ({"name": "x", "words": " , ,"}, "at least one word"),
    ({"name": "x", "words": ",".join(["w"] * 2001)}, "at most 2000"),
    ({"name": "x", "words": "a" * 101}, "at most 100 characters"),
    ({"name": "x", "words": "zzqxvw-not-a-word-ever"}, None),  # split into pieces: left out, none left
])
def test_bad_form_input_is_answered_with_the_reason_and_changes_nothing(explorer, content, message):
    names, chosen = list(explorer.class_names), explorer.token_class
    answer = _send(explorer, {"type": "add_class", "id": "r2", **content})
    assert answer["status"] == "error" and answer["id"] == "r2", answer
    if message:
        assert message in answer["text"], answer["text"]
    assert explorer.class_names == names and explorer.token_class == chosen


def test_the_form_text_is_data(explorer):
    hostile = '<img src=x onerror="alert(1)">'
    answer = _send(explorer, {"type": "add_class", "id": {"not": "a string"}, "name": hostile, "words": "red, <b>"})
    assert answer["id"] is None and answer["status"] == "added" and answer["name"] == hostile
    assert hostile in explorer.class_names


def test_class_form_parses_names_and_words():
    assert class_form("  a b ", " red ,green , ,blue,") == ("a b", ["red", "green", "blue"])
    with pytest.raises(ValueError, match="at least one word"):
        class_form("a", "")


# -- the self-explanation chart's legend ------------------------------------------------
def test_chart_legend_names_the_chosen_and_the_current_rule(organism):
    import vl_convert as vlc

    from saewidgets.sessions.self_explanations import chart_spec

    model, sae = organism
    df = sw.self_explain(model, sae, 3, scales=[0.0, 0.5, 1.0, 2.0], max_new_tokens=4, progress=False)
    alone = sw.self_explanation_chart(df).to_dict()
    both = sw.self_explanation_chart(df, current_scale=1.0).to_dict()
    domains = lambda spec: {str(layer["encoding"]["color"]["scale"]["domain"])  # noqa: E731
                            for panel in spec["vconcat"] for layer in panel["layer"] if "color" in layer.get("encoding", {})}
    assert domains(alone) == {"['chosen scale']"} and domains(both) == {"['chosen scale', 'current scale']"}
    svg = vlc.vegalite_to_svg(both)
    assert svg.count(">chosen scale<") == 1 and svg.count(">current scale<") == 1  # one legend for the four panels

    panel = chart_spec(df)  # the explorer's: the slider's rule keyed in the same legend
    panel["datasets"]["sw_current"] = [{"scale": 0.5}]
    svg = vlc.vegalite_to_svg(panel)
    assert svg.count(">chosen scale<") == 1 and svg.count(">slider&apos;s scale<") + svg.count(">slider's scale<") == 1
    rules = [layer for p in panel["concat"] for layer in p["layer"] if layer.get("mark", {}).get("type") == "rule"]
    assert len(rules) == 8 and all(r["encoding"]["strokeDash"]["scale"]["domain"] == ["chosen scale", "slider's scale"]
                                   for r in rules)


# -- progress bars in offline exports ---------------------------------------------------
def _tqdm_notebook(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(12), desc='work'):\n    pass"),
        nbformat.v4.new_code_cell("for _ in tqdm(range(3), desc='gone', leave=False):\n    pass\nprint('after')"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    execute_notebook(nb, tmp_path, timeout=120)
    return nb


def _outputs(html: str) -> list[str]:
    import html as html_module

    outputs = re.findall(r'data-mime-type="[^"]+"[^>]*>\s*<pre>(.*?)</pre>', html, flags=re.S)  # not the code cells
    return [html_module.unescape(t) for t in outputs]


def test_exported_progress_bars_show_their_final_state(tmp_path):
    nb = _tqdm_notebook(tmp_path)
    first = nb.cells[0].outputs[0]["data"]["text/plain"]
    assert re.match(r"work:\s+0%", first)  # what the notebook saved as text: the bar's first frame
    outputs = _outputs(offline_html(nb))
    assert any(re.fullmatch(r"work: 100%\|██████████\| 12/12 \[[^\]]+\]", o) for o in outputs), outputs
    assert not any(re.search(r"(?<!\d)0%\|", o) or "gone" in o for o in outputs), outputs  # leave=False: no bar
    assert "after\n" in outputs

    stateless = copy.deepcopy(nb)  # saved without widget state: the first frame is all there is, so no bar
    stateless.metadata.pop("widgets")
    outputs = _outputs(offline_html(stateless))
    assert not any("%|" in o for o in outputs) and "after\n" in outputs, outputs


def test_progress_text_of_saved_widget_states():
    saved = {
        "box": {"_model_name": "HBoxModel", "children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"], "layout": "IPY_MODEL_lay"},
        "lay": {"_model_name": "LayoutModel"},
        "l": {"_model_name": "HTMLModel", "value": "steps:\u2007\u200750%"},
        "p": {"_model_name": "FloatProgressModel", "value": 5.0, "min": 0.0, "max": 10.0},
        "r": {"_model_name": "HTMLModel", "value": "\u20075/10\u2007[00:01&lt;00:01]"},
        "slider": {"_model_name": "IntSliderModel", "value": 3},
        "bar": {"_model_name": "IntProgressModel", "value": 3, "max": 3, "layout": "IPY_MODEL_hidden"},
        "hidden": {"_model_name": "LayoutModel", "visibility": "hidden"},
    }
    assert progress_text("box", saved) == "steps:  50%|█████     | 5/10 [00:01<00:01]"
    assert progress_text("slider", saved, "IntSlider(value=3)") is None  # other widgets keep their text
    assert progress_text("bar", saved) == ""
    assert progress_text("missing", saved, "  0%|          | 0/10 [00:00<?, ?it/s]") == ""
    assert progress_text("missing", saved, "IntSlider(value=3)") is None
