"""Token operations as pure tensor functions: class-attention ranking, pruning, size-weighted merging,
the search-mode masks (softmax with policy) and the per-block keep they run on.

Conventions: ``x`` is ``[B, N, C]``; ``size`` is ``[B, N, 1]`` (how many original patches a token
stands for); ``policy`` is ``[B, N, 1]`` (1 = alive, search mode only). Prefix tokens (class token,
register tokens) come first, are never pruned, never merged and never merge targets.
Counts (``prune_kept``, ``merge_kept``) include the prefix tokens, like DiffRate's kept numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# ---------------------------------------------------------------------------------------------
# Ranking


def class_attention(q_cls: Tensor, k: Tensor, scale: float, bias: Tensor | None = None) -> Tensor:
    """The class token's attention row, mean over heads: ``[B, N]`` (``q_cls`` ``[B, H, 1, D]``).

    ``bias`` is the proportional-attention ``log(size)`` term ``[B, 1, 1, N]``. The one ranking
    computation of deploy mode, shared by the whole model and the exported compression part.
    """
    logits = (q_cls * scale) @ k.transpose(-2, -1)
    if bias is not None:
        logits = logits + bias
    return logits.softmax(-1)[:, :, 0].mean(1)


def rank_tokens(cls_attn: Tensor, num_prefix: int, alive: Tensor | None = None) -> Tensor:
    """Token order: prefix tokens first, then patch tokens by descending class attention.

    ``cls_attn`` is ``[B, N]``; dead tokens (``alive == 0``) go last. Returns ``[B, N]`` indices.
    """
    scores = cls_attn.detach().clone()
    if alive is not None:
        scores = scores.masked_fill(alive <= 0.5, float("-inf"))
    scores[:, :num_prefix] = float("inf")
    return torch.argsort(scores, dim=1, descending=True, stable=True)


def positions(like: Tensor, count: int) -> Tensor:
    """``arange(count)`` on ``like``'s device. Deploy mode builds index ranges this way because a
    traced ``torch.arange(device=...)`` bakes the tracing device into TorchScript (a bundle made on
    a CPU host would then fail on CUDA); ``new_ones`` keeps the device of its input."""
    return like.new_ones(count, dtype=torch.long).cumsum(0) - 1


def top_tokens(cls_attn: Tensor, num_prefix: int, keep: int) -> Tensor:
    """Indices of the ``keep`` highest-ranked tokens, prefix first, in rank order (deploy mode).

    Uses TopK over patch tokens, which exports to ONNX as one TopK node.
    """
    batch = cls_attn.shape[0]
    patch_idx = torch.topk(cls_attn[:, num_prefix:], keep - num_prefix, dim=1, sorted=True).indices
    prefix_idx = positions(cls_attn, num_prefix).expand(batch, num_prefix)
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
    kept = positions(x, keep).expand(x.shape[0], keep)
    weight = (positions(x, x.shape[1]) >= keep).type_as(x).view(1, -1, 1)
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
# Search mode: one block's keep


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
    step_probs: tuple[Tensor, Tensor] | None = None  # P(prune removes a token), P(merge removes a token)


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
