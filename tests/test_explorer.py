"""FeatureExplorer on the Python side: traits, the live loop (debounce, staleness), errors."""

from __future__ import annotations

import math
import threading
import time

import pytest

from saewidgets.widgets.live import LatestRequestRunner, Superseded, model_lock


# -- the live runner -------------------------------------------------------------------

def test_runner_debounces_a_burst_into_the_last_request():
    runner = LatestRequestRunner(debounce=0.1)
    ran = []
    for i in range(5):
        runner.submit(lambda ticket, i=i: ran.append(i))
    assert runner.wait(5)
    assert ran[-1] == 4 and len(ran) <= 2  # at most the leading request, then the last one
    runner.close()


def test_a_lone_request_starts_without_waiting_for_the_debounce():
    runner = LatestRequestRunner(debounce=2.0)
    started = threading.Event()
    runner.submit(lambda ticket: started.set())
    assert started.wait(1.0)
    runner.close()


def test_runner_stops_a_superseded_job_and_never_publishes_it():
    runner = LatestRequestRunner(debounce=0.0)
    shown: list[int] = []
    started = threading.Event()

    def slow(ticket):
        started.set()
        for _ in range(200):  # a long generation, checking between steps
            time.sleep(0.005)
            ticket.check()
        ticket.publish(lambda: shown.append(1))

    runner.submit(slow)
    assert started.wait(5)
    runner.submit(lambda ticket: ticket.publish(lambda: shown.append(2)))
    assert runner.wait(5)
    assert shown == [2]
    runner.close()


def test_publish_is_refused_once_a_newer_request_exists():
    runner = LatestRequestRunner(debounce=0.0)
    tickets = []
    runner.submit(lambda ticket: tickets.append(ticket))
    assert runner.wait(5)
    old = tickets[0]
    assert old.current and old.publish(lambda: None)
    runner.submit(lambda ticket: None)
    assert not old.current
    assert old.publish(lambda: pytest.fail("a stale result was published")) is False
    with pytest.raises(Superseded):
        old.check()
    runner.close()


def test_results_land_in_request_order_under_rapid_submissions():
    runner = LatestRequestRunner(debounce=0.0)
    shown: list[int] = []
    lock = threading.Lock()

    def job(ticket):
        for _ in range(3):
            time.sleep(0.002)
            ticket.check()
        ticket.publish(lambda: shown.append(ticket.id))

    last = None
    for _ in range(30):
        last = runner.submit(job)
        time.sleep(0.003)
    assert runner.wait(10)
    with lock:
        assert shown == sorted(shown)
        assert shown[-1] == last.id
    runner.close()


def test_busy_goes_up_and_down_and_failures_keep_the_worker_alive():
    flags = []
    runner = LatestRequestRunner(debounce=0.0, on_busy=flags.append)
    runner.submit(lambda ticket: 1 / 0)
    assert runner.wait(5)
    done = []
    runner.submit(lambda ticket: done.append(True))
    assert runner.wait(5)
    assert done == [True]
    assert flags[0] is True and flags[-1] is False and not runner.busy
    runner.close()


def test_run_now_supersedes_pending_work():
    runner = LatestRequestRunner(debounce=0.5)
    ran = []
    runner.submit(lambda ticket: ran.append("first"))  # a lone submission may start at once
    runner.submit(lambda ticket: ran.append("queued"))  # in a burst: waits for the debounce
    runner.run_now(lambda ticket: ran.append("now"))
    assert runner.wait(5)
    assert "now" in ran and "queued" not in ran
    runner.close()


def test_model_lock_is_one_per_model():
    a, b = object.__new__(type("M", (), {})), object.__new__(type("M", (), {}))
    assert model_lock(a) is model_lock(a)
    assert model_lock(a) is not model_lock(b)


# -- the widget ---------------------------------------------------------------------------

import saewidgets as sw  # noqa: E402
from tiny_models import random_sae, tiny_model  # noqa: E402

PROMPT = "The quick brown"


@pytest.fixture(scope="module")
def pair():
    model = tiny_model("gpt2")
    return model, random_sae(32, 64, layer=1)


@pytest.fixture
def explorer(pair):
    model, sae = pair
    ex = sw.FeatureExplorer(model, sae, feature=3, prompt=PROMPT, max_new_tokens=6, debounce=0.02)
    yield ex
    ex.close()


def go_live(ex):
    """What the view does when it renders: say it is showing."""
    ex._handle_custom_msg({"type": "ready"}, [])


def steered_tokens(ex):
    return ex.generation["steered"]["tokens"]


def direct(pair, features, n=6):
    model, sae = pair
    result = sw.steer(model, sae, PROMPT, features=features, max_new_tokens=n, progress=False)
    return result


def test_initial_state_is_complete(explorer, pair):
    ex = explorer
    assert ex.n_features == 64 and ex.feature == 3 and ex._kind == "explorer"
    info = ex.feature_info
    assert info["feature"] == 3 and len(info["top_positive"]) == 10 and len(info["top_negative"]) == 10
    assert info["top_positive"][0][1] >= info["top_positive"][-1][1] > info["top_negative"][0][1]
    assert set(info["stats"]) >= {"std", "skew", "kurtosis", "decoder norm"}
    hist = ex.histogram
    assert hist["feature"] == 3 and hist["class"] == ex.token_class == "starts_with_space"
    assert sum(sum(s["counts"]) for s in hist["series"]) == pair[0]._module.config.vocab_size
    assert len(hist["edges"]) == 61
    assert set(ex.rankings) == {"skew", "kurtosis", "std", "enrichment"}
    skews = [v for _, v, _ in ex.rankings["skew"]]
    assert skews == sorted(skews, reverse=True)
    assert ex.scale_range["max"] > 0 and 0 < ex.scale_range["linear"] < ex.scale_range["max"]
    gen = ex.generation
    assert gen["status"] == "done" and gen["features"] == [[3, 0.0]]
    assert gen["steered"]["tokens"] == gen["baseline"]["tokens"] and len(gen["baseline"]["tokens"]) == 6
    assert not ex.busy and ex.error == ""


def test_python_changes_update_the_state_and_match_steer(explorer, pair):
    ex = explorer
    ex.scale = 4.0  # no view yet: generates at once
    expected = direct(pair, {3: 4.0})
    assert ex.generation["features"] == [[3, 4.0]]
    assert "".join(steered_tokens(ex)) == expected.steered
    assert "".join(ex.generation["baseline"]["tokens"]) == expected.baseline
    assert ex.generation["steered"]["logprobs"] == pytest.approx(expected.steered_logprobs, abs=1e-3)
    ex.feature = 7
    assert ex.feature_info["feature"] == 7 and ex.histogram["feature"] == 7
    assert ex.generation["features"] == [[7, 4.0]]


def test_view_updates_reach_python(explorer):
    ex = explorer
    go_live(ex)
    ex.set_state({"feature": 9, "token_class": "case", "scale": 2.5, "prompt": "Hello World"})
    assert ex.wait(30)
    assert ex.feature == 9 and ex.token_class == "case"
    assert [s["name"] for s in ex.histogram["series"]][:2] == ["capitalised", "lower"]
    gen = ex.generation
    assert gen["prompt"] == "Hello World" and gen["features"] == [[9, 2.5]] and gen["status"] == "done"


def test_live_burst_shows_only_the_last_request_in_order(explorer, pair):
    ex = explorer
    go_live(ex)
    assert ex.wait(30)
    seen = []
    ex.observe(lambda change: seen.append(dict(change["new"])), "generation")
    scales = [0.5, 1.0, 2.0, 3.0, 6.0]
    for scale in scales:
        ex.set_state({"scale": scale})
    assert ex.wait(30)
    ids = [g["id"] for g in seen]
    assert ids == sorted(ids), "a result from an older request landed after a newer one"
    final = ex.generation
    assert final["status"] == "done" and final["features"] == [[3, 6.0]]
    assert "".join(steered_tokens(ex)) == direct(pair, {3: 6.0}).steered
    done = [g for g in seen if g["status"] == "done"]
    assert len(done) < len(scales), "the burst was not debounced"


def test_stale_generation_is_cancelled_mid_stream(explorer):
    ex = explorer
    go_live(ex)
    assert ex.wait(30)
    ex.max_new_tokens = 60  # a long generation to interrupt
    started = threading.Event()
    ex.observe(lambda change: started.set() if change["new"].get("status") == "running" else None, "generation")
    ex.scale = 5.0
    assert started.wait(30)
    first = ex.generation["id"]
    ex.max_new_tokens = 5
    assert ex.wait(60)
    final = ex.generation
    assert final["id"] > first and final["max_new_tokens"] == 5 and len(final["steered"]["tokens"]) == 5


BAD_INPUTS = [
    ("feature", 64, "out of range"), ("feature", 3.5, "integer"), ("feature", "3", "integer"),
    ("scale", math.nan, "finite"), ("scale", 1e9, "within"), ("scale", "big", "number"),
    ("prompt", "   ", "empty"), ("prompt", 5, "text"),
    ("max_new_tokens", 0, "number of tokens"), ("max_new_tokens", 10**6, "1 to 512"), ("max_new_tokens", 2.5, "whole"),
    ("temperature", -1.0, "temperature"), ("temperature", math.inf, "temperature"),
    ("seed", -1, "seed"), ("seed", 2**64, "seed"), ("seed", 1.5, "seed"),
    ("token_class", "no such class", "unknown token class"), ("rank_by", "size", "unknown ranking"),
    ("steering", [{"feature": 99, "scale": 1.0}], "out of range"), ("steering", [{"feature": 1, "scale": math.nan}], "finite"),
]


def test_bad_inputs_raise_from_python_and_show_from_the_view_keeping_the_state(explorer):
    ex = explorer
    before = dict(ex.generation)
    state = {name: getattr(ex, name) for name, _, _ in BAD_INPUTS}
    for name, value, message in BAD_INPUTS:
        with pytest.raises(ValueError, match=message):  # from Python: a clear ValueError, nothing changes
            setattr(ex, name, value)
        assert getattr(ex, name) == state[name] and ex.error == ""
        ex.set_state({name: value})  # the same, coming from the view: the banner, the last good value
        assert getattr(ex, name) == state[name] and message in ex.error, (name, value, ex.error)
        ex.error = ""
    assert ex.generation == before  # nothing regenerated
    ex.scale = 1.0  # a valid change works
    assert ex.error == "" and ex.generation["features"] == [[3, 1.0]]


def test_a_failing_generation_shows_an_error_and_the_widget_recovers(explorer):
    ex = explorer
    go_live(ex)
    ex.max_new_tokens = 200  # the tiny GPT-2 has 128 positions: refused before any model call
    assert ex.wait(60)
    assert "context is 128 positions" in ex.error and "at most" in ex.error
    assert not ex.busy
    ex.max_new_tokens = 4
    assert ex.wait(60)
    assert ex.error == "" and ex.generation["status"] == "done" and len(steered_tokens(ex)) == 4


def test_several_features_steer_together(explorer, pair):
    ex = explorer
    ex.steering = [{"feature": 10, "scale": 3.0}]
    assert ex.steering[0]["feature"] == 10 and ex.steering[0]["max"] > 0  # range added
    ex.scale = 2.0
    gen = ex.generation
    assert gen["features"] == [[10, 3.0], [3, 2.0]]
    assert "".join(steered_tokens(ex)) == direct(pair, {10: 3.0, 3: 2.0}).steered


def test_user_classes_explanations_and_search(pair):
    model, sae = pair
    explanations = {4: "colour words like red and green", 11: "numbers"}
    ex = sw.FeatureExplorer(model, sae, feature=4, prompt=PROMPT, max_new_tokens=2,
                            classes={"animals": ["fox", "dog", "cats"]}, explanations=explanations)
    try:
        assert ex.class_names[0] == "animals" and ex.token_class == "animals"
        assert [s["name"] for s in ex.histogram["series"]] == ["animals", "not animals"]
        assert ex.feature_info["explanation"] == explanations[4]
        assert "enrichment: animals" in ex.feature_info["stats"]
        ex.add_class("years", regex=r"^\s?(19|20)\d\d$")
        assert ex.token_class == "years" and ex.histogram["class"] == "years"
        ex.search = "colour"
        assert ex.search_results[0] == [4, explanations[4]]
        top = ex.feature_info["top_positive"][0][0].strip()
        ex.search = top
        assert 4 in [f for f, _ in ex.search_results]
        with pytest.raises(ValueError, match="exactly one"):
            ex.add_class("bad")
    finally:
        ex.close()


def test_explanations_from_a_dataframe(pair):
    import pandas as pd

    model, sae = pair
    frame = pd.DataFrame({"feature": [1, 2], "description": ["first", "second"]})
    ex = sw.FeatureExplorer(model, sae, feature=2, prompt=PROMPT, max_new_tokens=2, explanations=frame)
    try:
        assert ex.feature_info["explanation"] == "second"
    finally:
        ex.close()


def test_constructor_rejects_bad_arguments(pair):
    model, sae = pair
    with pytest.raises(ValueError, match="out of range"):
        sw.FeatureExplorer(model, sae, feature=64)
    with pytest.raises(ValueError, match="empty"):
        sw.FeatureExplorer(model, sae, prompt="")
    with pytest.raises(ValueError, match="finite"):
        sw.FeatureExplorer(model, sae, scale=math.inf)
    with pytest.raises(ValueError, match="unknown token class"):
        sw.FeatureExplorer(model, sae, token_class="nope")
    with pytest.raises(ValueError, match="explanation"):
        sw.FeatureExplorer(model, sae, explanations={999: "x"})


def test_slider_range_follows_decoder_norm_and_typical_activation(pair):
    from saewidgets.sessions.checks import nice_ceiling, scale_range

    assert scale_range(1.0, 10.0, None) == {"max": 50.0, "linear": 0.5}  # 4 x 10 -> nice 50
    assert scale_range(2.0, 10.0, None)["max"] == 20.0  # a longer decoder row needs less scale
    assert scale_range(1.0, 10.0, 30.0)["max"] == 100.0  # nice_ceiling(2 x typical)
    assert [nice_ceiling(v) for v in (0.7, 1.0, 3.3, 240)] == [1.0, 1.0, 5.0, 250.0]
    model, sae = pair
    ex = sw.FeatureExplorer(model, sae, feature=1, prompt=PROMPT, max_new_tokens=2,
                            typical_activation={1: 3.0})
    try:
        assert ex.scale_range == {"max": 10.0, "linear": 0.1}
    finally:
        ex.close()


def test_remote_path_gives_the_local_result(pair):
    """remote="local" runs nnsight's serialisation path (what NDIF uses) in-process."""
    model, sae = pair
    local = sw.FeatureExplorer(model, sae, feature=6, prompt=PROMPT, max_new_tokens=4, scale=3.0)
    remote = sw.FeatureExplorer(model, sae, feature=6, prompt=PROMPT, max_new_tokens=4, scale=3.0, remote="local")
    try:
        assert remote.error == "" and remote.generation["status"] == "done"
        assert remote.generation["steered"]["tokens"] == local.generation["steered"]["tokens"]
        assert remote.scale_range == local.scale_range
    finally:
        local.close()
        remote.close()


def test_large_saes_compute_statistics_in_the_background(pair, monkeypatch):
    import saewidgets.sessions.lens as explorer_data

    monkeypatch.setattr(explorer_data, "SMALL", 0)  # treat the tiny SAE as a large one
    model, sae = pair
    ex = sw.FeatureExplorer(model, sae, feature=2, prompt=PROMPT, max_new_tokens=2)
    try:
        assert ex.wait(60)
        assert ex.stats_progress == {} and ex.stats is not None and len(ex.stats) == 64
        assert [f for f, _, _ in ex.rankings["skew"]][:1] == [int(ex.stats.sort_values("skew").feature.iloc[-1])]
        assert ex.rankings["enrichment"] and "enrichment: starts_with_space" in ex.feature_info["stats"]
    finally:
        ex.close()
    lens = explorer_data.FeatureLens(sw.bind(model, sae))
    calls = []
    lens.compute_stats(progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (64, 64)  # what feeds the widget's progress bar


def test_on_the_model_organism_concept_classes_match_the_ground_truth():
    try:
        model, sae = sw.organism()
        gt = sw.organism_ground_truth()
    except Exception as error:  # only while the organism's files are not built yet
        pytest.skip(f"the model organism is not available: {error}")
    concept = "number"
    ex = sw.FeatureExplorer(model, sae, feature=gt.feature(concept), prompt="The word", max_new_tokens=3,
                            classes=gt.concepts, token_class=concept)
    try:
        assert ex.class_names[: len(gt.concepts)] == list(gt.concepts)
        counts = {s["name"]: sum(s["counts"]) for s in ex.histogram["series"]}
        both_forms = set(gt.concept_token_ids[concept]) | set(gt.concept_token_ids_bare[concept])
        assert counts[concept] == len(both_forms)  # " seven" and "seven"
        assert sum(counts.values()) == sw.bind(model, sae).vocab_size
        ranked = ex.rankings["enrichment"]
        assert ranked and ranked[0][1] > 0.5  # some feature's logit weights favour number words
        expected = sw.steer(model, sae, "The word", features={gt.feature(concept): 0.0}, max_new_tokens=3,
                            progress=False)
        assert "".join(ex.generation["baseline"]["tokens"]) == expected.baseline + (
            "<|endoftext|>" if expected.baseline_runs[0].ended else "")
    finally:
        ex.close()



# -- the self-explanation panel -------------------------------------------------------------

@pytest.fixture
def sweeps(monkeypatch):
    """Count the real sw.self_explain calls the explorer makes (a spy: each call still runs)."""
    import saewidgets.self_explanation.explain as module

    calls: list[list[int]] = []
    real = module.self_explain

    def counted(*args, **kwargs):
        calls.append(list(kwargs.get("features") or []))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "self_explain", counted)
    return calls


def row_index(panel: dict, slider: float) -> int:
    """The rule the panel documents: the sweep scale nearest |slider| x factor."""
    scales = [row[0] for row in panel["rows"]]
    target = abs(slider) * panel["factor"]
    return min(range(len(scales)), key=lambda i: abs(scales[i] - target))


def test_self_explanation_follows_the_feature_and_the_slider_without_recomputing(pair, sweeps):
    import json

    from saewidgets.self_explanation.explain import best_explanations, explanation_at

    model, sae = pair
    ex = sw.FeatureExplorer(model, sae, feature=3, prompt=PROMPT, max_new_tokens=2)
    try:
        assert ex.auto_self_explain  # a small model: on by default
        panel = ex.self_explanation
        assert sweeps == [[3]] and panel["feature"] == 3 and panel["status"] == "done"
        json.dumps(panel, allow_nan=False)  # plain JSON: a saved notebook renders it without a kernel
        df = sw.self_explain(model, sae, features=[3], progress=False)  # what the explorer ran
        assert [r[0] for r in panel["rows"]] == pytest.approx(df["scale"].tolist())
        assert [r[1] for r in panel["rows"]] == df["explanation"].tolist()
        assert panel["explanation"] == df.attrs["chosen_explanation"] and panel["best"] == best_explanations(df)
        hook_norm = ex.session.lens.reference_norm()
        assert panel["factor"] == pytest.approx(df.attrs["reference_norm"] / hook_norm)
        assert ex.self_explanation_current["current"]["index"] == 0  # slider at 0: the sweep's first row
        assert "current" not in panel  # the view picks the slider's row itself: nothing to resend
        # the chart: self_explanation_chart's four metric panels, each with the slider's rule
        chart = panel["chart"]
        assert len(chart["concat"]) == 4 and chart["datasets"]["sw_current"] == []
        assert all(layer["layer"][-1]["data"] == {"name": "sw_current"} for layer in chart["concat"])

        sweeps.clear()
        for k in (5, 17, len(panel["rows"]) - 1):
            slider = panel["rows"][k][0] / panel["factor"]
            ex.scale = round(slider, 6)
            assert ex.self_explanation is panel or ex.self_explanation == panel  # a slider move sends nothing new
            current = ex.self_explanation_current["current"]
            assert current["index"] == row_index(panel, ex.scale) == k
            assert current["explanation"] == explanation_at(df, current["target_scale"])["explanation"]
        ex.scale = -ex.scale  # a negative scale: the row of the same size
        assert ex.self_explanation_current["current"]["index"] == k
        assert sweeps == [], "moving the slider recomputed the sweep"

        ex.feature = 7
        assert sweeps == [[7]] and ex.self_explanation["feature"] == 7
        ex.feature = 3  # cached
        assert sweeps == [[7]] and ex.self_explanation["feature"] == 3
        assert ex.self_explanation["rows"] == panel["rows"]
        assert ex.self_explain(7)["feature"].tolist() == [7] * len(panel["rows"]) and sweeps == [[7]]
    finally:
        ex.close()


def test_self_explanation_off_computes_nothing_until_asked(pair, sweeps, monkeypatch):
    import saewidgets.sessions.self_explanations as panel_module

    model, sae = pair
    monkeypatch.setattr(panel_module, "AUTO_MAX_PARAMETERS", 1000)  # the tiny model counts as large
    ex = sw.FeatureExplorer(model, sae, feature=4, prompt=PROMPT, max_new_tokens=2)
    try:
        assert not ex.auto_self_explain
        off = ex.self_explanation
        assert off["status"] == "off" and off["feature"] == 4 and off["parameters"] > off["limit"] == 1000
        ex.feature = 6
        ex.scale = 2.0
        assert sweeps == [] and ex.self_explanation["status"] == "off"
        ex._handle_custom_msg({"type": "self_explain"}, [])  # the panel's button
        assert sweeps == [[6]] and ex.self_explanation["status"] == "done"
        assert ex.self_explanation_current["current"]["slider_scale"] == 2.0
        ex.feature = 4
        assert sweeps == [[6]] and ex.self_explanation["status"] == "off"
        ex.auto_self_explain = True  # the checkbox: explains the current feature, then each new one
        assert sweeps == [[6], [4]] and ex.self_explanation["status"] == "done"
    finally:
        ex.close()
    with pytest.raises(ValueError, match="must not set"):
        sw.FeatureExplorer(model, sae, self_explain_options={"feature": 3})
    with pytest.raises(ValueError, match="dict of sw.self_explain"):
        sw.FeatureExplorer(model, sae, self_explain_options=["repeat"])


def test_live_self_explanation_runs_after_the_steered_generation(pair, sweeps):
    model, sae = pair
    ex = sw.FeatureExplorer(model, sae, feature=3, prompt=PROMPT, max_new_tokens=4, debounce=0.0,
                            self_explain_options={"max_new_tokens": 3, "scales": [0.0, 0.1, 0.2, 0.4]})
    try:
        go_live(ex)
        assert ex.wait(30)
        order: list[str] = []
        ex.observe(lambda c: order.append("generation") if c["new"].get("status") == "done" else None, "generation")
        ex.observe(lambda c: order.append("self-explanation:" + c["new"].get("status", "")), "self_explanation")
        ex.feature = 9
        assert ex.self_explanation == {"feature": 9, "status": "running"}  # at once, in the kernel's thread
        assert ex.wait(60)
        assert order.index("generation") < order.index("self-explanation:done")
        panel = ex.self_explanation
        assert panel["feature"] == 9 and [r[0] for r in panel["rows"]] == [0.0, 0.1, 0.2, 0.4]
        assert sweeps == [[3], [9]]
    finally:
        ex.close()


def test_snapshot_stores_the_self_explanation_panel(pair, sweeps):
    from saewidgets.export.packing import unpack

    model, sae = pair
    ex = sw.FeatureExplorer(model, sae, feature=3, prompt=PROMPT, max_new_tokens=2, scale=1.0)
    try:
        ex.snapshot(features=[5], n_scales=3, token_classes="current", progress=False)
        assert sweeps == [[3], [5]]  # the current feature's sweep came from the cache
        items = unpack(ex.precomputed["items"], ex.precomputed_data)
        assert items["3"]["self_explanation"]["rows"] == ex.self_explanation["rows"]
        five = items["5"]["self_explanation"]
        assert five["feature"] == 5 and five["status"] == "done" and five["chart"]["concat"]
        from saewidgets.sessions.self_explanations import select

        assert select(five, 1.0)["current"]["index"] == row_index(five, 1.0)
        ex.feature = 5  # the snapshot's sweep is the explorer's too
        assert sweeps == [[3], [5]] and ex.self_explanation["rows"] == five["rows"]
    finally:
        ex.close()


def test_model_title_is_short():
    from saewidgets.model_organism.ground_truth import MODEL_DIR
    from saewidgets.sessions.lens import model_name

    assert model_name(str(MODEL_DIR)) == "saewidgets-organism"
    assert model_name("/home/me/models/gpt2-small") == "gpt2-small"
    assert model_name("/runs/run3/checkpoint-500") == "run3/checkpoint-500"
    assert model_name("google/gemma-2-2b") == "google/gemma-2-2b"


def test_self_explain_waits_for_the_model_lock():
    """sw.self_explain takes the model's lock, so it never traces while another thread does."""
    from saewidgets.core.locks import model_lock

    model = tiny_model("gpt2")
    sae = random_sae(32, 16, layer=1)
    done = threading.Event()
    with model_lock(model):
        worker = threading.Thread(target=lambda: (sw.self_explain(model, sae, 2, scales=[0.0, 1.0], max_new_tokens=2,
                                                                  progress=False), done.set()))
        worker.start()
        assert not done.wait(0.5), "self_explain ran while another thread held the model's lock"
        with model_lock(model):  # re-entrant
            pass
    assert done.wait(60)
    worker.join()


def test_steer_waits_for_the_model_lock(pair):
    """sw.steer takes the model's lock too (re-entrant: the explorer holds it around steer)."""
    from saewidgets.core.locks import model_lock

    model, sae = pair
    done = threading.Event()
    with model_lock(model):
        worker = threading.Thread(target=lambda: (direct(pair, {3: 1.0}, n=2), done.set()))
        worker.start()
        assert not done.wait(0.5), "steer ran while another thread held the model's lock"
        direct(pair, {3: 1.0}, n=2)  # the holder itself may steer
    assert done.wait(60)
    worker.join()


def test_a_running_sweep_never_delays_a_steering_generation(pair):
    """The sweep runs in small batches and lets a pending steering generation go first between them."""
    model, sae = pair
    ex = sw.FeatureExplorer(model, sae, feature=3, prompt=PROMPT, max_new_tokens=3, debounce=0.0,
                            auto_self_explain=False,
                            self_explain_options={"max_new_tokens": 3, "scales": [0.05 * i for i in range(96)]})
    try:
        go_live(ex)
        assert ex.wait(30)
        seen: list[tuple[str, str]] = []
        ex.observe(lambda c: seen.append(("generation", c["new"].get("status", ""))), "generation")
        ex.observe(lambda c: seen.append(("sweep", c["new"].get("status", ""))), "self_explanation")
        ex._handle_custom_msg({"type": "self_explain"}, [])  # the panel's button: a long sweep starts
        deadline = time.monotonic() + 30
        while not ex._explain_runner.busy and time.monotonic() < deadline:  # wait until the sweep runs
            time.sleep(0.01)
        ex.scale = 2.0  # the user moves the slider while the sweep runs
        assert ex.wait(120)
        done_generation = seen.index(("generation", "done"))
        done_sweep = seen.index(("sweep", "done"))
        assert done_generation < done_sweep, seen
    finally:
        ex.close()

