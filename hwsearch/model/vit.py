"""timm ViT made compressible: search mode (masks) and deploy mode (real static-count drop/merge).

The timm model's blocks are replaced in place by :class:`CompressionBlock`, which takes over the
block's own children, so ``state_dict`` keys stay timm's and a timm checkpoint loads unchanged
(explicit wrapping, no ``__class__`` swapping as in ToMe's ``tome/patch/timm.py``).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hwsearch.errors import HwsearchError
from hwsearch.model import matching
from hwsearch.model.build import check_vit, num_tokens
from hwsearch.model.tokens import (
    BlockKeep,
    class_attention,
    fixed_keep,
    merge,
    prune,
    soft_prune_merge,
    softmax_with_policy,
)
from hwsearch.schedule import MERGING, Schedule, min_merge_kept

_BLOCK_PARTS = ("norm1", "attn", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2")


@dataclass
class Tokens:
    """Token state between blocks. ``size``/``policy`` are None while unused (dense so far)."""

    x: Tensor
    size: Tensor | None = None
    policy: Tensor | None = None
    order: Tensor | None = None  # search mode, similarity merging: token indices in deploy-mode order
    traces: list[Tensor | None] | None = None  # deploy mode, when traced: per block, see :func:`assignment`


@dataclass
class Features:
    """Final features: class token, size-weighted mean of surviving patch tokens, model output."""

    cls: Tensor
    patch_mean: Tensor
    output: Tensor


def attend(attn: nn.Module, x: Tensor, size: Tensor | None, policy: Tensor | None, need_rank: bool = True
           ) -> tuple[Tensor, Tensor | None, Tensor]:
    """timm ``Attention.forward`` with proportional attention (``+ log size``) and a policy.

    Mirrors ``timm.models.vision_transformer.Attention.forward`` (timm 1.0.x). Modifications:
    the ``log(size)`` bias, softmax with policy in search mode, and the ranking outputs.

    Returns the attention output, the class-token attention row (mean over heads) ``[B, N]`` and
    the merge metric (keys, mean over heads, as ToMe) ``[B, N, head_dim]``. Without a policy
    (deploy) it uses fused SDPA and computes only the class row separately.
    """
    batch, num, _ = x.shape
    gate = attn.gate(x).sigmoid() if getattr(attn, "gate", None) is not None else None
    qkv = attn.qkv(x).reshape(batch, num, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    q, k = attn.q_norm(q), attn.k_norm(k)
    bias = size.log().reshape(batch, 1, 1, num) if size is not None else None
    if policy is None:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        cls_attn = class_attention(q[:, :, :1], k, attn.scale, bias) if need_rank else None
    else:
        logits = (q * attn.scale) @ k.transpose(-2, -1)
        if bias is not None:
            logits = logits + bias
        probs = softmax_with_policy(logits, policy)
        out = probs @ v
        cls_attn = probs[:, :, 0].mean(1)
    out = out.transpose(1, 2).reshape(batch, num, attn.num_heads * attn.head_dim)
    out = attn.norm(out) if hasattr(attn, "norm") else out
    if gate is not None:
        out = out * gate
    out = attn.proj_drop(attn.proj(out))
    return out, cls_attn, k.mean(1)


class CompressionBlock(nn.Module):
    """A timm ``Block`` (same children) with prune + merge between attention and MLP.

    Mirrors ``timm.models.vision_transformer.Block.forward``. Modifications (in
    :meth:`forward_tokens` only): attention through :func:`attend`, then prune to ``prune_kept``
    and merge to ``merge_kept`` before the MLP; :meth:`forward` stays timm's dense block.
    """

    def __init__(self, block: nn.Module, num_prefix: int) -> None:
        super().__init__()
        missing = [p for p in _BLOCK_PARTS if not hasattr(block, p)]
        if missing:
            raise HwsearchError(f"unsupported block type {type(block).__name__}: lacks {', '.join(missing)}")
        for name, child in block.named_children():
            self.add_module(name, child)
        self.num_prefix = num_prefix

    def forward(self, x: Tensor, attn_mask: Tensor | None = None, is_causal: bool = False) -> Tensor:
        """Dense forward exactly as timm's Block, so the patched timm model still works."""
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x), attn_mask=attn_mask, is_causal=is_causal)))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))

    def forward_tokens(self, tokens: Tokens, keep: BlockKeep | tuple[int, int] | None,
                       merging: str = "rank") -> Tokens:
        """One block on a token state; ``keep`` is a search-mode BlockKeep or deploy-mode counts;
        ``merging``: ``rank`` (least important kept tokens into their most similar kept token) or
        ``similarity`` (ToMe's bipartite matching, :mod:`hwsearch.model.matching`)."""
        x, size, policy, order = tokens.x, tokens.size, tokens.policy, tokens.order
        if isinstance(keep, BlockKeep) and keep.dense:
            keep = None
        if isinstance(keep, BlockKeep) and policy is None:
            policy, size = torch.ones_like(x[..., :1]), torch.ones_like(x[..., :1])
        deploy_compress = isinstance(keep, tuple) and min(keep) < x.shape[1]
        need_rank = deploy_compress and (merging == "rank" or keep[0] < x.shape[1])  # type: ignore[index]
        y, cls_attn, metric = attend(self.attn, self.norm1(x), size, policy, need_rank=need_rank)
        x = x + self.drop_path1(self.ls1(y))
        if isinstance(keep, BlockKeep) and merging == "similarity":
            x, size, policy, order = matching.search_step(x, size, policy, metric, cls_attn, order,  # type: ignore[arg-type]
                                                          self.num_prefix, keep)
        elif isinstance(keep, BlockKeep):
            x, size, policy = soft_prune_merge(x, size, policy, metric, cls_attn, self.num_prefix, keep)
        elif deploy_compress:
            if size is None:
                size = torch.ones_like(x[..., :1])
            if tokens.traces is None:
                x, size = self._deploy_step(x, size, metric, cls_attn, keep, merging)  # type: ignore[arg-type]
            else:  # the same step on the tokens with one-hot channels appended: they come out as the shares
                width, num = x.shape[-1], x.shape[1]
                one_hot = torch.eye(num, dtype=x.dtype, device=x.device).expand(x.shape[0], num, num)
                x, size = self._deploy_step(torch.cat([x, one_hot], -1), size, metric, cls_attn, keep,  # type: ignore[arg-type]
                                            merging)
                x, shares = x[..., :width], x[..., width:]
                tokens.traces.append(assignment(shares))
        elif tokens.traces is not None:
            tokens.traces.append(None)
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return Tokens(x, size, policy, order, tokens.traces)

    def _deploy_step(self, x: Tensor, size: Tensor, metric: Tensor, cls_attn: Tensor | None,
                     keep: tuple[int, int], merging: str) -> tuple[Tensor, Tensor]:
        """Deploy mode's real prune + merge to static counts."""
        prune_kept, merge_kept = keep
        if merging == "similarity":
            return matching.deploy_step(x, size, metric, cls_attn, self.num_prefix, prune_kept, merge_kept)
        # prune also sorts by rank, which the rank merge relies on
        x, size, metric = prune(x, size, metric, cls_attn, self.num_prefix, prune_kept)  # type: ignore[arg-type]
        return merge(x, size, metric, self.num_prefix, merge_kept)


class CompressedViT(nn.Module):
    """A timm VisionTransformer whose blocks compress tokens.

    ``counts`` (per block ``(prune_kept, merge_kept)``) makes it a deploy-mode model; passing
    ``keeps`` (search-mode :class:`BlockKeep` list) to :meth:`features` runs search mode.
    ``merging`` is the merge operator of every block: ``rank`` or ``similarity`` (MERGING).
    """

    def __init__(self, vit: nn.Module, counts: Sequence[tuple[int, int]] | None = None,
                 merging: str = "rank") -> None:
        super().__init__()
        if merging not in MERGING:
            raise HwsearchError(f"unknown merge operator {merging!r} (known: {', '.join(MERGING)})")
        self.merging = merging
        check_vit(vit)
        self.num_prefix = int(vit.num_prefix_tokens)
        for i, block in enumerate(vit.blocks):
            if not isinstance(block, CompressionBlock):
                vit.blocks[i] = CompressionBlock(block, self.num_prefix)
        self.vit = vit
        self.num_tokens = num_tokens(vit)
        self.counts = [tuple(map(int, c)) for c in counts] if counts is not None else None
        if self.counts is not None and len(self.counts) != len(vit.blocks):
            raise HwsearchError(f"schedule has {len(self.counts)} blocks, model has {len(vit.blocks)}")
        if self.counts is not None and merging == "similarity":
            self._check_similarity_limit()

    def _check_similarity_limit(self) -> None:
        """Similarity merging removes at most a block's A half: more would run silently with more tokens
        than the schedule (and its predicted cost) says."""
        for i, (p, m) in enumerate(self.counts or []):
            least = min_merge_kept(p, self.num_prefix, "similarity")
            if m < least:
                raise HwsearchError(f"block {i}: similarity merging keeps at least {least} of {p} tokens "
                                    f"(it merges at most half the patches), not {m}")

    @property
    def depth(self) -> int:
        return len(self.vit.blocks)

    def tokens(self, images: Tensor, keeps: Sequence[BlockKeep] | None = None, trace: bool = False) -> Tokens:
        """Embed, run all blocks (search mode when ``keeps`` given), final norm.

        ``trace`` (deploy mode): the result's ``traces`` hold, per block, where each entering token
        went (:func:`assignment`; None for a block that does not compress)."""
        vit = self.vit
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
        state = Tokens(x, traces=[] if trace else None)
        plan: Sequence[BlockKeep | tuple[int, int] | None] = keeps if keeps is not None else (
            self.counts if self.counts is not None else [None] * self.depth)
        for block, keep in zip(vit.blocks, plan, strict=True):
            state = block.forward_tokens(state, keep, self.merging)
        state.x = vit.norm(state.x)
        return state

    def features(self, images: Tensor, keeps: Sequence[BlockKeep] | None = None) -> Features:
        """Class token, patch mean and the model output (logits or pooled features)."""
        state = self.tokens(images, keeps)
        return forward_head(self.vit, state.x, state.size, state.policy)

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images).output


def forward_head(vit: Any, x: Tensor, size: Tensor | None = None, policy: Tensor | None = None) -> Features:
    """Pooling and head on the final (normed) tokens, like timm's ``forward_head(pre_logits)``.

    The patch mean is weighted by token size (and the policy in search mode), so merged tokens
    count for the patches they stand for. The one head: the whole model and the exported ``head``
    part both call it.
    """
    prefix = int(vit.num_prefix_tokens)
    patches = x[:, prefix:]
    weight = size[:, prefix:] if size is not None else torch.ones_like(patches[..., :1])
    if policy is not None:
        weight = weight * policy[:, prefix:]
    patch_mean = (patches * weight).sum(1) / weight.sum(1)
    pooled = x[:, 0] if vit.global_pool == "token" else patch_mean
    return Features(x[:, 0], patch_mean, vit.head(vit.head_drop(vit.fc_norm(pooled))))


def assignment(shares: Tensor) -> Tensor:
    """Where each token entering a block went: ``[B, N_in]``, the index of the token it is part of
    after the block's compression, or -1 where it was pruned.

    ``shares`` ``[B, N_out, N_in]`` is what deploy mode's own prune and merge make of one-hot
    channels appended to the tokens: ``size_i / size_j`` where token ``i`` went into token ``j``
    (the weight of its size-weighted average), 0 elsewhere.
    """
    weight, target = shares.max(dim=1)
    return torch.where(weight > 0, target, torch.full_like(target, -1))


def apply_schedule(model: nn.Module, schedule: object, merging: str = "rank") -> CompressedViT:
    """Deploy-mode model for any timm ViT (blocks patched in place, weights shared).

    ``schedule`` is a :class:`hwsearch.schedule.Schedule` (which names its merge operator) or a list
    of ``(prune_kept, merge_kept)`` with ``merging`` (``rank`` or ``similarity``).
    """
    vit = model.vit if isinstance(model, CompressedViT) else model
    counts = schedule.counts() if isinstance(schedule, Schedule) else list(schedule)  # type: ignore[arg-type]
    compressed = CompressedViT(vit, counts, schedule.merging if isinstance(schedule, Schedule) else merging)
    if isinstance(schedule, Schedule):
        schedule.check_model(compressed)
    return compressed


def hard_keeps(counts: Sequence[tuple[int, int]], num: int, like: Tensor) -> list[BlockKeep]:
    """Search-mode keeps that run a fixed schedule (hard masks, no gradient)."""
    return [fixed_keep(p, m, num, like) for p, m in counts]
