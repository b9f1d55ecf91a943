"""timm ViT made compressible: search mode (masks) and deploy mode (real static-count drop/merge).

The timm model's blocks are replaced in place by :class:`CompressionBlock`, which takes over the
block's own children, so ``state_dict`` keys stay timm's and a timm checkpoint loads unchanged.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hwsearch.compress import BlockKeep, fixed_keep, merge, prune, soft_prune_merge, softmax_with_policy
from hwsearch.errors import HwsearchError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

_BLOCK_PARTS = ("norm1", "attn", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2")


@dataclass
class Tokens:
    """Token state between blocks. ``size``/``policy`` are None while unused (dense so far)."""

    x: Tensor
    size: Tensor | None = None
    policy: Tensor | None = None


@dataclass
class Features:
    """Final features: class token, size-weighted mean of surviving patch tokens, model output."""

    cls: Tensor
    patch_mean: Tensor
    output: Tensor


def attend(attn: nn.Module, x: Tensor, size: Tensor | None, policy: Tensor | None, need_rank: bool = True
           ) -> tuple[Tensor, Tensor | None, Tensor]:
    """timm ``Attention.forward`` with proportional attention (``+ log size``) and a policy.

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
        cls_attn = None
        if need_rank:
            cls_logits = (q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)
            if bias is not None:
                cls_logits = cls_logits + bias
            cls_attn = cls_logits.softmax(-1)[:, :, 0].mean(1)
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
    """A timm ``Block`` (same children) with prune + merge between attention and MLP."""

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

    def forward_tokens(self, tokens: Tokens, keep: BlockKeep | tuple[int, int] | None) -> Tokens:
        """One block on a token state; ``keep`` is a search-mode BlockKeep or deploy-mode counts."""
        x, size, policy = tokens.x, tokens.size, tokens.policy
        if isinstance(keep, BlockKeep) and keep.dense:
            keep = None
        if isinstance(keep, BlockKeep) and policy is None:
            policy, size = torch.ones_like(x[..., :1]), torch.ones_like(x[..., :1])
        deploy_compress = isinstance(keep, tuple) and min(keep) < x.shape[1]
        y, cls_attn, metric = attend(self.attn, self.norm1(x), size, policy, need_rank=deploy_compress)
        x = x + self.drop_path1(self.ls1(y))
        if isinstance(keep, BlockKeep):
            x, size, policy = soft_prune_merge(x, size, policy, metric, cls_attn, self.num_prefix, keep)
        elif deploy_compress:
            prune_kept, merge_kept = keep  # type: ignore[misc]
            if size is None:
                size = torch.ones_like(x[..., :1])
            # prune also sorts by rank, which merge relies on
            x, size, metric = prune(x, size, metric, cls_attn, self.num_prefix, prune_kept)
            x, size = merge(x, size, metric, self.num_prefix, merge_kept)
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return Tokens(x, size, policy)


class CompressedViT(nn.Module):
    """A timm VisionTransformer whose blocks compress tokens.

    ``counts`` (per block ``(prune_kept, merge_kept)``) makes it a deploy-mode model; passing
    ``keeps`` (search-mode :class:`BlockKeep` list) to :meth:`features` runs search mode.
    """

    def __init__(self, vit: nn.Module, counts: Sequence[tuple[int, int]] | None = None) -> None:
        super().__init__()
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

    @property
    def depth(self) -> int:
        return len(self.vit.blocks)

    def tokens(self, images: Tensor, keeps: Sequence[BlockKeep] | None = None) -> Tokens:
        """Embed, run all blocks (search mode when ``keeps`` given), final norm."""
        vit = self.vit
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))
        state = Tokens(x)
        plan: Sequence[BlockKeep | tuple[int, int] | None] = keeps if keeps is not None else (
            self.counts if self.counts is not None else [None] * self.depth)
        for block, keep in zip(vit.blocks, plan, strict=True):
            state = block.forward_tokens(state, keep)
        state.x = vit.norm(state.x)
        return state

    def features(self, images: Tensor, keeps: Sequence[BlockKeep] | None = None) -> Features:
        """Class token, patch mean and the model output (logits or pooled features)."""
        state = self.tokens(images, keeps)
        cls = state.x[:, 0]
        patches = state.x[:, self.num_prefix:]
        weight = torch.ones_like(patches[..., :1])
        if state.size is not None:
            weight = state.size[:, self.num_prefix:]
        if state.policy is not None:
            weight = weight * state.policy[:, self.num_prefix:]
        patch_mean = (patches * weight).sum(1) / weight.sum(1)
        vit = self.vit
        pooled = cls if vit.global_pool == "token" else patch_mean
        output = vit.head(vit.head_drop(vit.fc_norm(pooled)))
        return Features(cls, patch_mean, output)

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images).output


def check_vit(vit: nn.Module) -> None:
    """Refuse models the compression cannot handle, with a clear reason."""
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(vit, VisionTransformer):
        raise HwsearchError(f"{type(vit).__name__} is not a timm VisionTransformer")
    if not getattr(vit, "has_class_token", getattr(vit, "cls_token", None) is not None):
        raise HwsearchError("model has no class token: class-attention ranking needs one")
    if vit.global_pool not in ("token", "avg"):
        raise HwsearchError(f"global_pool={vit.global_pool!r} is not supported (use 'token' or 'avg')")
    if getattr(vit, "dynamic_img_size", False):
        raise HwsearchError("dynamic_img_size models are not supported: token counts must be static")


def num_tokens(vit: nn.Module) -> int:
    """Tokens entering the first block: patches + prefix tokens."""
    return int(vit.patch_embed.num_patches) + int(vit.num_prefix_tokens)


def apply_schedule(model: nn.Module, schedule: object) -> CompressedViT:
    """Deploy-mode model for any timm ViT (blocks patched in place, weights shared).

    ``schedule`` is a :class:`hwsearch.schedule.Schedule` or a list of ``(prune_kept, merge_kept)``.
    """
    from hwsearch.schedule import Schedule

    vit = model.vit if isinstance(model, CompressedViT) else model
    counts = schedule.counts() if isinstance(schedule, Schedule) else list(schedule)  # type: ignore[arg-type]
    compressed = CompressedViT(vit, counts)
    if isinstance(schedule, Schedule):
        schedule.check_model(compressed)
    return compressed


def hard_keeps(counts: Sequence[tuple[int, int]], num: int, like: Tensor) -> list[BlockKeep]:
    """Search-mode keeps that run a fixed schedule (hard masks, no gradient)."""
    return [fixed_keep(p, m, num, like) for p, m in counts]


# ---------------------------------------------------------------------------------------------
# Building models


@dataclass
class ModelInfo:
    """What preprocessing and bookkeeping need to know about a model."""

    name: str
    img_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_tokens: int
    num_prefix: int
    depth: int
    num_classes: int
    checkpoint: str | None


def create_vit(name: str, checkpoint: str | Path | None = None, img_size: int | None = None,
               **kwargs: object) -> nn.Module:
    """Create a timm ViT by name; load local pretrained weights (safetensors or torch state_dict)."""
    import timm

    if name not in timm.list_models():
        raise HwsearchError(f"unknown model {name!r}: not a timm model name (see timm.list_models('vit*'))")
    if img_size is not None:
        kwargs["img_size"] = img_size
    state = None
    if checkpoint is not None:
        state = read_checkpoint(checkpoint)
        if "num_classes" not in kwargs:  # a classifier checkpoint sets its own head size
            head = state.get("head.weight")
            kwargs["num_classes"] = int(head.shape[0]) if head is not None else 0
    try:
        with torch.random.fork_rng():  # without a checkpoint: the same random weights in every process
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise HwsearchError(f"cannot build {name!r} with {kwargs}: {exc}") from None
    check_vit(model)
    if state is not None:
        load_strict(model, state, f"checkpoint {checkpoint} does not match {name}")
    return model.eval()


def load_strict(model: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """``load_state_dict`` that fails with one short line (counts and a first example)."""
    current = model.state_dict()
    missing = [k for k in current if k not in state]
    unexpected = [k for k in state if k not in current]
    shapes = [k for k in current if k in state and tuple(state[k].shape) != tuple(current[k].shape)]
    problems = [f"{len(v)} {label} (e.g. {v[0]})" for label, v in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if v]
    if problems:
        raise HwsearchError(f"{what}: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """timm-keyed weights from ``.safetensors`` or a torch state_dict (``weights_only``, no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise HwsearchError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for key in ("state_dict", "model", "state_dict_ema"):
                if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
    except Exception as exc:  # corrupt file: one clear line
        raise HwsearchError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise HwsearchError(f"checkpoint {path} is not a state_dict")
    return state


def model_info(vit: nn.Module, name: str, checkpoint: str | None) -> ModelInfo:
    """Preprocessing from the model's own timm ``pretrained_cfg``; sizes from the model."""
    cfg = getattr(vit, "pretrained_cfg", {}) or {}
    img = vit.patch_embed.img_size
    return ModelInfo(
        name=name,
        img_size=int(img[0] if isinstance(img, (tuple, list)) else img),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
        num_tokens=num_tokens(vit),
        num_prefix=int(vit.num_prefix_tokens),
        depth=len(vit.blocks),
        num_classes=int(vit.num_classes),
        checkpoint=checkpoint,
    )
