"""Free rates: any count reachable from any start, every update back on the budget; which rates ``auto`` runs."""
from dataclasses import replace

import pytest
import timm
import torch
from conftest import make_vit

from hwsearch.cost import Budget, FlopsCost
from hwsearch.data import ImageSet
from hwsearch.model.vit import CompressedViT
from hwsearch.schedule import Schedule
from hwsearch.search.baselines import solve
from hwsearch.search.fractions import FractionRates, project_out
from hwsearch.search.gradient import SearchConfig, gradient_search


@pytest.fixture(scope="module")
def vit_s_cost():
    """FLOPs of a full-size ViT-S/14 at 224 px (257 tokens, 12 blocks): no forward pass needed."""
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224)
    return {m: FlopsCost.from_model(vit, m) for m in ("rank", "similarity")}


@pytest.mark.parametrize("merging", ["rank", "similarity"])
@pytest.mark.parametrize("start", ["flat", "tome", "evit", "uniform"])
def test_rates_reach_the_extreme_counts_from_any_start(vit_s_cost, merging, start):
    cost = vit_s_cost[merging]
    rates = FractionRates(12, 257, 1, merging=merging)
    if start != "flat":
        rates.init_from(solve(start, cost, 0.6 * cost.dense_cost(12), 12, 1))
    dense = cost.dense_cost(12)
    rates.retract([Budget(cost, dense)])  # everything kept
    assert rates.counts(rates()) == [(257, 257)] * 12
    rates.retract([Budget(cost, 1e-9)])  # as little as the operator allows
    counts = rates.counts(rates())
    assert counts[1][0] == 2 or merging == "similarity"
    assert all(m <= 3 for _, m in counts[3:])  # the minimum (similarity halves per block at most)
    Schedule.from_counts("m", 224, 257, 1, counts, merging=merging)


@pytest.mark.parametrize("merging", ["rank", "similarity"])
def test_every_retraction_lands_within_one_percent_of_the_budget(vit_s_cost, merging):
    cost = vit_s_cost[merging]
    budget = Budget(cost, 0.6 * cost.dense_cost(12))
    rates = FractionRates(12, 257, 1, merging=merging)
    gen = torch.Generator().manual_seed(0)
    for _ in range(25):  # random updates of the size an Adam step makes, then the retraction
        with torch.no_grad():
            for p in (rates.prune_logits, rates.merge_logits):
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        rates.retract([budget])
        value = cost.cost(rates.counts(rates()))
        assert 0.99 * budget.target <= value <= budget.target


def test_project_out_removes_the_cost_direction():
    task, cost = [torch.tensor([1.0, 2.0]), torch.tensor([3.0])], [torch.tensor([0.0, 1.0]), torch.tensor([1.0])]
    out = project_out(task, cost)
    assert sum(float((t * c).sum()) for t, c in zip(out, cost, strict=True)) == pytest.approx(0.0)


def test_fraction_search_moves_tokens_and_stays_on_the_budget():
    vit = make_vit("deit_small", depth=6)  # 37 tokens
    gen = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (64, 3, 96, 96), dtype=torch.uint8, generator=gen), None, "random")
    cost = FlopsCost.from_model(vit)
    target = 0.6 * cost.dense_cost(6)
    config = SearchConfig(epochs=4, batch_size=8, accumulate=2, lr=0.05, rates="fractions", init="evit",
                          pick_start=False)  # the rates from this start
    result = gradient_search(CompressedViT(vit), [Budget(cost, target)], data, config, progress=False)
    assert result.steps == 16 and len(result.history) == 16
    assert 0.9 * target <= result.predicted <= target  # on the budget at the end (37 tokens: coarse steps)
    move = result.movement
    assert move["initial"] != move["final"] and move["largest_move"] >= 1
    assert len(move["initial"]) == len(move["final"]) == 6


def test_normalized_descent_moves_the_largest_coordinate_by_lr_and_keeps_ratios():
    from hwsearch.search.fractions import NormalizedDescent

    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    optim = NormalizedDescent([a, b], lr=0.05)
    a.grad, b.grad = torch.tensor([4.0, -1.0]), torch.tensor([0.4])
    optim.step()
    assert torch.allclose(a.detach(), torch.tensor([-0.05, 0.0125]))  # Adam would move both by ~lr
    assert torch.allclose(b.detach(), torch.tensor([-0.005]))
    a.grad, b.grad = torch.zeros(2), torch.zeros(1)
    optim.step()  # a zero gradient moves nothing
    assert torch.allclose(a.detach(), torch.tensor([-0.05, 0.0125]))


def test_auto_rates_are_ddp_and_a_measured_budget_gets_a_gmacs_proxy_at_the_start(vit_s_cost):
    from conftest import RECORDED

    from hwsearch.cost import MeasuredCost
    from hwsearch.cost.fit import load_costmodel
    from hwsearch.search.gradient import proxy_budgets

    gmacs = [Budget(vit_s_cost["similarity"], 1.0)]
    measured = gmacs + [Budget(MeasuredCost(load_costmodel(RECORDED / "costmodel.json")), 1.0)]  # a real fit
    ddp = SearchConfig(rates="ddp", lr=0.1, accumulate=1, optimizer="adamw")
    assert SearchConfig().resolved(gmacs) == ddp and SearchConfig().resolved(measured) == ddp
    chosen = SearchConfig(rates="fractions", lr=0.2, accumulate=1, optimizer="adamw")
    assert chosen.resolved(gmacs) == chosen  # what is given stays
    with pytest.raises(ValueError, match="unknown rates"):
        SearchConfig(rates="logits").resolved(gmacs)
    model = CompressedViT(make_vit("deit_tiny"), merging="similarity")
    start = [(17, 12), (12, 8), (8, 6), (6, 4)]
    proxy = proxy_budgets(model, measured, start, "similarity")
    flops = FlopsCost.from_model(model.vit, "similarity")
    assert len(proxy) == 1 and proxy[0].name == "gmacs" and not proxy[0].cost.measured
    assert proxy[0].target == pytest.approx(flops.cost(start))  # the start's GMACs: DDP trades tokens at its cost
    assert proxy_budgets(model, [Budget(flops, 1.0)], start, "similarity") is None  # nothing measured: no proxy


def _measured_budget(model: CompressedViT, fraction: float) -> list[Budget]:
    from conftest import RECORDED

    from hwsearch.cost import MeasuredCost
    from hwsearch.cost.fit import load_costmodel

    cost = MeasuredCost(load_costmodel(RECORDED / "costmodel.json"), "latency", "similarity")  # a real fit
    return [Budget(cost, fraction * cost.dense_cost(model.depth), "latency_ms")]


def _random_set() -> ImageSet:
    gen = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 256, (32, 3, 64, 64), dtype=torch.uint8, generator=gen), None, "random")


def test_auto_rates_descend_again_priced_by_gmacs_where_the_measured_ddp_does_not_beat_its_start():
    """On a measured budget ``auto`` runs DDP priced by the measured model; where it does not beat its warm start on
    the search images (here: a start on the rates' grid, sharply peaked, and a learning rate too small to move it),
    DDP priced by GMACs descends from the same start, its schedule is judged on the measured budget, and the
    selection and history record both."""
    from hwsearch.search.optimize import describe_selection

    model = CompressedViT(make_vit("deit_tiny"), merging="similarity")
    start, data = [(17, 13), (13, 9), (9, 9), (9, 5)], _random_set()
    cost = _measured_budget(model, 1.0)[0].cost
    budget = [Budget(cost, cost.cost(start), "latency_ms")]
    still = SearchConfig(epochs=1, batch_size=4, lr=1e-9, init_sharpness=50.0, pick_start=False)
    both = gradient_search(model, budget, data, still, progress=False, start=start)
    assert both.selection["first"] == {"rates": "ddp", "kept": "warm start"} and both.selection["priced_by"] == "gmacs"
    assert both.config.rates == "ddp" and both.steps == 8 + 8 == len(both.history)  # 32 images, 4 per update, twice
    assert [h.get("priced_by") for h in both.history] == [None] * 8 + ["gmacs"] * 8
    gmacs = FlopsCost.from_model(model.vit, "similarity").cost(both.counts)
    assert both.history[-1]["cost"] == pytest.approx(gmacs, rel=0.05)  # the second descent priced in GMACs
    assert both.predicted <= budget[0].target * 1.01  # the result judged on the measured budget
    assert describe_selection(both.selection).splitlines()[0] == (
        "the ddp rates did not beat the warm start (they ended on it); ddp priced by gmacs descended from the same "
        "start, its schedule scaled onto the budget")
    named = gradient_search(model, budget, data, replace(still, rates="ddp"), progress=False, start=start)
    assert named.steps == 8 and "first" not in named.selection  # named rates run alone


def test_a_measured_ddp_that_beats_its_start_is_not_searched_again():
    model = CompressedViT(make_vit("deit_tiny"), merging="similarity")
    won = gradient_search(model, _measured_budget(model, 0.8), _random_set(), SearchConfig(epochs=1, batch_size=4),
                          progress=False)
    assert won.selection["kept"] == "searched" and won.selection["gain"] > won.selection["standard_error"]
    assert "first" not in won.selection and won.steps == 8  # one descent: the proxy runs only where it lost
