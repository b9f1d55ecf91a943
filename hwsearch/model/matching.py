"""Similarity merging: ToMe's bipartite soft matching (``tome/merge.py``), in deploy and search mode.

Tokens in their current order alternate between set A and set B (A: even positions, as ToMe with its
class token at 0); prefix tokens are protected (never merged, never targets). Each A token's edge is
its most similar B token (cosine of the keys, mean over heads); the ``r`` A tokens with the
strongest edges are merged, size-weighted, into their B token. Deploy mode keeps the unmerged A
tokens in order, then B (ToMe's ``cat([unm, dst])``). Search mode removes nothing: it tracks the
deploy-mode order of every token, and the keep mask runs over a priority order (prefix, B, A by
rising edge strength) so that the DDP count decides how many edges merge.

Modification against ToMe: prefix tokens are taken out before the split (register tokens stay in
front), and ``r`` is at most the number of A patches (``hwsearch.schedule.min_merge_kept``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from hwsearch.model.tokens import BlockKeep, gather_tokens, prune, rank_tokens, scatter_sorted, weighted_merge


def _edges(metric_a: Tensor, metric_b: Tensor) -> tuple[Tensor, Tensor]:
    """Each A token's strongest edge: (similarity, index into B)."""
    a, b = F.normalize(metric_a, dim=-1), F.normalize(metric_b, dim=-1)
    return (a @ b.transpose(1, 2)).max(dim=-1)


def similarity_merge(x: Tensor, size: Tensor, metric: Tensor, num_prefix: int, keep: int) -> tuple[Tensor, Tensor]:
    """Deploy mode: merge ``x.shape[1] - keep`` A tokens into B (static counts, ONNX-exportable).

    ``r`` is a Python int: traced, ``x.shape[1] - keep`` would subtract a tensor constant that
    moves to the GPU with the graph, and slicing by it would then read the GPU inside a CUDA graph."""
    r = int(x.shape[1]) - keep
    if r <= 0:
        return x, size
    xs = x * size
    a_x, b_x, a_s, b_s, a_m, b_m = _split(xs, size, metric, num_prefix)
    node_max, node_idx = _edges(a_m, b_m)
    edge = torch.topk(node_max, node_max.shape[1], dim=1, sorted=True).indices
    src, unm = edge[:, :r], edge[:, r:].sort(dim=1).values
    dst = node_idx.gather(1, src)
    b_x = b_x.scatter_add(1, dst.unsqueeze(-1).expand(-1, -1, x.shape[-1]), gather_tokens(a_x, src))
    b_s = b_s.scatter_add(1, dst.unsqueeze(-1), gather_tokens(a_s, src))
    kept_x, kept_s = [xs[:, :num_prefix]], [size[:, :num_prefix]]
    if r < a_x.shape[1]:  # no empty gathers in the graph (ONNX shape inference rejects them)
        kept_x.append(gather_tokens(a_x, unm))
        kept_s.append(gather_tokens(a_s, unm))
    out_x, out_s = torch.cat([*kept_x, b_x], dim=1), torch.cat([*kept_s, b_s], dim=1)
    return out_x / out_s, out_s


def halves(tokens: Tensor, num_prefix: int) -> tuple[Tensor, Tensor]:
    """(set A, set B) of the patch entries of ``tokens`` (dim 1, prefix first): A at even global positions.
    The one split, for tokens in deploy mode and for token indices in deploy order in search mode."""
    parity, patches = num_prefix % 2, tokens[:, num_prefix:]
    return patches[:, parity::2], patches[:, 1 - parity::2]


def _split(xs: Tensor, size: Tensor, metric: Tensor, num_prefix: int) -> tuple[Tensor, ...]:
    """(A, B) of the size-weighted tokens, the sizes and the metric."""
    return (*halves(xs, num_prefix), *halves(size, num_prefix), *halves(metric, num_prefix))


def soft_similarity_merge(x: Tensor, size: Tensor, alive: Tensor, metric: Tensor, order: Tensor, num_prefix: int,
                          kept: int, merge_kept: int, merge_mask: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Search mode: returns ``x``, ``size``, the keep mask after merging and the new deploy order.

    ``alive`` ``[B, N, 1]`` marks the ``kept`` tokens left after pruning; ``order`` ``[B, N]`` lists
    token indices in deploy order (those ``kept`` first). Forward values equal :func:`similarity_merge`.
    """
    a_idx, b_idx = halves(order[:, :kept], num_prefix)
    if b_idx.shape[1] == 0:  # a single patch left: nothing to match
        return x, size, alive, order
    node_max, node_idx = _edges(gather_tokens(metric, a_idx), gather_tokens(metric, b_idx))
    edge = torch.argsort(node_max.detach(), dim=1, descending=True, stable=True)
    priority = torch.cat([order[:, :num_prefix], b_idx, a_idx.gather(1, edge.flip(1)), order[:, kept:]], dim=1)
    keep_merge = alive * scatter_sorted(merge_mask, priority)
    target = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1).clone()
    target = target.scatter(1, a_idx, b_idx.gather(1, node_idx))
    x, size = weighted_merge(x, size, alive - keep_merge, target)
    r = kept - merge_kept
    if r <= 0:  # deploy mode leaves the order as it is
        return x, size, keep_merge, order
    unm = a_idx.gather(1, edge[:, r:].sort(dim=1).values)
    merged = a_idx.gather(1, edge[:, :r])
    new_order = torch.cat([order[:, :num_prefix], unm, b_idx, merged, order[:, kept:]], dim=1)
    return x, size, keep_merge, new_order


def deploy_step(x: Tensor, size: Tensor, metric: Tensor, cls_attn: Tensor | None, num_prefix: int,
                prune_kept: int, merge_kept: int) -> tuple[Tensor, Tensor]:
    """Deploy mode: prune by class attention only when the block prunes (ToMe keeps token order),
    then merge by similarity."""
    if prune_kept < x.shape[1]:
        x, size, metric = prune(x, size, metric, cls_attn, num_prefix, prune_kept)  # type: ignore[arg-type]
    return similarity_merge(x, size, metric, num_prefix, merge_kept)


def search_step(x: Tensor, size: Tensor, policy: Tensor, metric: Tensor, cls_attn: Tensor, order: Tensor | None,
                num_prefix: int, keep: BlockKeep) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Search mode of :func:`deploy_step`: returns ``x``, ``size``, policy and the deploy order."""
    if order is None:
        order = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
    entering = int(policy[0].detach().sum().round())
    kept, merge_kept = int(keep.prune_kept.detach()), int(keep.merge_kept.detach())
    ranked = rank_tokens(cls_attn, num_prefix, alive=policy.squeeze(-1))
    keep_prune = policy * scatter_sorted(keep.prune_mask, ranked)
    if kept < entering:  # deploy mode prunes: its tokens are then in rank order
        order = ranked
    return soft_similarity_merge(x, size, keep_prune, metric, order, num_prefix, kept, merge_kept, keep.merge_mask)
