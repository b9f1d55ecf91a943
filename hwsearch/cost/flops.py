"""Analytic FLOPs of a timm ViT as GMACs (one multiply-add = 1), the unit of DiffRate and fvcore;
``FlopCounterMode`` counts 2 per multiply-add."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hwsearch.cost.base import CostModel
from hwsearch.cost.base import value_of as _value
from hwsearch.model.tokens import BlockKeep


def _linear_macs(module: nn.Module) -> int:
    """Multiply-adds per token of all Linear layers inside ``module``."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


@dataclass
class FlopsCost(CostModel):
    """Analytic MACs of a timm ViT, exact for its matmuls; softmax/norms/gather are not counted."""

    num_tokens: int
    num_prefix: int
    attn_dim: int
    head_dim: int
    attn_linear: int
    mlp_linear: int
    embed: int
    head: int
    unit: str = "GMACs"
    merging: str = "rank"

    @classmethod
    def from_model(cls, vit: nn.Module, merging: str = "rank") -> "FlopsCost":
        block = vit.blocks[0]
        attn = block.attn
        proj = vit.patch_embed.proj
        patches = int(vit.patch_embed.num_patches)
        embed = patches * proj.out_channels * proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1]
        num_prefix = int(vit.num_prefix_tokens)
        return cls(num_tokens=patches + num_prefix, num_prefix=num_prefix,
                   attn_dim=attn.num_heads * attn.head_dim, head_dim=attn.head_dim,
                   attn_linear=_linear_macs(attn), mlp_linear=_linear_macs(block.mlp),
                   embed=embed, head=_linear_macs(vit.head), merging=merging)

    def block_macs(self, n_in: Tensor | float, n_out: Tensor | float) -> Tensor | float:
        """Attention (linear + two N^2 matmuls) on ``n_in`` tokens, MLP on ``n_out``."""
        return self.attn_macs(n_in) + n_out * self.mlp_linear

    def attn_macs(self, n_in: Tensor | float) -> Tensor | float:
        return n_in * self.attn_linear + 2 * n_in * n_in * self.attn_dim

    def overhead_macs(self, n_in: Tensor | float, prune_kept: Tensor | float,
                      merge_kept: Tensor | float) -> Tensor | float:
        """Compression step: the class-attention row (rank merging, or when pruning) and the
        similarities (sources x kept targets; similarity merging: set A x set B, (p - prefix)^2 / 4)."""
        pruning = self.merging == "rank" or _value(prune_kept) < _value(n_in)
        ranking = n_in * self.attn_dim if pruning else 0.0
        if _value(merge_kept) >= _value(prune_kept):
            return ranking
        if self.merging == "similarity":
            return ranking + (prune_kept - self.num_prefix) ** 2 / 4 * self.head_dim
        return ranking + (prune_kept - merge_kept) * (merge_kept - self.num_prefix) * self.head_dim

    def _total(self, counts: Sequence[tuple[Tensor | float, Tensor | float]]) -> Tensor | float:
        total: Tensor | float = self.embed + self.head
        n_in: Tensor | float = float(self.num_tokens)
        for prune_kept, merge_kept in counts:
            total = total + self.block_macs(n_in, merge_kept)
            if _value(merge_kept) < _value(n_in):
                total = total + self.overhead_macs(n_in, prune_kept, merge_kept)
            n_in = merge_kept
        return total / 1e9

    def expected_cost(self, keeps: Sequence[BlockKeep]) -> Tensor:
        """GMACs at the straight-through counts (DiffRate's FLOPs term)."""
        out = self._total([(k.prune_kept, k.merge_kept) for k in keeps])
        return out if isinstance(out, Tensor) else torch.tensor(out)

    def cost(self, counts: Sequence[tuple[int, int]]) -> float:
        return float(self._total([(float(p), float(m)) for p, m in counts]))

    def block_parts(self, counts: Sequence[tuple[int, int]]) -> list[dict[str, float]]:
        """Per block, GMACs of attention (on the tokens entering), MLP (on ``merge_kept``) and the
        compression step (0 where the block does not compress)."""
        out, n_in = [], float(self.num_tokens)
        for p, m in counts:
            attn = float(self.attn_macs(n_in))
            step = float(self.overhead_macs(n_in, float(p), float(m))) if m < n_in else 0.0
            out.append({"attn": attn / 1e9, "mlp": m * self.mlp_linear / 1e9, "compress": step / 1e9})
            n_in = float(m)
        return out

    def breakdown(self, counts: Sequence[tuple[int, int]]) -> dict[str, float]:
        """GMACs split into embed, blocks, compression overhead and head."""
        blocks = overhead = 0.0
        n_in = float(self.num_tokens)
        for p, m in counts:
            blocks += float(self.block_macs(n_in, float(m)))
            if m < n_in:
                overhead += float(self.overhead_macs(n_in, float(p), float(m)))
            n_in = float(m)
        return {"embed": self.embed / 1e9, "blocks": blocks / 1e9, "overhead": overhead / 1e9,
                "head": self.head / 1e9, "total": (self.embed + blocks + overhead + self.head) / 1e9}
