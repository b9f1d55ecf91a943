"""Rates free to reshape a schedule: per block and decision one continuous kept fraction.

Block i keeps ``prune_kept = low + (entering - low) * a_i`` after pruning and
``merge_kept = fewest + (prune_kept - fewest) * b_i`` after merging (``fewest``: the fewest the merge
operator can keep), with ``a_i, b_i`` the parameters clamped to [0, 1] (straight-through: the
gradient passes the clamp, so a decision at "keep all" can come back) and each count the
straight-through ceil (integer forward, real gradient). Every schedule is valid by construction,
and a step moves every decision by the same share of its tokens wherever it is (an Adam step of
``lr`` 0.05 moves about 5% of a block's tokens): no saturation at "keep all", where sigmoid logits
needed many steps before a block began to prune.

The rank-position masks are ``sigmoid((count - position - 1/2) / tau)`` in the forward pass too, as
DiffRate's masks are soft: a token near the boundary stays partly alive, so what its mask's gradient
measures is a live token's worth. With hard-forward masks a dropped token lives on attending only to
itself, and the gradient of reviving it was wrong-signed for blocks 1-2 (more tokens kept, higher
loss) on the default model; with soft masks every decision's gradient had the sign of a deploy-mode
finite difference (correlation 0.50 over the 22 decisions vs -0.32 hard; 64 images, ToMe-style start).

Fixed budget: after every update :meth:`FractionRates.retract` shifts all logits by one shared
offset (bisection) so the schedule lands on the budget (the largest cost/target ratio on 1), and
the update itself is the task gradient with its component along the cost gradient removed
(:func:`project_out`), so tokens move between blocks and between prune and merge at fixed cost.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from hwsearch.cost.base import Budget, WorstRatio
from hwsearch.model.tokens import BlockKeep
from hwsearch.schedule import Counts, bisect, min_merge_kept
from hwsearch.search.rates import ste_ceil


def soft_mask(count: Tensor, num: int, tau: float) -> Tensor:
    """The rank-position mask ``sigmoid((count - position - 1/2) / tau)`` (0.5 half a token past the count)."""
    positions = torch.arange(num, dtype=count.dtype, device=count.device)
    return torch.sigmoid((count - positions - 0.5) / tau)


MARGIN = 0.05  # parameters are kept in [-MARGIN, 1 + MARGIN] after every update (projected steps)


def ste_unit(value: Tensor) -> Tensor:
    """Clamped to [0, 1] in the forward pass, identity gradient."""
    return value + (value.clamp(0.0, 1.0) - value).detach()


class FractionRates(nn.Module):
    """Learnable kept fractions for every compressing block's prune and merge.

    The parameters keep DiffRate's names (``*_logits``) so that the history and resume files read
    the same for both rate kinds; here they are fractions, not logits.
    """

    def __init__(self, depth: int, num_tokens: int, num_prefix: int, compress_from: int = 1,
                 ops: tuple[str, ...] = ("prune", "merge"), merging: str = "rank", tau: float = 2.0) -> None:
        super().__init__()
        self.depth, self.num_tokens, self.num_prefix = depth, num_tokens, num_prefix
        self.compress_from, self.ops, self.merging, self.tau = compress_from, tuple(ops), merging, tau
        learned = depth - compress_from
        self.prune_logits = nn.Parameter(torch.full((learned,), 1.0 if "prune" not in ops else 0.5),
                                         requires_grad="prune" in ops)
        self.merge_logits = nn.Parameter(torch.full((learned,), 1.0 if "merge" not in ops else 0.5),
                                         requires_grad="merge" in ops)

    def forward(self) -> list[BlockKeep]:
        """The current kept counts (straight-through integers) and masks of every block."""
        like = self.prune_logits
        full = torch.tensor(float(self.num_tokens), dtype=like.dtype)
        ones = torch.ones(self.num_tokens, dtype=like.dtype)
        keeps = [BlockKeep(full, full, ones, ones, dense=True)] * self.compress_from
        entering, low = full, float(self.num_prefix + 1)
        for j in range(self.depth - self.compress_from):
            p = ste_ceil(low + (entering - low) * ste_unit(self.prune_logits[j]))
            fewest = float(min_merge_kept(int(p.detach()), self.num_prefix, self.merging))
            m = ste_ceil(fewest + (p - fewest) * ste_unit(self.merge_logits[j]))
            keeps.append(BlockKeep(p, m, soft_mask(p, self.num_tokens, self.tau),
                                   soft_mask(m, self.num_tokens, self.tau)))
            entering = m
        return keeps

    @staticmethod
    def counts(keeps: list[BlockKeep]) -> Counts:
        return [(int(k.prune_kept.item()), int(k.merge_kept.item())) for k in keeps]

    @torch.no_grad()
    def init_from(self, counts: Counts) -> None:
        """Fractions that give ``counts`` (a warm start from a hand schedule)."""
        entering, low = self.num_tokens, self.num_prefix + 1
        for j, (p, m) in enumerate(counts[self.compress_from:]):
            fewest = min_merge_kept(p, self.num_prefix, self.merging)
            if "prune" in self.ops:
                self.prune_logits[j] = _fraction(p, low, entering)
            if "merge" in self.ops:
                self.merge_logits[j] = _fraction(max(m, fewest), fewest, p)
            entering = m

    @torch.no_grad()
    def retract(self, budgets: list[Budget]) -> float:
        """Shift every learned fraction by one offset (then keep it in [-MARGIN, 1 + MARGIN]) so the
        worst cost/target ratio is at most 1 and as close to it as the integer counts allow; returns
        the offset."""
        learned = [p for p in (self.prune_logits, self.merge_logits) if p.requires_grad]
        start = [p.clamp(-MARGIN, 1 + MARGIN) for p in learned]
        bound = WorstRatio(budgets)

        def worst(offset: float) -> float:
            for p, s in zip(learned, start, strict=True):
                p.copy_((s + offset).clamp(-MARGIN, 1 + MARGIN))
            counts = self.counts(self())
            return bound.cost(counts)

        # from every fraction 0 to every fraction 1, wherever they are now; cost rises with the offset
        span = 1 + 2 * MARGIN
        lo, _ = bisect(worst, 1.0, -span, span, 40, rising=True)
        worst(lo)  # the largest offset whose schedule stays within the budgets
        return lo


def _fraction(count: int, low: int, high: int) -> float:
    """The fraction whose count (``ceil(low + (high - low) * fraction)``) is ``count``, half a token inside."""
    return 1.0 if high <= low else (count - low - 0.5) / (high - low)


def project_out(task: list[Tensor], cost: list[Tensor]) -> list[Tensor]:
    """The task gradient without its component along the cost gradient (a step at fixed cost)."""
    dot = sum((t * c).sum() for t, c in zip(task, cost, strict=True))
    norm = sum((c * c).sum() for c in cost)
    if float(norm) == 0.0:
        return task
    return [t - (dot / norm) * c for t, c in zip(task, cost, strict=True)]


class NormalizedDescent(torch.optim.Optimizer):
    """Gradient descent whose largest coordinate step is ``lr``: the coordinates keep their relative sizes.

    Adam divides each coordinate by its own running scale, so over a few dozen updates every decision
    moves by about ``lr`` whatever its gradient says; with the fixed-cost projection that moves tokens
    between decisions by the sign of their worth, not by its size. Here a decision whose gradient is a
    tenth of the largest moves a tenth as far.
    """

    def __init__(self, params, lr: float) -> None:  # noqa: ANN001 - torch's params type
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None) -> None:  # noqa: ANN001 - torch's signature
        for group in self.param_groups:
            grads = [p.grad for p in group["params"] if p.grad is not None]
            largest = max((float(g.abs().max()) for g in grads if g.numel()), default=0.0)
            if largest == 0.0:
                continue
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"] / largest)
