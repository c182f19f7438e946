"""One conformance suite over every registered strategy (exact budget, determinism, purity)."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest

from harness.core.errors import BenchError
from harness.core.records import Prompt, Response, response_id
from harness.data.pairs import build_pairs
from harness.stages.config import SelectConfig
from harness.stages.select import run_strategy, shared_diagnostics
from strategies import BudgetError, CandidatePool, UnknownStrategy, get_strategy, register, strategy_names
from strategies._depth import allocate_depth, gini
from strategies.base import Features, Strategy


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x)


def make_pool(n_prompts: int, k: int, seed: int) -> CandidatePool:
    """A pool with real pair construction over random verifiable-style scores.

    Embeddings and gradient features are random vectors: strategies are pure functions of
    those vectors, and the real feature computations have their own tests.
    """
    rng = random.Random(seed)
    vec = np.random.default_rng(seed)
    prompts, responses, scores = [], [], {}
    for i in range(n_prompts):
        p = Prompt.make([{"role": "user", "content": f"Task {i} from pool {seed}"}], "test")
        prompts.append(p)
        for j in range(k):
            text = f"answer {j} to {i} " + "word " * rng.randint(1, 30)
            r = Response(response_id(p.id, text, "test", j), p.id, text, "test")
            responses.append(r)
            scores[r.id] = rng.choice([0.0, 0.5, 1.0])
    pairs = build_pairs(responses, scores, pairing="all", min_margin=0.0, drop_truncated=True)
    return CandidatePool(
        {p.id: p for p in prompts},
        {r.id: r for r in responses},
        scores,
        tuple(pairs),
        prompt_embeddings=Features({p.id: _unit(vec.normal(size=16)) for p in prompts}),
        response_embeddings=Features({r.id: _unit(vec.normal(size=16)) for r in responses}),
        pair_gradients=Features({p.id: _unit(vec.normal(size=32)) for p in pairs}),
    )


POOLS = [make_pool(20, 4, 0), make_pool(40, 6, 1), make_pool(12, 3, 2)]


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("pool_index", range(len(POOLS)))
@pytest.mark.parametrize("budget", [1, 5, 12])
def test_conformance(name: str, pool_index: int, budget: int) -> None:
    pool = POOLS[pool_index]
    strategy = get_strategy(name)
    params = strategy.Params()
    if budget > strategy.max_budget(pool, params):
        pytest.skip("pool too small for this budget under this strategy")
    snapshot = copy.deepcopy(pool.pairs)
    cfg = SelectConfig(strategy=name, budget=budget)
    first = run_strategy(pool, cfg, seed=3)
    again = run_strategy(pool, cfg, seed=3)
    assert first.pair_ids == again.pair_ids, "same seed must give the same selection"
    assert len(first.pair_ids) == budget and len(set(first.pair_ids)) == budget
    assert all(i in pool.pair_by_id for i in first.pair_ids)
    assert pool.pairs == snapshot, "strategies must not modify the pool"
    for pid in first.pair_ids:
        pair = pool.pair_by_id[pid]
        assert pool.scores[pair.chosen_id] > pool.scores[pair.rejected_id]
    diag = first.diagnostics
    assert sum(diag["depth"].values()) == budget
    assert all(d <= len(pool.pairs_by_prompt[p]) for p, d in diag["depth"].items())
    assert diag["breadth"] == len(diag["depth"])
    assert sum(diag["depth_histogram"].values()) == diag["breadth"]


@pytest.mark.parametrize("name", ["random", "uniform", "original", "random_depth", "margin"])
def test_random_strategies_depend_on_seed(name: str) -> None:
    pool = POOLS[1]
    cfg = SelectConfig(strategy=name, budget=10)
    picks = {tuple(run_strategy(pool, cfg, seed=s).pair_ids) for s in range(5)}
    assert len(picks) > 1


def test_shape_of_baselines() -> None:
    pool = POOLS[1]
    original = run_strategy(pool, SelectConfig(strategy="original", budget=10), seed=0)
    assert original.diagnostics["breadth"] == 10 and set(original.diagnostics["depth"].values()) == {1}
    uniform = run_strategy(pool, SelectConfig(strategy="uniform", budget=10, params={"depth": 3}), seed=0)
    assert uniform.diagnostics["breadth"] == 4
    assert sorted(uniform.diagnostics["depth"].values()) == [1, 3, 3, 3]
    for pid in original.pair_ids:  # original takes the largest-margin pair of its prompt
        pair = pool.pair_by_id[pid]
        assert pair.margin == max(p.margin for p in pool.pairs_by_prompt[pair.prompt_id])


def test_budget_too_large_is_a_clear_error() -> None:
    with pytest.raises(BenchError, match="can draw at most"):
        run_strategy(POOLS[2], SelectConfig(strategy="original", budget=500), seed=0)


def test_registry_refuses_duplicates_and_suggests_names() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register
        class Again(Strategy):
            name = "uniform"
            description = "duplicate"

    with pytest.raises(UnknownStrategy, match="Did you mean uniform"):
        get_strategy("unifrom")


def test_pairs_respect_margin_pairing_and_truncation() -> None:
    p = Prompt.make([{"role": "user", "content": "x"}], "test")
    texts = ["a", "b", "c", "d"]
    values = [1.0, 0.5, 0.5, 0.0]
    rs = [Response(response_id(p.id, t, "g", i), p.id, t, "g", truncated=(t == "d")) for i, t in enumerate(texts)]
    scores = {r.id: v for r, v in zip(rs, values)}
    all_pairs = build_pairs(rs, scores, pairing="all", min_margin=0.0, drop_truncated=False)
    assert len(all_pairs) == 5  # 6 combinations minus the tie b/c
    kept = build_pairs(rs, scores, pairing="all", min_margin=0.0, drop_truncated=True)
    assert all(rs[3].id not in (q.chosen_id, q.rejected_id) for q in kept) and len(kept) == 2
    assert len(build_pairs(rs, scores, pairing="all", min_margin=0.5, drop_truncated=False)) == 1
    assert len(build_pairs(rs, scores, pairing="best_vs_rest", min_margin=0.0, drop_truncated=False)) == 3
    (bw,) = build_pairs(rs, scores, pairing="best_worst", min_margin=0.0, drop_truncated=False)
    assert (bw.chosen_id, bw.rejected_id, bw.margin) == (rs[0].id, rs[3].id, 1.0)


def test_length_matched_pairing_keeps_only_pairs_of_similar_length() -> None:
    from harness.data.pairs import relative_length_gap

    p = Prompt.make([{"role": "user", "content": "x"}], "test")
    texts = [
        "one two three four five six seven eight nine ten",
        "one two three four five six seven eight nine",
        "one two",
        "a b c d e",
    ]
    values = [1.0, 0.75, 0.5, 0.0]
    rs = [Response(response_id(p.id, t, "g", i), p.id, t, "g") for i, t in enumerate(texts)]
    scores = {r.id: v for r, v in zip(rs, values)}
    assert len(build_pairs(rs, scores, pairing="all", min_margin=0.0, drop_truncated=True)) == 6
    matched = build_pairs(rs, scores, pairing="all", min_margin=0.0, drop_truncated=True, max_length_gap=0.5)
    # 10 vs 9 words (gap 0.1), 10 vs 5 (0.5) and 9 vs 5 (0.44) stay; 2 vs anything longer than 4 words goes
    assert {(q.chosen_id, q.rejected_id) for q in matched} == {
        (rs[0].id, rs[1].id),
        (rs[0].id, rs[3].id),
        (rs[1].id, rs[3].id),
    }
    assert all(
        relative_length_gap(*(next(r.text for r in rs if r.id == i) for i in (q.chosen_id, q.rejected_id))) <= 0.5
        for q in matched
    )
    assert relative_length_gap("", "") == 0.0 and relative_length_gap("a", "") == 1.0


def test_shared_diagnostics_report_length_gap() -> None:
    pool = POOLS[0]
    sel = run_strategy(pool, SelectConfig(strategy="random", budget=8), seed=0)
    diag = shared_diagnostics(sel, pool)
    words = [
        len(pool.responses[pool.pair_by_id[i].chosen_id].text.split())
        - len(pool.responses[pool.pair_by_id[i].rejected_id].text.split())
        for i in sel.pair_ids
    ]
    assert diag["length_gap_words"] == pytest.approx(np.mean(words))


@pytest.mark.parametrize("seed", range(30))
def test_allocate_depth_meets_budget_within_capacity(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 15))
    capacity = rng.integers(1, 7, n)
    budget = int(rng.integers(n, capacity.sum() + 1))
    weights = rng.dirichlet(np.ones(n) * float(rng.choice([0.1, 1.0, 10.0])))
    depth = allocate_depth(weights, capacity, budget)
    assert depth.sum() == budget and (depth >= 1).all() and (depth <= capacity).all()
    if (capacity >= budget).all():  # no clipping at the top: heavier weight never gets less depth
        order = np.argsort(weights)
        assert (np.diff(depth[order]) >= -1).all()


def test_allocate_depth_refuses_impossible_budgets() -> None:
    with pytest.raises(BudgetError):
        allocate_depth(np.ones(3), np.array([1, 1, 1]), 4)
    with pytest.raises(BudgetError):
        allocate_depth(np.ones(3), np.array([5, 5, 5]), 2)


def test_gini() -> None:
    assert gini([2, 2, 2, 2]) == pytest.approx(0.0)
    assert gini([1, 1, 1, 9]) > gini([2, 3, 3, 4]) > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ablations_share_bpo_breadth(seed: int) -> None:
    pool = POOLS[1]
    breadth = {}
    for name in ("bpo", "random_depth", "length_depth", "embedding_depth"):
        sel = run_strategy(pool, SelectConfig(strategy=name, budget=24), seed=seed)
        breadth[name] = set(sel.diagnostics["depth"])
    assert len({frozenset(b) for b in breadth.values()}) == 1


def test_bpo_gives_central_prompts_of_useful_clusters_more_depth() -> None:
    """Two tight clusters of prompts, one aligned with the mean gradient: it gets the depth."""
    base = POOLS[1]
    rng = np.random.default_rng(0)
    direction = _unit(rng.normal(size=32))
    other = _unit(rng.normal(size=32))
    prompt_ids = sorted(base.pairs_by_prompt)
    aligned = set(prompt_ids[::2])
    grads = {}
    for pid in prompt_ids:
        centre = direction if pid in aligned else other
        for pair in base.pairs_by_prompt[pid]:
            grads[pair.id] = _unit(centre + 0.05 * rng.normal(size=32))
    pool = CandidatePool(
        base.prompts,
        base.responses,
        base.scores,
        base.pairs,
        base.prompt_embeddings,
        base.response_embeddings,
        Features(grads),
    )
    sel = run_strategy(
        pool, SelectConfig(strategy="bpo", budget=30, params={"clusters": 2, "usefulness": "validation"}), seed=0
    )
    depth = sel.diagnostics["depth"]
    in_aligned = sum(d for p, d in depth.items() if p in aligned)
    in_other = sum(d for p, d in depth.items() if p not in aligned)
    assert sel.diagnostics["clusters"] == 2 and sel.diagnostics["depth_gini"] > 0
    assert len(aligned & set(depth)) > 0 and len(set(depth) - aligned) > 0
    assert in_aligned / max(len(aligned & set(depth)), 1) > in_other / max(len(set(depth) - aligned), 1)


def test_margin_takes_the_largest_margins_and_less_keeps_validation_out() -> None:
    pool = POOLS[1]
    sel = run_strategy(pool, SelectConfig(strategy="margin", budget=10), seed=0)
    picked = sorted((pool.pair_by_id[i].margin for i in sel.pair_ids), reverse=True)
    assert picked == sorted((p.margin for p in pool.pairs), reverse=True)[:10]
    less = run_strategy(pool, SelectConfig(strategy="less", budget=10, params={"validation_fraction": 0.2}), seed=0)
    assert less.diagnostics["validation_prompts"] == round(0.2 * len(pool.pairs_by_prompt))
    assert less.diagnostics["selected_cosine_mean"] >= less.diagnostics["candidate_cosine_mean"]


def test_gradient_coverage_is_reported_only_where_features_exist() -> None:
    pool = POOLS[1]
    sel = run_strategy(pool, SelectConfig(strategy="original", budget=10), seed=0)
    assert sel.diagnostics["gradient_clusters_covered"] is None
    rng = np.random.default_rng(0)
    prompt_grads = Features({p: _unit(rng.normal(size=32)) for p in pool.pairs_by_prompt})
    with_grads = CandidatePool(
        pool.prompts,
        pool.responses,
        pool.scores,
        pool.pairs,
        pool.prompt_embeddings,
        pool.response_embeddings,
        pool.pair_gradients,
        prompt_grads,
    )
    diag = run_strategy(with_grads, SelectConfig(strategy="original", budget=10), seed=0).diagnostics
    assert 1 <= diag["gradient_clusters_covered"] <= diag["gradient_clusters"]
    assert sum(diag["pairs_per_gradient_cluster"]) == 10


@pytest.mark.parametrize("reference", ["uniform", "random", "margin"])
def test_control_shuffled_uses_the_reference_pairs_and_flips_about_half(reference: str) -> None:
    from harness.stages.select import training_pairs

    pool = POOLS[1]
    ref = run_strategy(pool, SelectConfig(strategy=reference, budget=12), seed=5)
    ctrl = run_strategy(
        pool, SelectConfig(strategy="control_shuffled", budget=12, params={"reference": reference}), seed=5
    )
    assert ctrl.pair_ids == ref.pair_ids, "the control trains on exactly the reference's pairs"
    assert 0 < len(ctrl.flipped) < 12 and ctrl.diagnostics["n_flipped"] == len(ctrl.flipped)
    assert (
        ctrl.flipped
        == run_strategy(
            pool, SelectConfig(strategy="control_shuffled", budget=12, params={"reference": reference}), seed=5
        ).flipped
    )
    for pair in training_pairs(ctrl, pool):
        original = pool.pair_by_id[pair.id]
        if pair.id in ctrl.flipped:
            assert (pair.chosen_id, pair.rejected_id) == (
                original.rejected_id,
                original.chosen_id,
            ) and pair.margin == -original.margin
        else:
            assert pair == original
    # the length gap is measured on what is trained: flipping every pair negates it
    all_flipped = run_strategy(
        pool,
        SelectConfig(strategy="control_shuffled", budget=12, params={"reference": reference, "flip_probability": 1.0}),
        seed=5,
    )
    assert all_flipped.diagnostics["length_gap_words"] == pytest.approx(-ref.diagnostics["length_gap_words"])


def test_control_shuffled_needs_what_its_reference_needs_and_refuses_itself() -> None:
    from pydantic import ValidationError

    control = get_strategy("control_shuffled")
    assert control.needs(control.Params(reference="bpo")) == {"embeddings", "gradients"}
    assert control.needs(control.Params(reference="random")) == frozenset()
    with pytest.raises(ValidationError, match="another strategy"):
        control.Params(reference="control_shuffled")
    with pytest.raises(ValidationError, match="Did you mean uniform"):
        control.Params(reference="unifrom")


def test_margin_order_high_and_low() -> None:
    """order: high keeps the largest margins (the default, as before), low the smallest."""
    pool = POOLS[1]
    margins = sorted(p.margin for p in pool.pairs)
    high = run_strategy(pool, SelectConfig(strategy="margin", budget=10), seed=0)
    low = run_strategy(pool, SelectConfig(strategy="margin", budget=10, params={"order": "low"}), seed=0)
    assert sorted(pool.pair_by_id[i].margin for i in high.pair_ids) == margins[-10:]
    assert sorted(pool.pair_by_id[i].margin for i in low.pair_ids) == margins[:10]
    assert (
        high.pair_ids
        == run_strategy(pool, SelectConfig(strategy="margin", budget=10, params={"order": "high"}), seed=0).pair_ids
    )
