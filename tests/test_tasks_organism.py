"""Ground truth on the model organism's ICL tasks (methods.md section 8, the issue's targets).

Targets asserted (not levels copied from a run): the `category` task vector lifts zero-shot
accuracy to >= 80% at the SAE's layer; gradient cleanup keeps >= 80% with <= 10 features, from
an encoder start with many more positive pre-activations (a TopK SAE: every positive one, not
just k). The other tasks' transfer is measured and reported (benchmarks/README.md), not held to
a level; their few-shot and zero-shot levels are the organism's documented ones.
Prompts: 16 prompts of 6 shots for the vector, 32 zero-shot prompts on other queries to score.
"""

from __future__ import annotations

import pytest

import saewidgets as sw

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def organism():
    return sw.organism()


@pytest.fixture(scope="module")
def truth():
    return sw.organism_ground_truth()


def _prompts(pairs):
    few = sw.icl_prompts(pairs, shots=6, n=16, seed=0)
    asked = {p.query for p in few}
    zero = sw.icl_prompts([p for p in pairs if p[0] not in asked], shots=0, n=32, seed=1)
    return few, zero


@pytest.fixture(scope="module")
def category(organism, truth):
    model, sae = organism
    few, zero = _prompts(truth.icl_tasks["category"])
    return few, zero, sw.task_vector(model, few, sae.hook.layer, prepend_bos=True)


def test_the_category_task_vector_does_the_task_at_the_saes_layer(organism, category):
    model, sae = organism
    few, zero, tv = category
    assert sae.hook.layer == 2 and tv.layer == 2
    zero_shot = sw.evaluate_task_vector(model, None, zero, prepend_bos=True)
    with_tv = sw.evaluate_task_vector(model, tv, zero)
    few_shot = sw.evaluate_task_vector(model, None, few, prepend_bos=True)
    assert with_tv.accuracy >= 0.8 > zero_shot.accuracy
    assert with_tv.nll < zero_shot.nll
    assert few_shot.accuracy >= 0.8  # the organism's ICL (REPORT.md: few-shot >= 80%)


def test_gradient_cleanup_keeps_the_task_with_at_most_ten_features(organism, category):
    """Cleanup with the published settings but a faster Adam step (lr 0.05 instead of 1e-2, to
    keep the test short; benchmarks/README.md records a run with the defaults)."""
    model, sae = organism
    few, zero, tv = category
    start = int((sae.encode_pre(tv.vector) > 0).sum())
    tf = sw.task_features(model, sae, few, method="cleanup", vector=tv, eval_prompts=zero, lr=0.05, steps=300,
                          patience=50, progress=False)
    assert start > 10 and int(tf.history["l0"].iloc[0]) == start
    assert tf.l0 <= 10 and tf.accuracy >= 0.8
    encoded = sw.task_features(model, sae, few, method="encode", vector=tv, eval_prompts=zero)
    assert encoded.l0 == sae.k  # the TopK encoder caps L0 at k: why cleanup uses the ReLU


@pytest.mark.parametrize("name", ["uppercase", "digit", "french"])
def test_scoring_agrees_with_the_organisms_report_on_the_other_tasks(organism, truth, name):
    """The build measured (REPORT.md, greedy generation): few-shot ICL >= 80% with zero-shot
    <= 30% on these tasks. Whether their task vectors transfer is measured, not assumed
    (benchmarks/bench_tasks.py --transfer; benchmarks/README.md)."""
    model, _ = organism
    few, zero = _prompts(truth.icl_tasks[name])
    assert sw.evaluate_task_vector(model, None, few, prepend_bos=True).accuracy >= 0.8
    assert sw.evaluate_task_vector(model, None, zero, prepend_bos=True).accuracy <= 0.3
