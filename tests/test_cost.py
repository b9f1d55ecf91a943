"""Analytic GMACs vs torch's FlopCounterMode (2 FLOPs per multiply-add; math SDPA so it is counted)."""
import random

import pytest
import timm
import torch
from conftest import make_vit
from test_equivalence import random_counts
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from hwsearch import apply_schedule
from hwsearch.cost import FlopsCost


def counted_gmacs(model, x):
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() / 2 / 1e9 / x.shape[0]


def _check(vit, counts):
    cost = FlopsCost.from_model(vit)
    x = torch.randn(2, 3, *vit.patch_embed.img_size)
    measured = counted_gmacs(apply_schedule(vit, counts), x)
    assert cost.cost(counts) == pytest.approx(measured, rel=0.02)


def test_dense_flops_match_counter(tiny_vit_key):
    vit = make_vit(tiny_vit_key, num_classes=10)
    n = FlopsCost.from_model(vit).num_tokens
    _check(vit, [(n, n)] * len(vit.blocks))


@pytest.mark.parametrize("seed", range(3))
def test_compressed_flops_match_counter(tiny_vit_key, seed):
    vit = make_vit(tiny_vit_key, num_classes=10)
    n = FlopsCost.from_model(vit).num_tokens
    _check(vit, random_counts(n, len(vit.blocks), random.Random(seed)))


def test_dinov2_small_full_size():
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=224).eval()
    cost = FlopsCost.from_model(vit)
    assert cost.num_tokens == 257
    _check(vit, [(257, 257)] * 12)
    _check(vit, [(257, 257)] + [(200, 150), (150, 120)] + [(120, 100)] * 9)


def test_breakdown_sums_to_total():
    vit = make_vit("deit_tiny")
    counts = [(17, 17), (13, 9), (9, 9), (9, 5)]
    cost = FlopsCost.from_model(vit)
    parts = cost.breakdown(counts)
    assert parts["total"] == pytest.approx(cost.cost(counts))
    assert parts["overhead"] > 0


def test_compression_step_cost_has_a_gradient_through_p_compress():
    """The fitted cost model gates each block's compression step with P(block compresses): the value is
    the hard schedule's, and the rates' keep-all candidates get the step's cost as gradient (so the search
    can learn to skip a block's step). On the recorded profile's cost model (DeiT-Tiny at 64 px)."""
    import dataclasses

    from conftest import RECORDED

    from hwsearch.cost.fit import load_costmodel
    from hwsearch.cost.measured import MeasuredCost
    from hwsearch.search.rates import RateSchedule

    cost = MeasuredCost(load_costmodel(RECORDED / "costmodel.json"), merging="similarity")
    rates = RateSchedule(12, 17, 1, granularity=4, compress_from=0, merging="similarity")
    rates.init_from([(17, 17), (17, 13), (13, 13), (9, 9)] + [(9, 9)] * 8)

    def gradient(gated: bool) -> tuple[float, list[torch.Tensor], list[torch.Tensor]]:
        rates.zero_grad()
        keeps = rates()
        if not gated:
            keeps = [dataclasses.replace(k, step_probs=None) for k in keeps]
        value = cost.expected_cost(keeps)
        value.backward()
        return value.item(), [r.logits.grad.clone() for r in rates.merge], [r.logits.grad.clone() for r in rates.prune]

    gated, plain = gradient(True), gradient(False)
    assert gated[0] == pytest.approx(plain[0], rel=1e-6)  # the forward value is the hard schedule's cost
    keep_all = 0  # merge candidate 17 (index 0): keeping every token skips the step
    for block in (0, 1, 2):  # one that does not compress at the start, one that merges, one that does neither
        assert gated[1][block][keep_all] < plain[1][block][keep_all]  # more keep-all mass, less step cost
    # block 3 prunes 13 -> 9 without merging: the ranking a prune costs pulls towards not pruning (candidate 13)
    assert gated[2][3][1] < plain[2][3][1]
