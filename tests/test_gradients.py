"""Gradients reach the DDP logits through both the task term and the cost term."""
import torch
from conftest import make_vit

from hwsearch.cost import FlopsCost
from hwsearch.model.vit import CompressedViT
from hwsearch.search.rates import RateSchedule


def _setup():
    vit = make_vit("deit_tiny").requires_grad_(False)
    model = CompressedViT(vit)
    rates = RateSchedule(model.depth, model.num_tokens, model.num_prefix, granularity=4)
    return model, rates


def test_task_gradient_reaches_prune_and_merge_logits():
    model, rates = _setup()
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        ref = model.features(x).cls
    out = model.features(x, rates())
    (1 - torch.cosine_similarity(out.cls, ref, dim=-1)).mean().backward()
    assert all(p.grad is None for p in model.parameters())
    for group in (rates.prune, rates.merge):
        assert sum(ddp.logits.grad.abs().sum().item() for ddp in group) > 0


def test_cost_gradient_reaches_logits():
    model, rates = _setup()
    cost = FlopsCost.from_model(model.vit)
    cost.expected_cost(rates()).backward()
    grads = [ddp.logits.grad for ddp in rates.merge]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
