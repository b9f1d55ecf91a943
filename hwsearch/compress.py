"""Token compression: class-attention ranking, pruning, size-weighted merging, DDP rates.

Conventions: ``x`` is ``[B, N, C]``; ``size`` is ``[B, N, 1]`` (how many original patches a token
stands for); ``policy`` is ``[B, N, 1]`` (1 = alive, search mode only). Prefix tokens (class token,
register tokens) come first, are never pruned, never merged and never merge targets.
Counts (``prune_kept``, ``merge_kept``) include the prefix tokens, like DiffRate's kept numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# Ranking


def rank_tokens(cls_attn: Tensor, num_prefix: int, alive: Tensor | None = None) -> Tensor:
    """Token order: prefix tokens first, then patch tokens by descending class attention.

    ``cls_attn`` is ``[B, N]``; dead tokens (``alive == 0``) go last. Returns ``[B, N]`` indices.
    """
    scores = cls_attn.detach().clone()
    if alive is not None:
        scores = scores.masked_fill(alive <= 0.5, float("-inf"))
    scores[:, :num_prefix] = float("inf")
    return torch.argsort(scores, dim=1, descending=True, stable=True)


def top_tokens(cls_attn: Tensor, num_prefix: int, keep: int) -> Tensor:
    """Indices of the ``keep`` highest-ranked tokens, prefix first, in rank order (deploy mode).

    Uses TopK over patch tokens, which exports to ONNX as one TopK node.
    """
    batch = cls_attn.shape[0]
    patch_idx = torch.topk(cls_attn[:, num_prefix:], keep - num_prefix, dim=1, sorted=True).indices
    prefix_idx = torch.arange(num_prefix, device=cls_attn.device).expand(batch, num_prefix)
    return torch.cat([prefix_idx, patch_idx + num_prefix], dim=1)


def gather_tokens(t: Tensor, index: Tensor) -> Tensor:
    """``t[b, index[b]]`` for a ``[B, N, D]`` tensor and ``[B, K]`` indices."""
    return torch.gather(t, 1, index.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


# ---------------------------------------------------------------------------------------------
# Deploy mode: real static-count pruning and merging


def prune(x: Tensor, size: Tensor, metric: Tensor, cls_attn: Tensor, num_prefix: int, keep: int
          ) -> tuple[Tensor, Tensor, Tensor]:
    """Keep the ``keep`` tokens with the highest class attention, sorted by rank."""
    idx = top_tokens(cls_attn, num_prefix, keep)
    return gather_tokens(x, idx), gather_tokens(size, idx), gather_tokens(metric, idx)


def merge_targets(metric: Tensor, target_mask: Tensor) -> Tensor:
    """For every token, the index of its most similar (cosine) allowed target: ``[B, N]``.

    ``target_mask`` is ``[B, N]`` bool over the candidate targets.
    """
    m = F.normalize(metric, dim=-1)
    sim = m @ m.transpose(1, 2)
    sim = sim.masked_fill(~target_mask.unsqueeze(1), float("-inf"))
    return sim.argmax(dim=-1)


def weighted_merge(x: Tensor, size: Tensor, weight: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Add each token, scaled by ``weight * size``, into ``target``; size-weighted average.

    Shared by deploy mode (``weight`` 0/1 over sources) and search mode (straight-through weights).
    """
    contrib = weight * size
    add_x = torch.zeros_like(x).scatter_add(1, target.unsqueeze(-1).expand_as(x), x * contrib)
    add_size = torch.zeros_like(size).scatter_add(1, target.unsqueeze(-1), contrib)
    new_size = size + add_size
    return (x * size + add_x) / new_size, new_size


def merge(x: Tensor, size: Tensor, metric: Tensor, num_prefix: int, keep: int) -> tuple[Tensor, Tensor]:
    """Merge rank-sorted tokens ``[keep:]`` into their most similar kept patch token.

    Similarity is computed only between sources and kept patch tokens: (P-keep) x (keep-prefix).
    """
    if keep >= x.shape[1]:
        return x, size
    src = F.normalize(metric[:, keep:], dim=-1)
    dst = F.normalize(metric[:, num_prefix:keep], dim=-1)
    src_target = (src @ dst.transpose(1, 2)).argmax(dim=-1) + num_prefix
    kept = torch.arange(keep, device=x.device).expand(x.shape[0], keep)
    weight = (torch.arange(x.shape[1], device=x.device) >= keep).to(x.dtype).view(1, -1, 1)
    x, size = weighted_merge(x, size, weight, torch.cat([kept, src_target], dim=1))
    return x[:, :keep], size[:, :keep]


# ---------------------------------------------------------------------------------------------
# Search mode: nothing removed, masks over token positions


def scatter_sorted(mask_sorted: Tensor, order: Tensor) -> Tensor:
    """Move a mask over rank positions ``[N]`` to token positions ``[B, N, 1]``."""
    batch = order.shape[0]
    out = torch.zeros(order.shape, dtype=mask_sorted.dtype, device=mask_sorted.device)
    return out.scatter(1, order, mask_sorted.expand(batch, -1)).unsqueeze(-1)


def soft_prune_merge(x: Tensor, size: Tensor, policy: Tensor, metric: Tensor, cls_attn: Tensor,
                     num_prefix: int, keep: "BlockKeep") -> tuple[Tensor, Tensor, Tensor]:
    """Search-mode prune + merge: returns new ``x``, ``size`` and ``policy``.

    Forward values equal deploy mode (hard masks); gradients reach the DDP logits through the
    straight-through masks (attention policy and merge weights).
    """
    order = rank_tokens(cls_attn, num_prefix, alive=policy.squeeze(-1))
    keep_prune = policy * scatter_sorted(keep.prune_mask, order)
    keep_merge = policy * scatter_sorted(keep.merge_mask, order)
    is_prefix = torch.arange(x.shape[1], device=x.device) < num_prefix
    is_target = (keep_merge.squeeze(-1).detach() > 0.5) & ~is_prefix
    target = merge_targets(metric, is_target)
    x, size = weighted_merge(x, size, keep_prune - keep_merge, target)
    return x, size, keep_merge


def softmax_with_policy(logits: Tensor, policy: Tensor) -> Tensor:
    """Softmax over alive keys only (DynamicViT); a dead query attends to itself.

    ``logits`` ``[B, H, N, N]``, ``policy`` ``[B, N, 1]``; multiplicative so the mask has a gradient.
    """
    num = logits.shape[-1]
    key_policy = policy.reshape(policy.shape[0], 1, 1, num)
    eye = torch.eye(num, dtype=logits.dtype, device=logits.device).view(1, 1, num, num)
    allowed = key_policy + (1.0 - key_policy) * eye
    max_logit = logits.masked_fill(allowed.detach() <= 0.5, float("-inf")).amax(-1, keepdim=True)
    weights = (logits - max_logit).exp() * allowed
    return weights / weights.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# Differentiable discrete proxy (DDP)


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


@dataclass
class BlockKeep:
    """One block's kept counts in search mode (tensors for gradients, masks over rank positions)."""

    prune_kept: Tensor
    merge_kept: Tensor
    prune_mask: Tensor
    merge_mask: Tensor
    prune_probs: Tensor | None = None
    merge_probs: Tensor | None = None
    dense: bool = False  # a block that never compresses (before ``compress_from``)
    prune_candidates: Tensor | None = None  # the kept counts the probabilities are over
    merge_candidates: Tensor | None = None


def hard_mask(count: int | Tensor, num: int, like: Tensor | None = None) -> Tensor:
    """1 for rank positions below ``count``, 0 after."""
    device = like.device if like is not None else None
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    return (torch.arange(num, device=device) < int(count)).to(dtype)


def fixed_keep(prune_kept: int, merge_kept: int, num: int, like: Tensor | None = None) -> BlockKeep:
    """A search-mode keep with hard masks and no gradient (to run a fixed schedule in search mode)."""
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    return BlockKeep(torch.tensor(float(prune_kept), dtype=dtype), torch.tensor(float(merge_kept), dtype=dtype),
                     hard_mask(prune_kept, num, like), hard_mask(merge_kept, num, like))


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
        bisection so that the expectation is ``count - 0.5`` (ceil gives ``count``).
        """
        step = float(self.candidates[0] - self.candidates[1]) if len(self.candidates) > 1 else 1.0
        lo, hi = float(self.candidates[-1]) - 2 * step, float(self.candidates[0]) + 2 * step
        for _ in range(40):
            mid = (lo + hi) / 2
            self.logits.copy_(-sharpness * (self.candidates - mid).abs() / step)
            if self.expected() < count - 0.5:
                lo = mid
            else:
                hi = mid

    def expected(self) -> Tensor:
        return self.probs() @ self.candidates

    def keep(self, limit: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Kept count (STE, clamped to ``limit``), its rank-position mask, and the probabilities."""
        probs = self.probs()
        count = ste_ceil(probs @ self.candidates)
        if limit is not None:
            count = torch.minimum(count, limit)
        soft = probs @ self.below
        mask = hard_mask(count, self.num_tokens, soft) - soft.detach() + soft
        return count, mask, probs


class RateSchedule(nn.Module):
    """Per-block prune and merge DDPs; counts are non-increasing through depth by clamping.

    Blocks before ``compress_from`` keep all tokens. ``ops`` chooses prune, merge or both.
    """

    def __init__(self, depth: int, num_tokens: int, num_prefix: int, granularity: int = 4,
                 compress_from: int = 1, ops: tuple[str, ...] = ("prune", "merge")) -> None:
        super().__init__()
        self.depth, self.num_tokens, self.num_prefix = depth, num_tokens, num_prefix
        self.compress_from, self.ops = compress_from, tuple(ops)
        n_learned = depth - compress_from
        self.prune = nn.ModuleList(DiffRate(num_tokens, num_prefix, granularity) for _ in range(n_learned)) \
            if "prune" in ops else None
        self.merge = nn.ModuleList(DiffRate(num_tokens, num_prefix, granularity) for _ in range(n_learned)) \
            if "merge" in ops else None

    def init_from(self, counts: list[tuple[int, int]]) -> None:
        """Warm start every learned block at a schedule's counts."""
        for j in range(self.depth - self.compress_from):
            prune_kept, merge_kept = counts[j + self.compress_from]
            if self.prune is not None:
                self.prune[j].init_at(prune_kept)
            if self.merge is not None:
                self.merge[j].init_at(merge_kept)

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
                m_count, m_mask, m_probs = self.merge[j].keep(p_count)
            else:
                m_count, m_mask, m_probs = p_count, p_mask, None
            keeps.append(BlockKeep(p_count, m_count, p_mask, m_mask, p_probs, m_probs,
                                   prune_candidates=self.prune[j].candidates if self.prune is not None else None,
                                   merge_candidates=self.merge[j].candidates if self.merge is not None else None))
            current = m_count
        return keeps

    @staticmethod
    def counts(keeps: list[BlockKeep]) -> list[tuple[int, int]]:
        """The integer (prune_kept, merge_kept) per block."""
        return [(int(k.prune_kept.item()), int(k.merge_kept.item())) for k in keeps]
