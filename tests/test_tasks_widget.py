"""TaskExplorer and its TaskSession from Python (the browser test drives the view)."""

from __future__ import annotations

import json

import pytest

import saewidgets as sw
from saewidgets.sessions.tasks import TaskSession, parse_pairs

CLEANUP = {"lr": 0.05, "steps": 40, "patience": 15}


@pytest.fixture(scope="module")
def organism():
    return sw.organism()


@pytest.fixture(scope="module")
def explorer(organism):
    model, sae = organism
    fe = sw.FeatureExplorer(model, sae, feature=0, max_new_tokens=4, auto_self_explain=False)
    tx = sw.TaskExplorer(model, sae, task="category", n_prompts=6, n_eval=12, n_show=4, cleanup=CLEANUP, explorer=fe)
    assert tx.wait(600)
    yield tx, fe
    tx.close()
    fe.close()


def test_the_pipeline_fills_every_panel(explorer, organism):
    tx, _ = explorer
    _, sae = organism
    assert tx.task_names == ["category", "uppercase", "antonym", "digit", "french"]  # the organism's tasks, not copy
    assert tx.status == {"task": "category", "stage": "done"} and tx.error == ""
    o = tx.overview
    assert o["layer"] == sae.hook.layer and o["n_eval"] == 12 and o["shots"] == 6
    session_data = tx.session.data("category")
    check = sw.evaluate_task_vector(tx.binding.model, tx.session.vector("category"), session_data.zero_shot)
    assert o["task_vector"]["accuracy"] == pytest.approx(check.accuracy)
    assert {p.query for p in session_data.zero_shot}.isdisjoint({p.query for p in session_data.few_shot})
    rows = tx.features["rows"]
    assert [r["feature"] for r in rows] == list(tx.task_features.features) and tx.selected == sorted(tx.task_features.features)
    assert all(r["role"] in ("executor", "detector", "both", "other") and r["label"] for r in rows)
    assert tx.features["topk_relu"] is True and tx.features["initial_l0"] >= tx.features["l0"]
    methods = {r["method"] for r in tx.sweep["rows"]}
    assert {"task_vector", "reconstruction", "on_reconstruction", "ito", "cleanup", "zero_shot"} <= methods
    c = tx.completions
    assert c["selected"] == tx.selected and len(c["rows"]) == 4
    assert all(r["correct"] == (r["completion"].strip() == r["answer"]) for r in c["rows"])
    json.dumps([tx.overview, tx.sweep, tx.features, tx.completions])  # all JSON for the view


def test_toggling_features_steers_the_completions(explorer):
    tx, _ = explorer
    every = list(tx.selected)
    full = tx.completions["accuracy"]
    tx.selected = []
    assert tx.wait(120)
    assert tx.completions["selected"] == [] and tx.completions["accuracy"] < full  # b_dec alone does not do the task
    check = sw.evaluate_task_vector(tx.binding.model, tx.task_features.subset([]), tx.session.data("category").zero_shot,
                                    answer_tokens=3)
    assert tx.completions["accuracy"] == pytest.approx(check.accuracy)
    tx.selected = [every[0], every[0]]
    assert tx.wait(120) and tx.selected == [every[0]] and tx.completions["selected"] == [every[0]]
    tx.selected = [10_000]  # not a task feature: refused, the previous choice stays
    assert "not among the task's features" in tx.error and tx.selected == [every[0]]
    tx.error = ""
    tx.selected = every
    assert tx.wait(120) and tx.completions["accuracy"] == full  # cached per subset


def test_opening_a_feature_tells_the_explorer_and_the_callbacks(explorer):
    tx, fe = explorer
    seen = []
    tx.on_open(seen.append)
    feature = tx.selected[0]
    tx._on_message(tx, {"type": "open", "feature": feature}, [])  # what a click in the view sends
    assert tx.opened == feature and fe.feature == feature and seen == [feature]
    tx._on_message(tx, {"type": "open", "feature": 99_999}, [])
    assert "out of range" in tx.error and tx.opened == feature
    tx.error = ""


def test_a_typed_task_runs_and_bad_ones_are_refused(explorer):
    tx, _ = explorer
    tx._on_message(tx, {"type": "custom", "text": "just one line"}, [])
    assert "line 1 is not 'x -> y'" in tx.error and tx.task == "category"
    tx.error = ""
    text = "\n".join(f"{w} -> {w.upper()}" for w in ["red", "blue", "green", "cat", "dog", "horse", "bread", "rice"])
    tx._on_message(tx, {"type": "custom", "name": "shout", "text": text}, [])
    assert tx.task == "shout" and "shout" in tx.task_names
    assert tx.wait(600) and tx.status["stage"] == "done", tx.status
    assert tx.overview["task"] == "shout" and tx.features["task"] == "shout"
    tx.task = "nope"
    assert "unknown task 'nope'" in tx.error and tx.task == "shout"
    tx.error = ""
    tx.task = "category"  # cached: at once
    assert tx.wait(60) and tx.features["task"] == "category"


def test_results_computed_elsewhere_are_used(organism):
    model, sae = organism
    pairs = sw.organism_ground_truth().icl_tasks["category"]
    few = sw.icl_prompts(pairs, shots=4, n=6, seed=3)
    zero = sw.icl_prompts(pairs, shots=0, n=8, seed=4)
    tf = sw.task_features(model, sae, few, method="ito", l0=4, eval_prompts=zero)
    sweep = sw.layer_sweep(model, sae, few, zero, methods=["task_vector", "reconstruction"], progress=False)
    tx = sw.TaskExplorer(model, sae, task="category", prompts=(few, zero), features=tf, sweep=sweep, n_show=3)
    try:
        assert tx.wait(300) and tx.error == ""
        assert tx.task_features is tf and tx.session.data("category").zero_shot == zero
        assert [r["feature"] for r in tx.features["rows"]] == list(tf.features)
        rows = [r for r in tx.sweep["rows"] if r["method"] == "task_vector"]
        assert [r["nll"] for r in rows] == pytest.approx(list(sweep.frame.query("method == 'task_vector'")["nll"]))
    finally:
        tx.close()


def test_bad_arguments(organism):
    model, sae = organism
    with pytest.raises(ValueError, match="unknown task"):
        sw.TaskExplorer(model, sae, task="nope")
    with pytest.raises(ValueError, match="unknown cleanup settings"):
        sw.TaskExplorer(model, sae, cleanup={"speed": 2})
    with pytest.raises(ValueError, match="no tasks"):
        sw.TaskExplorer(model, sae, tasks={})
    with pytest.raises(ValueError, match="at least 3 pairs"):
        sw.TaskExplorer(model, sae, tasks={"tiny": [("a", "b"), ("a", "c")]})
    with pytest.raises(ValueError, match="prompts must be"):
        sw.TaskExplorer(model, sae, task="category", prompts=[1])
    assert parse_pairs("a -> b\n\n c -> d \ne -> f") == [("a", "b"), ("c", "d"), ("e", "f")]
    session = TaskSession(sw.bind(model, sae), {"t": "a -> b\nc -> d\ne -> f"})
    assert session.task_names == ["t"]
