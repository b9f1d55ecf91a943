"""Token maps: which image patches each deploy-mode token stands for after a block (``hwsearch show``).

The bookkeeping is deploy mode's own: :meth:`CompressedViT.tokens` with ``trace=True`` runs the real
prune and merge on the tokens with one-hot channels appended, and reads where every token went
(:func:`hwsearch.model.vit.assignment`). Drawn ToMe-style: a patch still alone in its token shows
the image, patches merged into one token share that token's mean colour inside a white outline,
pruned patches are grey (darker = dropped earlier).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hwsearch.data import ImageSet, normalize
from hwsearch.model.vit import CompressedViT
from hwsearch.report.plots import save_png
from hwsearch.schedule import Counts


def owners(model: CompressedViT, images: Tensor) -> list[Tensor]:
    """Per block, ``[B, N0]``: for every token of the embedded image (prefix first), the index of the
    token it is part of after that block's compression, or -1 once pruned."""
    with torch.no_grad():
        state = model.tokens(images, trace=True)
    owner = torch.arange(model.num_tokens).expand(images.shape[0], -1)
    out = []
    for trace in state.traces or []:
        if trace is not None:
            owner = torch.where(owner >= 0, trace.gather(1, owner.clamp(min=0)), -1)
        out.append(owner)
    return out


def default_blocks(counts: Counts, num_tokens: int) -> list[int]:
    """Every third compressing block (from the first) and the last block."""
    compressing, entering = [], num_tokens
    for i, (_, m) in enumerate(counts):
        if m < entering:
            compressing.append(i)
        entering = m
    return sorted(set(compressing[::3]) | {len(counts) - 1})


def dropped_at(maps: Sequence[Tensor]) -> Tensor:
    """``[B, N0]``: the block where each token was pruned, -1 where it never was."""
    out = torch.full_like(maps[0], -1)
    for block in range(len(maps) - 1, -1, -1):
        out = torch.where(maps[block] < 0, block, out)
    return out


def draw(image: np.ndarray, owner: np.ndarray, dropped: np.ndarray, patch: int, depth: int) -> np.ndarray:
    """One panel: ``image`` ``[H, W, 3]`` uint8; ``owner``/``dropped`` per patch token (no prefix)."""
    grid = image.shape[0] // patch
    owner, dropped = owner.reshape(grid, grid), dropped.reshape(grid, grid)
    pixel_owner = np.kron(owner, np.ones((patch, patch), dtype=owner.dtype))
    out = image.astype(np.float64).copy()
    ids, counts = np.unique(owner[owner >= 0], return_counts=True)
    for token in ids[counts > 1]:
        inside = pixel_owner == token
        out[inside] = out[inside].mean(axis=0)
    pruned = np.kron(dropped >= 0, np.ones((patch, patch), dtype=bool))
    shade = np.kron(60 + 150 * dropped / max(depth - 1, 1), np.ones((patch, patch)))
    out[pruned] = (0.25 * out[pruned].mean(axis=1, keepdims=True) + 0.75 * shade[pruned, None])
    merged = np.isin(pixel_owner, ids[counts > 1])
    edge = np.zeros_like(merged)
    edge[:, 1:] |= (pixel_owner[:, 1:] != pixel_owner[:, :-1]) & (merged[:, 1:] | merged[:, :-1])
    edge[1:, :] |= (pixel_owner[1:, :] != pixel_owner[:-1, :]) & (merged[1:, :] | merged[:-1, :])
    out[edge & ~pruned] = 255.0
    return out.clip(0, 255).astype(np.uint8)


def token_map_figure(model: CompressedViT, image: np.ndarray, name: str, maps: Sequence[Tensor],
                     blocks: Sequence[int]) -> Any:
    """The image ``[H, W, 3]``, then its token map after each of ``blocks`` (``maps``: this image's
    :func:`owners`, ``[N0]`` per block), in one row."""
    import matplotlib.pyplot as plt

    prefix, patch = model.num_prefix, int(model.vit.patch_embed.patch_size[0])
    dropped = dropped_at(maps)[prefix:].numpy()
    fig, axes = plt.subplots(1, len(blocks) + 1, figsize=(2.6 * (len(blocks) + 1), 3.1), squeeze=False)
    axes[0][0].imshow(image)
    axes[0][0].set_title(f"{name}\n{model.num_tokens} tokens", fontsize=9)
    for ax, block in zip(axes[0][1:], blocks, strict=True):
        owner = maps[block].numpy()
        gone = np.where((dropped >= 0) & (dropped <= block), dropped, -1)
        alive = owner[prefix:][owner[prefix:] >= 0]
        ax.imshow(draw(image, owner[prefix:], gone, patch, model.depth))
        ax.set_title(f"after block {block}: {len(np.unique(owner[owner >= 0]))} tokens\n"
                     f"{int((gone >= 0).sum())} patches pruned, {len(alive) - len(np.unique(alive))} merged away",
                     fontsize=9)
    for ax in axes[0]:
        ax.axis("off")
    fig.text(0.5, 0.01, "image: patch kept alone; flat colour in white outline: patches merged into one token; "
             "grey: pruned (darker = earlier)", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def token_map_figures(model: CompressedViT, images: ImageSet, blocks: Sequence[int]) -> dict[str, Any]:
    """One figure per image, by the image's photo name (or ``image<i>``)."""
    maps = owners(model, normalize(images.images, model.vit.pretrained_cfg))
    names = images.groups or [f"image{i}" for i in range(len(images))]
    return {names[i]: token_map_figure(model, images.images[i].permute(1, 2, 0).numpy(), names[i],
                                       [m[i] for m in maps], blocks) for i in range(len(images))}


def token_map_pngs(model: CompressedViT, images: ImageSet, blocks: Sequence[int], folder: Path, stem: str
                   ) -> list[Path]:
    """One PNG per image: ``folder/<stem>.<photo>.png``."""
    return [save_png(fig, folder / f"{stem}.{name}.png", bbox_inches="tight")
            for name, fig in token_map_figures(model, images, blocks).items()]
