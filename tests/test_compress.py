import torch

from hwsearch.model.tokens import merge, rank_tokens, top_tokens, weighted_merge
from hwsearch.search.rates import DiffRate, RateSchedule, ste_ceil


def test_rank_keeps_prefix_first_and_dead_last():
    attn = torch.tensor([[0.1, 0.5, 0.2, 0.9, 0.3]])
    alive = torch.tensor([[1.0, 1.0, 1.0, 0.0, 1.0]])
    order = rank_tokens(attn, num_prefix=1, alive=alive)
    assert order.tolist() == [[0, 1, 4, 2, 3]]
    assert top_tokens(attn, 1, 3).tolist() == [[0, 3, 1]]


def test_merge_conserves_size_and_weighted_mean():
    torch.manual_seed(0)
    x, metric = torch.randn(2, 9, 5), torch.randn(2, 9, 4)
    size = torch.randint(1, 4, (2, 9, 1)).float()
    new_x, new_size = merge(x, size, metric, num_prefix=1, keep=5)
    assert new_x.shape == (2, 5, 5)
    assert torch.allclose(new_size.sum(1), size.sum(1))
    # the size-weighted sum of all tokens is preserved by merging
    assert torch.allclose((new_x * new_size).sum(1), (x * size).sum(1), atol=1e-5)
    assert torch.equal(new_x[:, 0], x[:, 0])  # class token is never a target


def test_weighted_merge_zero_weight_is_identity():
    x, size = torch.randn(1, 6, 3), torch.ones(1, 6, 1)
    out, out_size = weighted_merge(x, size, torch.zeros(1, 6, 1), torch.zeros(1, 6, dtype=torch.long))
    assert torch.allclose(out, x) and torch.equal(out_size, size)


def test_ste_ceil_forward_ceil_backward_identity():
    v = torch.tensor(3.2, requires_grad=True)
    out = ste_ceil(v)
    out.backward()
    assert out.item() == 4.0 and v.grad.item() == 1.0


def test_diffrate_mask_hard_forward_soft_gradient():
    ddp = DiffRate(num_tokens=17, num_prefix=1, granularity=4)
    assert ddp.candidates.tolist() == [17, 13, 9, 5]
    count, mask, probs = ddp.keep()
    assert count.item() == 11  # ceil(mean(16,12,8,4)) + class token
    assert mask.tolist() == [1.0] * 11 + [0.0] * 6
    (mask * torch.arange(17.0)).sum().backward()
    assert ddp.logits.grad is not None and ddp.logits.grad.abs().sum() > 0


def test_rate_schedule_monotone_and_block0_dense():
    torch.manual_seed(0)
    rates = RateSchedule(depth=6, num_tokens=65, num_prefix=1, granularity=4)
    with torch.no_grad():
        for p in rates.parameters():
            p.normal_(0, 3)
    counts = RateSchedule.counts(rates())
    assert counts[0] == (65, 65)
    current = 65
    for prune_kept, merge_kept in counts:
        assert current >= prune_kept >= merge_kept >= 2
        current = merge_kept


def test_rate_schedule_ops_subset():
    rates = RateSchedule(depth=3, num_tokens=17, num_prefix=1, ops=("merge",))
    assert rates.prune is None
    entering = 17
    for keep in rates():
        assert keep.prune_kept.item() == entering  # nothing pruned: merge only
        entering = keep.merge_kept.item()
