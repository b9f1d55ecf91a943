"""Free rates: any count reachable from any start, every update back on the budget."""
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


def test_auto_rates_are_fractions_on_measured_budgets_and_ddp_on_gmacs(vit_s_cost):
    from conftest import RECORDED

    from hwsearch.cost import MeasuredCost
    from hwsearch.cost.fit import load_costmodel

    gmacs = [Budget(vit_s_cost["similarity"], 1.0)]
    measured = gmacs + [Budget(MeasuredCost(load_costmodel(RECORDED / "costmodel.json")), 1.0)]  # a real fit
    assert SearchConfig().resolved(gmacs) == SearchConfig(rates="ddp", lr=0.1, accumulate=1, optimizer="adamw")
    assert SearchConfig().resolved(measured) == SearchConfig(rates="fractions", lr=0.05, accumulate=4,
                                                             optimizer="normalized")
    chosen = SearchConfig(rates="fractions", lr=0.2, accumulate=1, optimizer="adamw")
    assert chosen.resolved(gmacs) == chosen  # what is given stays
    with pytest.raises(ValueError, match="unknown rates"):
        SearchConfig(rates="logits").resolved(gmacs)


def test_auto_rates_descend_with_ddp_from_the_same_start_where_the_fractions_do_not_beat_it():
    """On a measured budget ``auto`` runs the fraction rates first; where they do not beat their warm start on
    the search images (here: they end on it, 17 tokens are coarse), DDP descends from that start and the
    better of its schedule and the start is kept; the selection records both. Named rates run alone."""
    from conftest import RECORDED

    from hwsearch.cost import MeasuredCost
    from hwsearch.cost.fit import load_costmodel
    from hwsearch.search.optimize import describe_selection

    model = CompressedViT(make_vit("deit_tiny"), merging="similarity")
    cost = MeasuredCost(load_costmodel(RECORDED / "costmodel.json"), "latency", "similarity")  # a real fit
    budget = [Budget(cost, 0.8 * cost.dense_cost(model.depth), "latency_ms")]
    gen = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (32, 3, 64, 64), dtype=torch.uint8, generator=gen), None, "random")
    both = gradient_search(model, budget, data, SearchConfig(epochs=1, batch_size=4), progress=False)
    assert both.selection["first"] == {"rates": "fractions", "kept": "warm start"}
    assert both.config.rates == "ddp" and both.steps == 2 + 8 == len(both.history)  # 32 images: 16, then 4 per update
    assert both.selection["kept"] == "searched" and both.selection["gain"] > both.selection["standard_error"]
    assert both.movement["initial"] != both.movement["final"]  # moved from the one start both descended from
    assert describe_selection(both.selection).splitlines()[0] == (
        "the fractions rates did not beat the warm start (they ended on it); ddp descended from the same start")
    alone = gradient_search(model, budget, data, SearchConfig(epochs=1, batch_size=4, rates="fractions"),
                            progress=False)
    assert alone.config.rates == "fractions" and alone.steps == 2 and "first" not in alone.selection
