"""Hand starts priced by measurement (hwsearch.search.pricing): each shape re-solved on the budget its
measured error allows, and the search run on the chosen shape's budget. The measurement itself is a
deterministic pricer here (the real one, timing on this host, runs in test_latency_optimize's timing test)."""
import pytest
import torch
from conftest import RECORDED, make_vit

from hwsearch.cost import Budget, MeasuredCost
from hwsearch.cost.fit import load_costmodel
from hwsearch.data import ImageSet
from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.measure import Measurement
from hwsearch.search.gradient import SearchConfig, gradient_search
from hwsearch.search.pricing import priced_starts, shape_errors
from hwsearch.search.starts import hand_starts


def _setup():
    model = CompressedViT(make_vit("deit_tiny"), merging="similarity")
    cost = MeasuredCost(load_costmodel(RECORDED / "costmodel.json"), "latency", "similarity")
    return model, cost, 0.9 * cost.dense_cost(model.depth)  # 17 tokens: coarse steps; room either way


def _pricer(errors, seen=None):
    """Measured / predicted per schedule name (1 where not given); records what it was asked to measure."""
    def price(candidates):
        if seen is not None:
            seen.append(dict(candidates))
        return {name: errors.get(name, 1.0) for name in candidates}
    return price


def test_each_hand_start_is_solved_on_the_budget_its_measured_error_allows():
    model, cost, target = _setup()
    starts = hand_starts(cost, target, model.depth, model.num_prefix, 0)
    seen = []
    priced, errors = priced_starts({"tome": starts["tome"], **starts}, _pricer({"tome": 0.95, "uniform": 1.05}, seen),
                                   cost, target, model.depth, model.num_prefix, 0)
    assert len(seen) == 1 and len(seen[0]) == len(set(map(tuple, starts.values())))  # one run, each schedule once
    assert errors["tome"] == 0.95 and errors["uniform"] == 1.05 and errors["evit"] == 1.0
    assert set(priced) == set(starts)
    # measured cheaper than predicted: solved for more predicted cost (more tokens kept), and the reverse
    assert cost.cost(priced["tome"]) > cost.cost(starts["tome"])
    assert cost.cost(priced["tome"]) == pytest.approx(target / 0.95, rel=0.03)
    assert cost.cost(priced["uniform"]) < cost.cost(starts["uniform"])
    assert priced["evit"] == starts["evit"]  # priced as predicted: unchanged


def test_the_search_runs_on_the_chosen_shapes_measured_budget():
    model, cost, target = _setup()
    gen = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (12, 3, 64, 64), dtype=torch.uint8, generator=gen), None, "random")
    cfg = SearchConfig(epochs=1, batch_size=4)
    errors = {kind: 0.92 for kind in ("tome", "uniform", "evit")}
    result = gradient_search(model, [Budget(cost, target, "latency_ms")], data, cfg, progress=False,
                             price=_pricer(errors))
    assert result.start["measured_errors"] == errors
    assert result.target == pytest.approx(target / 0.92) == result.start["budget"]
    assert result.predicted == pytest.approx(target / 0.92, rel=0.01)  # on its corrected budget (1%)
    plain = gradient_search(model, [Budget(cost, target, "latency_ms")], data, cfg, progress=False)
    exact = gradient_search(model, [Budget(cost, target, "latency_ms")], data, cfg, progress=False, price=_pricer({}))
    assert exact.counts == plain.counts and "measured_errors" not in plain.start  # priced as predicted: no change
    with pytest.raises(ValueError, match="one budget"):
        gradient_search(model, [Budget(cost, target), Budget(cost, target)], data, cfg, progress=False,
                        price=_pricer({}))
    given = gradient_search(model, [Budget(cost, target)], data, cfg, progress=False, start=result.counts,
                            price=_pricer(errors))  # a given start (a refinement) is not priced
    assert "measured_errors" not in given.start
    seen = []
    kept = gradient_search(model, [Budget(cost, target)], data, SearchConfig(epochs=1, batch_size=4, pick_start=False),
                           progress=False, price=_pricer({"tome": 0.92}, seen))  # --keep-init: its start priced
    assert [list(run) for run in seen] == [["tome"]] and kept.start["measured_errors"] == {"tome": 0.92}
    assert kept.target == pytest.approx(target / 0.92)


def test_hand_starts_keep_what_the_priced_operator_can_keep():
    """A measured error can ask a shape for a tight budget: solved on a similarity-merging cost model, the
    uniform shape (half its removed tokens merged) stays within similarity merging's cap in every block
    (it once asked block 0 for 10 -> 2 tokens, which the deploy-mode model refuses)."""
    from hwsearch.schedule import min_merge_kept

    model, cost, _ = _setup()
    for name, counts in hand_starts(cost, 0.3 * cost.dense_cost(model.depth), model.depth, model.num_prefix,
                                    0).items():
        assert all(m >= min_merge_kept(p, model.num_prefix, "similarity") for p, m in counts), name


def _measured(samples):
    return Measurement(median_ms=sorted(samples)[len(samples) // 2], p10_ms=min(samples), p90_ms=max(samples),
                       mean_ms=sum(samples) / len(samples), cv=0.0, iterations=1, repeats=len(samples), attempts=1,
                       cv_ok=True, samples_ms=list(samples))


def test_errors_are_relative_to_dense_for_a_share_of_dense_and_in_ms_for_a_budget_in_ms():
    """A host 10% slower than at profiling, a shape the model prices 5% too dear relative to dense: relative to
    dense the error is the shape's own (0.95, the drift cancels round by round); in ms it is the host's too."""
    dense = [110.0, 121.0, 99.0]  # the host drifts between rounds; the shape's rounds drift with it
    stats = {"dense": _measured(dense), "tome": _measured([0.95 * 0.5 * d for d in dense])}
    predicted, dense_predicted = {"tome": 50.0}, 100.0
    assert shape_errors(stats, predicted, dense_predicted) == {"tome": pytest.approx(0.95)}
    assert shape_errors(stats, predicted, dense_predicted, in_ms=True) == {"tome": pytest.approx(0.95 * 110 / 100)}
