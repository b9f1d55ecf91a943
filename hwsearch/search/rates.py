"""The learnable per-block rates: DiffRate's differentiable discrete proxy (DDP).

Per block and decision (prune, merge), logits over candidate kept counts; the kept count is the
straight-through ceil of the expectation, the rank-position mask is hard forward and
``P(count > position)`` backward. Counts are clamped non-increasing through depth.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from hwsearch.model.tokens import BlockKeep, hard_mask
from hwsearch.schedule import Counts, min_merge_kept


class _CeilSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value: Tensor) -> Tensor:  # type: ignore[override]
        return torch.ceil(value)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


def ste_ceil(value: Tensor) -> Tensor:
    """Ceil in the forward pass, identity gradient."""
    return _CeilSTE.apply(value)


class DiffRate(nn.Module):
    """Learnable distribution over candidate kept counts for one decision of one block.

    Candidates are patch counts ``P, P-g, ..., >0`` plus the prefix tokens. The kept count is the
    straight-through ceil of the expected candidate; the rank-position mask is hard in the forward
    pass and ``P(count > position)`` in the backward pass (DiffRate).
    """

    def __init__(self, num_tokens: int, num_prefix: int, granularity: int = 4) -> None:
        super().__init__()
        patches = num_tokens - num_prefix
        candidates = torch.arange(patches, 0, -granularity, dtype=torch.float32) + num_prefix
        self.num_tokens = num_tokens
        self.register_buffer("candidates", candidates)
        self.register_buffer("below", (torch.arange(num_tokens)[None, :] < candidates[:, None]).float())
        self.logits = nn.Parameter(torch.zeros_like(candidates))

    def probs(self) -> Tensor:
        return self.logits.softmax(-1)

    @torch.no_grad()
    def init_at(self, count: int, sharpness: float = 2.0) -> None:
        """Peak the distribution so the kept count starts at ``count`` (warm start).

        Logits fall linearly (``sharpness`` per candidate step) away from a centre found by
        bisection so that the expectation is ``count - 0.5`` (ceil gives ``count``). A wide
        distribution (small ``sharpness``) cannot reach a count at the end of the candidates (its mean
        stays inside): there the sharpness is doubled until it can.
        """
        step = float(self.candidates[0] - self.candidates[1]) if len(self.candidates) > 1 else 1.0
        span = float(self.candidates[0] - self.candidates[-1]) + 4 * step
        lo_end, hi_end = float(self.candidates[-1]) - span, float(self.candidates[0]) + span

        def expected_at(mid: float) -> float:
            self.logits.copy_(-sharpness * (self.candidates - mid).abs() / step)
            return float(self.expected())

        while sharpness < 64 and not math.ceil(expected_at(lo_end)) <= count <= math.ceil(expected_at(hi_end)):
            sharpness *= 2
        lo, hi = lo_end, hi_end
        for _ in range(50):
            mid = (lo + hi) / 2
            if expected_at(mid) < count - 0.5:
                lo = mid
            else:
                hi = mid
        expected_at(hi)

    def expected(self) -> Tensor:
        return self.probs() @ self.candidates

    def keep(self, limit: Tensor | None = None, lower: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Kept count (STE, clamped to ``[lower, limit]``), its rank-position mask, and the probabilities."""
        probs = self.probs()
        count = ste_ceil(probs @ self.candidates)
        if limit is not None:
            count = torch.minimum(count, limit)
        if lower is not None:
            count = torch.maximum(count, lower)
        soft = probs @ self.below
        mask = hard_mask(count, self.num_tokens, soft) - soft.detach() + soft
        return count, mask, probs


class RateSchedule(nn.Module):
    """Per-block prune and merge DDPs; counts are non-increasing through depth by clamping.

    Blocks before ``compress_from`` keep all tokens. ``ops`` chooses prune, merge or both; with
    ``merging="similarity"`` a block merges at most one bipartite round (``min_merge_kept``).
    """

    def __init__(self, depth: int, num_tokens: int, num_prefix: int, granularity: int = 4,
                 compress_from: int = 1, ops: tuple[str, ...] = ("prune", "merge"), merging: str = "rank") -> None:
        super().__init__()
        self.depth, self.num_tokens, self.num_prefix, self.merging = depth, num_tokens, num_prefix, merging
        self.compress_from, self.ops = compress_from, tuple(ops)
        n_learned = depth - compress_from
        self.prune = nn.ModuleList(DiffRate(num_tokens, num_prefix, granularity) for _ in range(n_learned)) \
            if "prune" in ops else None
        self.merge = nn.ModuleList(DiffRate(num_tokens, num_prefix, granularity) for _ in range(n_learned)) \
            if "merge" in ops else None

    def init_from(self, counts: Counts, sharpness: float = 2.0) -> None:
        """Warm start every learned block at a schedule's counts (``sharpness``: see ``DiffRate.init_at``)."""
        for j in range(self.depth - self.compress_from):
            prune_kept, merge_kept = counts[j + self.compress_from]
            if self.prune is not None:
                self.prune[j].init_at(prune_kept, sharpness)
            if self.merge is not None:
                self.merge[j].init_at(merge_kept, sharpness)

    def _fewest_merged(self, prune_kept: Tensor) -> Tensor | None:
        """Similarity merging keeps at least ``min_merge_kept`` (one bipartite round); STE-valued."""
        if self.merging != "similarity":
            return None
        fewest = min_merge_kept(int(prune_kept.detach()), self.num_prefix, self.merging)
        return torch.tensor(float(fewest), dtype=prune_kept.dtype, device=prune_kept.device)

    def forward(self) -> list[BlockKeep]:
        """Sample the current kept counts and masks for every block."""
        like = next(self.parameters())
        full = torch.tensor(float(self.num_tokens), dtype=like.dtype, device=like.device)
        ones = torch.ones(self.num_tokens, dtype=like.dtype, device=like.device)
        keeps, current = [], full
        for i in range(self.depth):
            j = i - self.compress_from
            if j < 0:
                keeps.append(BlockKeep(full, full, ones, ones, dense=True))
                continue
            if self.prune is not None:
                p_count, p_mask, p_probs = self.prune[j].keep(current)
            else:
                p_count, p_mask, p_probs = current, hard_mask(current, self.num_tokens, ones), None
            if self.merge is not None:
                m_count, m_mask, m_probs = self.merge[j].keep(p_count, self._fewest_merged(p_count))
            else:
                m_count, m_mask, m_probs = p_count, p_mask, None
            keeps.append(BlockKeep(p_count, m_count, p_mask, m_mask, p_probs, m_probs,
                                   prune_candidates=self.prune[j].candidates if self.prune is not None else None,
                                   merge_candidates=self.merge[j].candidates if self.merge is not None else None,
                                   step_probs=self._step_probs(j, current, p_count, p_probs, m_probs)))
            current = m_count
        return keeps

    def _step_probs(self, j: int, entering: Tensor, prune_kept: Tensor, p_probs: Tensor | None,
                    m_probs: Tensor | None) -> tuple[Tensor, Tensor]:
        """(P(the block prunes), P(the block merges)): the probability mass on candidates that remove a
        token. The cost model gates the compression step's fixed costs with them (straight-through),
        so the search sees what a step costs and can trade a block's step for tokens elsewhere."""
        out = []
        for rate, probs, limit in ((self.prune, p_probs, entering), (self.merge, m_probs, prune_kept)):
            if rate is not None and probs is not None:
                out.append(1.0 - (probs * (rate[j].candidates >= limit.detach())).sum())
            else:
                out.append(torch.zeros((), dtype=entering.dtype, device=entering.device))
        return out[0], out[1]

    @staticmethod
    def counts(keeps: list[BlockKeep]) -> Counts:
        """The integer (prune_kept, merge_kept) per block."""
        return [(int(k.prune_kept.item()), int(k.merge_kept.item())) for k in keeps]
