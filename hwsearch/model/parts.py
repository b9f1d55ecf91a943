"""The parts of a compressed ViT as standalone static-shape modules, for export and profiling.

A deploy-mode block at ``n`` tokens entering, keeping ``(p, m)`` costs
``attn(n) + compress(n, p, m) + mlp(m)``; the model adds ``embed`` and ``head(m_last)``.
Each wrapper's ``forward`` takes only tensors (ONNX/TorchScript export friendly).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from hwsearch.model.matching import deploy_step
from hwsearch.model.tokens import class_attention, merge, prune
from hwsearch.model.vit import CompressedViT, attend, forward_head


class Embed(nn.Module):
    def __init__(self, model: CompressedViT) -> None:
        super().__init__()
        self.vit = model.vit

    def forward(self, images: Tensor) -> Tensor:
        vit = self.vit
        return vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(images))))


class AttnPart(nn.Module):
    """norm1 + attention with the ``log(size)`` bias + layer scale + residual."""

    def __init__(self, model: CompressedViT, index: int = 0) -> None:
        super().__init__()
        self.block = model.vit.blocks[index]

    def forward(self, x: Tensor, size: Tensor) -> Tensor:
        b = self.block
        y, _, _ = attend(b.attn, b.norm1(x), size, None, need_rank=False)
        return x + b.drop_path1(b.ls1(y))


class MlpPart(nn.Module):
    def __init__(self, model: CompressedViT, index: int = 0) -> None:
        super().__init__()
        self.block = model.vit.blocks[index]

    def forward(self, x: Tensor) -> Tensor:
        b = self.block
        return x + b.drop_path2(b.ls2(b.mlp(b.norm2(x))))


class DenseBlock(nn.Module):
    """A whole dense timm block (for the position-effect and additivity checks)."""

    def __init__(self, model: CompressedViT, index: int = 0) -> None:
        super().__init__()
        self.block = model.vit.blocks[index]

    def forward(self, x: Tensor) -> Tensor:
        return self.block(x)


class CompressPart(nn.Module):
    """Class-attention row + prune to ``p`` + merge to ``m`` (what a block adds when compressing),
    with the block's own operators (``merging``: rank or similarity, see CompressionBlock)."""

    def __init__(self, model: CompressedViT, prune_kept: int, merge_kept: int, merging: str = "rank") -> None:
        super().__init__()
        attn = model.vit.blocks[0].attn
        self.scale, self.num_prefix, self.merging = float(attn.scale), model.num_prefix, merging
        self.prune_kept, self.merge_kept = prune_kept, merge_kept

    def forward(self, x: Tensor, size: Tensor, q_cls: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        cls_attn = class_attention(q_cls, k, self.scale, size.log().reshape(size.shape[0], 1, 1, -1))
        if self.merging == "similarity":
            return deploy_step(x, size, k.mean(1), cls_attn, self.num_prefix, self.prune_kept, self.merge_kept)
        x, size, metric = prune(x, size, k.mean(1), cls_attn, self.num_prefix, self.prune_kept)
        return merge(x, size, metric, self.num_prefix, self.merge_kept)


class Head(nn.Module):
    """Final norm, size-weighted pooling and head on the tokens that are left (the whole model's own
    :func:`forward_head`)."""

    def __init__(self, model: CompressedViT) -> None:
        super().__init__()
        self.vit = model.vit

    def forward(self, x: Tensor, size: Tensor | None = None) -> Tensor:
        return forward_head(self.vit, self.vit.norm(x), size).output


def example_inputs(part: str, model: CompressedViT, batch: int, tokens: int) -> dict[str, Tensor]:
    """Named example inputs of a part's static shapes (the order is the forward's)."""
    vit = model.vit
    dim = vit.embed_dim
    attn = vit.blocks[0].attn
    gen = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen)

    if part == "embed" or part == "model":
        size = vit.patch_embed.img_size
        return {"images": randn(batch, 3, size[0], size[1])}
    if part == "attn" or (part == "head" and vit.global_pool != "token"):  # token pooling never reads sizes
        return {"x": randn(batch, tokens, dim), "size": torch.ones(batch, tokens, 1)}
    if part in ("mlp", "block", "head"):
        return {"x": randn(batch, tokens, dim)}
    if part in ("compress", "compress_similarity"):
        return {"x": randn(batch, tokens, dim), "size": torch.ones(batch, tokens, 1),
                "q_cls": randn(batch, attn.num_heads, 1, attn.head_dim),
                "k": randn(batch, attn.num_heads, tokens, attn.head_dim)}
    raise ValueError(f"unknown part {part!r}")
