"""Token-set enrichment: the rank formula against our own float64 running-sum walk (written
from the method statement), against the installed SAELens package when it is importable,
the significance tests against scipy, and the end-to-end API on real (tiny) models."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp, kstwobign, mannwhitneyu

import saewidgets as sw
from saewidgets.logit_lens.ranks import TokenSets, benjamini_hochberg, ks_p_value, mann_whitney_p, rank_scores, score_rows
from tiny_models import random_sae, tiny_model


def walk(w: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The method as stated (methods.md section 1): sort the vocabulary by ``w`` descending and
    walk it, adding 1/|S| at a member of S and subtracting 1/(V-|S|) otherwise; float64
    running sums, one per token (a stable sort orders exactly equal weights by token id)."""
    member = np.zeros(w.size, bool)
    member[ids] = True
    m = member.sum()
    steps = np.where(member[np.argsort(-w.astype(np.float64), kind="stable")], 1.0 / m, -1.0 / (w.size - m))
    return np.cumsum(steps)


def reference_es(w: np.ndarray, ids: np.ndarray) -> float:
    """Our definition of the signed score: the same walk taken one GROUP of equal weights at a
    time (no tie order assumed), in exact integers (n per member, -m per non-member, over
    m n); the running sum of largest magnitude, positive when the highest and the lowest
    are exactly as large."""
    member = np.zeros(w.size, bool)
    member[ids] = True
    m, n = int(member.sum()), int((~member).sum())
    values, group = np.unique(-w.astype(np.float64), return_inverse=True)  # groups in descending w
    hits = np.bincount(group, weights=member, minlength=values.size).astype(np.int64)
    sizes = np.bincount(group, minlength=values.size).astype(np.int64)
    running = np.concatenate([[0], np.cumsum(hits * n - (sizes - hits) * m)])
    high, low = int(running.max()), int(running.min())
    return (high if high >= -low else low) / (m * n)


def reference_table(weights: np.ndarray, sets: list[np.ndarray]) -> np.ndarray:
    return np.array([[reference_es(w, ids) for ids in sets] for w in weights])


@pytest.fixture(scope="module")
def data():
    from scipy.special import ndtri

    rng = np.random.default_rng(0)
    V = 3001
    # Gaussian-shaped weights without exact float32 ties (those are tested separately)
    weights = ndtri((np.stack([rng.permutation(V) for _ in range(12)]) + 0.5) / V).astype(np.float32)
    weights[3, :40] += 2.5  # a promoted block
    weights[4, 100:300] -= 1.5  # a suppressed block
    assert all(np.unique(row).size == V for row in weights)
    sets = [np.arange(40), np.arange(100, 300), rng.choice(V, 1, replace=False), rng.choice(V, 1500, replace=False),
            rng.choice(V, 3000, replace=False), rng.choice(V, 77, replace=False)]
    return weights, [np.sort(s) for s in sets]


def test_scores_equal_the_running_sum_walk(data):
    weights, sets = data
    scores = rank_scores(weights, sets)
    np.testing.assert_allclose(scores.es, reference_table(weights, sets), rtol=0, atol=1e-12)
    literal = np.array([[np.abs(walk(w, ids)).max() for ids in sets] for w in weights])
    np.testing.assert_allclose(np.abs(scores.es), literal, rtol=0, atol=1e-12)  # no ties here: the same walk
    assert scores.es[3, 0] > 0.5 and scores.es[4, 1] < -0.4


def _saelens_tsea():
    pytest.importorskip("sae_lens", reason="sae-lens is not installed (pip install sae-lens)")
    for name in ("sae_lens.tutorial.tsea", "sae_lens.analysis.tsea"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip("this sae-lens has no tsea module")


def test_scores_equal_installed_saelens(data):
    """SAELens's published calculate_batch_enrichment_scores, from the installed package."""
    tsea = _saelens_tsea()
    weights, sets = data
    width = max(s.size for s in sets)
    index_lists = torch.tensor(np.stack([np.pad(s, (0, width - s.size), constant_values=-1) for s in sets]))
    published = tsea.calculate_batch_enrichment_scores(torch.from_numpy(weights), index_lists).T.numpy()
    np.testing.assert_allclose(np.abs(rank_scores(weights, sets).es), published, rtol=0, atol=2e-5)  # its float32 cumsum


def test_mann_whitney_matches_scipy(data):
    weights, sets = data
    scores = rank_scores(weights, sets)
    sizes = np.array([s.size for s in sets], dtype=float)
    z, p, log10_p = mann_whitney_p(scores.u, sizes[None], weights.shape[1], scores.tie_term)
    for row in range(weights.shape[0]):
        for col, ids in enumerate(sets):
            member = np.zeros(weights.shape[1], bool)
            member[ids] = True
            ref = mannwhitneyu(weights[row, member], weights[row, ~member], method="asymptotic")
            assert scores.u[row, col] == pytest.approx(ref.statistic, abs=1e-6)
            assert p[row, col] == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-12)
            if ref.pvalue > 0:
                assert log10_p[row, col] == pytest.approx(np.log10(ref.pvalue), rel=1e-6, abs=1e-9)
    assert z[3, 0] > 5 and z[4, 1] < -5


def test_heavy_ties_are_scored_tie_aware(data):
    weights, sets = data
    tied = np.round(weights[:4] * 2) / 2  # a few distinct values: heavy ties
    tied[1] = 0.0  # a dead feature
    scores = rank_scores(tied.astype(np.float32), sets)
    for row in range(4):
        for col, ids in enumerate(sets):
            assert scores.es[row, col] == pytest.approx(reference_es(tied[row], ids), abs=1e-12)
            member = np.zeros(tied.shape[1], bool)
            member[ids] = True
            if row != 1:
                ref = mannwhitneyu(tied[row, member], tied[row, ~member], method="asymptotic")
                assert scores.u[row, col] == pytest.approx(ref.statistic, abs=1e-6)
    assert (scores.es[1] == 0).all()
    sizes = np.array([s.size for s in sets], dtype=float)
    _, p, _ = mann_whitney_p(scores.u, sizes[None], tied.shape[1], scores.tie_term)
    assert (p[1] == 1).all()


def test_a_few_exact_ties_count_as_one_step(data):
    weights, sets = data
    tied = weights[:6].copy()
    for row in range(6):  # give some members the weight of a non-member next to them, and vice versa
        for token in (0, 5, 120, 2000, 2999):
            tied[row, token] = tied[row, token + 1]
    scores = rank_scores(tied, sets)
    for row in range(6):
        for col, ids in enumerate(sets):
            assert scores.es[row, col] == pytest.approx(reference_es(tied[row], ids), abs=1e-12)
            member = np.zeros(tied.shape[1], bool)
            member[ids] = True
            ref = mannwhitneyu(tied[row, member], tied[row, ~member], method="asymptotic")
            assert scores.u[row, col] == pytest.approx(ref.statistic, abs=1e-6)
    assert (scores.tie_term == 5 * 6).all()  # five pairs: 2^3 - 2 each


def test_an_extreme_at_the_end_of_a_tie_group():
    """The lowest running sum in sort order sits just before the LAST token of a tie group
    (a member sorted after a tied non-member): the tie-aware score reads it before the group.
    Tokens 3 and 4 tie; with either of them the member, one of the two sets puts the member
    last in the group, whatever order the sort gives equal weights."""
    for weights in (np.array([[5, 4, 3, 2, 2, 1]], np.float32), np.array([[-1, -2, -3, -4, -4, -5]], np.float32)):
        for members in ([np.array([3, 5])], [np.array([4, 5])]):
            expected = reference_es(weights[0], members[0])
            assert expected == -0.75  # the sort-order walk can reach -8/8 inside the group
            assert rank_scores(weights, members).es[0, 0] == expected
            assert score_rows(weights, TokenSets(members, 6), with_u=False)[0][0, 0] == expected


def test_scores_without_u_are_the_same_even_with_ties(data):
    """es alone (logit_lens_table's path) looks for tie groups only when an extreme touches one."""
    weights, sets = data
    tied = weights.copy()
    tied[::2] = np.round(tied[::2] * 8) / 8  # heavy ties
    tied[1::4, :50] = tied[1::4, 50:100]  # a few
    token_sets = TokenSets(sets, tied.shape[1])
    with_u, without_u = score_rows(tied, token_sets), score_rows(tied, token_sets, with_u=False)
    assert np.array_equal(with_u[0], without_u[0])
    np.testing.assert_allclose(without_u[0], reference_table(tied, sets), rtol=0, atol=1e-12)


def test_large_vocabulary_uses_wide_ranks():
    rng = np.random.default_rng(1)
    weights = rng.standard_normal((3, 70001)).astype(np.float32)
    weights[2, :300] = weights[2, 300:600]  # ties in a 32-bit-rank vocabulary
    sets = [np.sort(rng.choice(70001, 500, replace=False)), np.sort(rng.choice(70001, 40000, replace=False))]
    scores = rank_scores(weights, sets)
    np.testing.assert_allclose(scores.es, reference_table(weights, sets), rtol=0, atol=1e-12)
    member = np.zeros(70001, bool)
    member[sets[1]] = True
    w = weights[2].astype(np.float64)  # scipy returns U in its input's dtype: float32 would round it
    ref = mannwhitneyu(w[member], w[~member], method="asymptotic")
    assert scores.u[2, 1] == pytest.approx(ref.statistic, abs=1e-6)


def test_es_magnitude_is_the_two_sample_ks_statistic_even_with_ties(data):
    weights, sets = data
    tied = np.round(weights[:3] * 4) / 4
    scores = rank_scores(tied.astype(np.float32), sets)
    for row in range(3):
        for col, ids in enumerate(sets[:4]):
            member = np.zeros(tied.shape[1], bool)
            member[ids] = True
            assert abs(scores.es[row, col]) == pytest.approx(ks_2samp(tied[row, member], tied[row, ~member]).statistic, abs=1e-12)
    p, log10_p = ks_p_value(np.array([[0.0, 0.2, 0.9]]), np.array([[40.0]]), 1000)
    x = np.array([0.0, 0.2, 0.9]) * np.sqrt(40 * 960 / 1000)
    np.testing.assert_allclose(p[0], kstwobign.sf(x), rtol=1e-12)
    np.testing.assert_allclose(log10_p[0, 1:], np.log10(kstwobign.sf(x[1:])), rtol=1e-9)


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # sorted 0.01, 0.03, 0.04, 0.2 -> 0.04, 0.06, 0.0533, 0.2 -> running min from the top
    np.testing.assert_allclose(benjamini_hochberg(p), [0.04, 0.0533333333, 0.0533333333, 0.2])


# -- the API on a real model --------------------------------------------------------------------
@pytest.fixture(scope="module")
def binding():
    return sw.bind(tiny_model("gpt2"), random_sae(32, 64, layer=1))


def test_enrichment_table_matches_the_reference_on_model_weights(binding):
    classes = sw.token_classes(binding).select(["starts_with_space", "lower", "digits", "punctuation"])
    table = sw.enrichment(binding, list(range(20)), classes, chunk_size=6, progress=False)
    assert list(table.columns) == ["feature", "set", "size", "es", "direction", "ks_p", "ks_q", "log10_ks_p",
                                   "auroc", "z", "p_value", "q_value", "log10_p"]
    assert len(table) == 20 * 4
    weights = sw.logit_weights(binding, list(range(20))).numpy()
    sets = [classes.ids(n) for n in classes]
    np.testing.assert_allclose(table["es"].to_numpy().reshape(20, 4), reference_table(weights, sets), rtol=0, atol=1e-12)
    assert (table["direction"] == np.where(table["es"] > 0, "promoted", "suppressed")).all()
    assert table["set"].tolist()[:4] == classes.names and table["size"].tolist()[:4] == [len(s) for s in sets]
    member = classes["digits"]
    ref = mannwhitneyu(weights[5, member], weights[5, ~member], method="asymptotic")
    row = table[(table.feature == 5) & (table.set == "digits")].iloc[0]
    assert row.auroc == pytest.approx(ref.statistic / (member.sum() * (~member).sum()))
    assert row.p_value == pytest.approx(ref.pvalue, rel=1e-6)
    ks = ks_2samp(weights[5, member], weights[5, ~member], method="asymp")
    assert abs(row.es) == pytest.approx(ks.statistic, abs=1e-9)  # |es| is the two-sample KS statistic
    en = member.sum() * (~member).sum() / member.size
    assert row.ks_p == pytest.approx(kstwobign.sf(np.sqrt(en) * ks.statistic), rel=1e-9)


def test_a_planted_direction_is_found(binding):
    """A direction built from some tokens' unembedding columns promotes them; its negative suppresses them."""
    ids = np.arange(200, 206)
    W_U = binding.unembedding()
    direction = W_U[:, ids].sum(dim=1)
    sets = {"planted": ids, "digits": sw.token_classes(binding)["digits"]}
    table = sw.enrichment(binding, torch.stack([direction, -direction]), sets, fold_norm=False, progress=False)
    planted = table[table.set == "planted"]
    assert planted.es.iloc[0] > 0.7 and planted.direction.iloc[0] == "promoted" and planted.auroc.iloc[0] > 0.95
    assert planted.es.iloc[1] < -0.7 and planted.direction.iloc[1] == "suppressed" and planted.auroc.iloc[1] < 0.05
    assert planted.p_value.max() < 1e-3


def test_set_inputs_and_errors(binding):
    V = binding.vocab_size
    by_names = sw.enrichment(binding, [1, 2], ["digits", "lower"], progress=False)
    classes = sw.token_classes(binding)
    by_mapping = sw.enrichment(binding, [1, 2], {"digits": classes["digits"], "lower": classes.ids("lower").tolist()}, progress=False)
    np.testing.assert_allclose(by_names.es, by_mapping.es)
    default = sw.enrichment(binding.model, binding.sae, [1], progress=False)
    assert "starts_with_space" in set(default.set)
    every = sw.enrichment(binding, None, ["digits"], progress=False)  # None: every feature
    assert len(every) == binding.d_sae and set(every.set) == {"digits"}
    assert len(sw.enrichment(binding, features=[3], sets=["digits"], progress=False)) == 1
    with pytest.warns(UserWarning, match="dropped.*empty_set \\(empty\\).*everything \\(every token\\)"):
        sw.enrichment(binding, [1], {"empty_set": [], "everything": np.ones(V, bool), "digits": classes["digits"]}, progress=False)
    with pytest.raises(ValueError, match="no usable token set"), pytest.warns(UserWarning):
        sw.enrichment(binding, [1], {"empty_set": []}, progress=False)
    with pytest.raises(ValueError, match="unknown token class 'nope'"):
        sw.enrichment(binding, [1], ["nope"], progress=False)
    with pytest.raises(ValueError, match="one entry per token"):
        sw.enrichment(binding, [1], {"short": np.ones(5, bool)}, progress=False)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        sw.enrichment(binding, [1], {"far": [V + 3]}, progress=False)
    with pytest.raises(ValueError, match="sets must be"):
        sw.enrichment(binding, [1], 3.5, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        sw.enrichment(binding, [999], ["digits"], progress=False)


# Targets on the organism's 10 concepts (stated, not copied from a run: the shipped build measures
# 8/10 for the first two and 6/10 for the last): a clear majority is enriched as its world says,
# and at least half of the concept features rank their own concept first.
MAJORITY, HALF = 7, 5


@pytest.fixture(scope="module")
def organism():
    gt = sw.organism_ground_truth()  # shipped in the package: never skipped
    model, sae = sw.organism()
    binding = sw.bind(model, sae)
    classes = sw.token_classes(binding)
    for concept, words in gt.concepts.items():
        classes.add_words(concept, words)
    return gt, binding, classes.select(list(gt.concepts))


def _context_activations(binding, concepts):
    """SAE activations at the last token of each concept's left contexts (the organism's
    templates, cut just before the concept word: where the world predicts that concept)."""
    from tools.organism.templates import CONTEXTS

    prompts, labels = [], []
    for concept in concepts:
        for template in CONTEXTS[concept]:
            prefix = template.split("{w}")[0].replace("{a}", "an" if concept == "animal" else "a").rstrip()
            if prefix:
                prompts.append(prefix)
                labels.append(concept)
    lengths = [len(binding.tokenizer(p).input_ids) for p in prompts]
    acts = torch.zeros(len(prompts), binding.d_sae)
    for length in sorted(set(lengths)):  # same-length batches: no padding
        batch = [i for i, n in enumerate(lengths) if n == length]
        with torch.no_grad(), binding.model.trace([prompts[i] for i in batch]):
            resid = binding.resid().save()
        acts[batch] = binding.sae.encode(resid[:, -1])
    return acts.numpy(), np.array(labels)


@pytest.mark.slow
def test_organism_prediction_features_are_enriched_for_the_concept_they_predict(organism):
    """Ground truth from the organism's world. For each concept, take the SAE feature most
    selectively active where a template's left context calls for that concept next (read
    from activations, the input side); its logit lens (the output side) must be enriched
    for that concept's words above every other concept's."""
    gt, binding, sets = organism
    concepts = list(gt.concepts)
    acts, labels = _context_activations(binding, concepts)
    mean = np.stack([acts[labels == c].mean(axis=0) for c in concepts])
    chosen = {}
    for i, concept in enumerate(concepts):
        selectivity = mean[i] - np.delete(mean, i, axis=0).max(axis=0)
        chosen[concept] = int(selectivity.argmax())
    table = sw.enrichment(binding, list(chosen.values()), sets, progress=False)
    hits = []
    for concept, feature in chosen.items():
        rows = table[table.feature == feature].set_index("set")
        if rows.es.idxmax() == concept and rows.loc[concept, "ks_q"] < 1e-3:
            hits.append(concept)
    assert len(hits) >= MAJORITY, (hits, chosen)


@pytest.mark.slow
def test_organism_concept_features_promote_their_own_concept(organism):
    """The ground truth's concept features fire ON a concept's words. The organism's stories
    often keep to one concept ("I saw a fox. Later an owl ..."), so having just read a concept's
    word predicts more of them: the features' logit lens is enriched for their own concept.
    Measured on the shipped build: own set positive with KS q < 1e-3 for 8/10, the top set for
    6/10 (number leans to colours, food to emotions, name to professions, instrument to cities)."""
    gt, binding, sets = organism
    concepts = list(gt.concepts)
    table = sw.enrichment(binding, [gt.feature(c) for c in concepts], sets, progress=False)
    own, top = [], []
    for concept in concepts:
        rows = table[table.feature == gt.feature(concept)].set_index("set")
        if rows.loc[concept, "es"] > 0 and rows.loc[concept, "ks_q"] < 1e-3:
            own.append(concept)
        if rows.es.idxmax() == concept:
            top.append(concept)
    assert len(own) >= MAJORITY and len(top) >= HALF, (own, top)


@pytest.mark.slow
def test_organism_kinds_against_random_directions(organism):
    gt, binding, sets = organism
    stats = sw.logit_stats(binding, k=10, progress=False)
    thresholds = stats.attrs["kind_thresholds"]
    assert thresholds["bimodality"] > 0.75  # random directions already split this clustered vocabulary
    fixed = sw.logit_stats(binding, k=0, random_baseline=False, progress=False)
    assert (fixed.kind == "partition").sum() > 5 * max(1, (stats.kind == "partition").sum())
    # calibrated: a few features stand out ("prediction": a small set of tokens promoted far above
    # the rest; on the shipped build sentence starts and nouns after "the"), not hundreds
    predictions = stats[stats.kind == "prediction"]
    assert 1 <= len(predictions) <= 0.1 * len(stats), predictions[["feature", "top_tokens"]]
    random_rows = torch.randn(512, binding.d_model, generator=torch.Generator().manual_seed(7))
    assert (sw.logit_stats(binding, random_rows, k=0, progress=False).kind != "none").mean() < 0.02
