"""Cost models with one interface: analytic FLOPs, and measured latency/energy fitted per device.

Counts per block are ``(prune_kept, merge_kept)``: attention runs on the tokens entering the block,
the MLP on ``merge_kept`` tokens. FLOPs are reported as GMACs (one multiply-add = 1), the unit of
DiffRate and fvcore; ``FlopCounterMode`` counts 2 per multiply-add.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from hwsearch.compress import BlockKeep

Counts = Sequence[tuple[int, int]]


class CostModel(ABC):
    """Cost of a compressed model as a function of its per-block token counts.

    Implementations provide ``unit`` and ``num_tokens`` (tokens entering the first block).
    """

    unit: str
    num_tokens: int

    @abstractmethod
    def expected_cost(self, keeps: Sequence[BlockKeep]) -> Tensor:
        """Differentiable (w.r.t. the DDP logits) cost of the current search-mode rates."""

    @abstractmethod
    def cost(self, counts: Counts) -> float:
        """Cost of a fixed schedule."""

    def dense_cost(self, depth: int) -> float:
        return self.cost([(self.num_tokens, self.num_tokens)] * depth)


@dataclass
class Budget:
    """One budget of the search: a cost model, its target and the weight of its loss term.

    The search adds ``lam * weight * (expected_cost / target - 1)^2`` per budget; two budgets
    (latency and energy) give a weighted sum of both terms.
    """

    cost: CostModel
    target: float
    weight: float = 1.0
    name: str = ""

    def penalty(self, expected: Tensor) -> Tensor:
        return self.weight * (expected / self.target - 1.0) ** 2


def _linear_macs(module: nn.Module) -> int:
    """Multiply-adds per token of all Linear layers inside ``module``."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def _value(v: Tensor | float) -> float:
    return float(v.detach()) if isinstance(v, Tensor) else float(v)



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

    @classmethod
    def from_model(cls, vit: nn.Module) -> "FlopsCost":
        block = vit.blocks[0]
        attn = block.attn
        proj = vit.patch_embed.proj
        patches = int(vit.patch_embed.num_patches)
        embed = patches * proj.out_channels * proj.in_channels * proj.kernel_size[0] * proj.kernel_size[1]
        num_prefix = int(vit.num_prefix_tokens)
        return cls(num_tokens=patches + num_prefix, num_prefix=num_prefix,
                   attn_dim=attn.num_heads * attn.head_dim, head_dim=attn.head_dim,
                   attn_linear=_linear_macs(attn), mlp_linear=_linear_macs(block.mlp),
                   embed=embed, head=_linear_macs(vit.head))

    def block_macs(self, n_in: Tensor | float, n_out: Tensor | float) -> Tensor | float:
        """Attention (linear + two N^2 matmuls) on ``n_in`` tokens, MLP on ``n_out``."""
        return n_in * self.attn_linear + 2 * n_in * n_in * self.attn_dim + n_out * self.mlp_linear

    def overhead_macs(self, n_in: Tensor | float, prune_kept: Tensor | float,
                      merge_kept: Tensor | float) -> Tensor | float:
        """Compression step: the class-attention row and source-to-target similarities."""
        sources = prune_kept - merge_kept
        return n_in * self.attn_dim + sources * (merge_kept - self.num_prefix) * self.head_dim

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

    def cost(self, counts: Counts) -> float:
        return float(self._total([(float(p), float(m)) for p, m in counts]))

    def breakdown(self, counts: Counts) -> dict[str, float]:
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


class MeasuredCost(CostModel):
    """Latency (or energy) from a fitted cost model (``costmodel.json``, see :mod:`hwsearch.fit`).

    ``cost(counts)`` = overhead + scale * (embed + sum over blocks of attn(n_in) + compress(n_in, p, m)
    + mlp(m) + head(m_last)). ``expected_cost`` is differentiable w.r.t. the DDP logits: the MLP
    term is the ProxylessNAS expectation sum_k q_k * mlp(min(c_k, prune_kept)) over the merge
    distribution (a staircase table still gives a gradient through q); tokens entering the next
    block are the straight-through count (the same integer the schedule will have), and attention
    and compression terms interpolate the per-integer tables linearly at that count.
    """

    def __init__(self, data: dict, quantity: str = "latency") -> None:
        if quantity not in data["quantities"]:
            from hwsearch.errors import HwsearchError

            raise HwsearchError(f"no {quantity} measurements for {data['model']} on {data['target']}: its profile "
                                f"has none (profile on the device with a power meter, then hwsearch fit)")
        q = data["quantities"][quantity]
        self.data, self.quantity, self.unit = data, quantity, q["unit"]
        self.num_tokens = int(data["num_tokens"])
        self.tables = {part: (int(p["low"]), int(p["high"]), torch.tensor(p["table"], dtype=torch.float64))
                       for part, p in q["parts"].items()}
        self.embed = float(q["embed"])
        self.coef = torch.tensor(q["compress"]["coef"], dtype=torch.float64)
        self.overhead = float(q["correction"]["overhead"])
        self.scale = float(q["correction"]["scale"])

    def lookup(self, part: str, n: Tensor | float) -> Tensor:
        """Piecewise-linear in n between the integer entries; refuses outside the profiled range."""
        low, high, table = self.tables[part]
        value = _value(n)
        if not low <= value <= high:
            from hwsearch.errors import HwsearchError

            raise HwsearchError(f"cost model covers {part} at {low}..{high} tokens, not {value:g} (profile that range)")
        n_t = n if isinstance(n, Tensor) else torch.tensor(float(n), dtype=torch.float64)
        pos = n_t.to(torch.float64) - low
        i = int(min(max(0, int(pos.detach().floor())), len(table) - 2)) if len(table) > 1 else 0
        if len(table) == 1:
            return table[0] + 0 * pos
        return table[i] + (pos - i) * (table[i + 1] - table[i])

    def compress(self, n: Tensor | float, p: Tensor | float, m: Tensor | float) -> Tensor:
        from hwsearch.profile import compress_features

        feats = compress_features(n, p, m)
        total = torch.zeros((), dtype=torch.float64)
        for c, f in zip(self.coef, feats, strict=True):
            total = total + c * (f.to(torch.float64) if isinstance(f, Tensor) else float(f))
        return total

    def expected_mlp(self, probs: Tensor, candidates: Tensor, limit: float) -> Tensor:
        """ProxylessNAS expectation over the kept-count distribution: sum_k q_k * mlp(min(c_k, limit))."""
        values = torch.stack([self.lookup("mlp", min(float(c), limit)) for c in candidates])
        return (probs.to(torch.float64) * values).sum()

    def _parts(self, counts: Sequence[tuple[Tensor | float, Tensor | float]],
               mlp_terms: Sequence[Tensor] | None = None) -> Tensor:
        total = torch.tensor(self.embed, dtype=torch.float64)
        n_in: Tensor | float = float(self.num_tokens)
        for i, (p, m) in enumerate(counts):
            total = total + self.lookup("attn", n_in)
            total = total + (mlp_terms[i] if mlp_terms is not None else self.lookup("mlp", m))
            if _value(m) < _value(n_in):
                total = total + self.compress(n_in, p, m)
            n_in = m
        return total + self.lookup("head", n_in)

    def sum_of_parts(self, counts: Counts) -> float:
        """The parts added up, before the whole-model correction."""
        return float(self._parts([(float(p), float(m)) for p, m in counts]))

    def cost(self, counts: Counts) -> float:
        return self.overhead + self.scale * self.sum_of_parts(counts)

    def expected_cost(self, keeps: Sequence[BlockKeep]) -> Tensor:
        mlp_terms = []
        for k in keeps:
            probs, cands = (k.merge_probs, k.merge_candidates) if k.merge_probs is not None else \
                (k.prune_probs, k.prune_candidates)
            if probs is None or cands is None:
                mlp_terms.append(self.lookup("mlp", k.merge_kept))
                continue
            limit = _value(k.prune_kept) if k.merge_probs is not None else float(self.num_tokens)
            mlp_terms.append(self.expected_mlp(probs, cands, limit))
        parts = self._parts([(k.prune_kept, k.merge_kept) for k in keeps], mlp_terms)
        return (self.overhead + self.scale * parts).to(torch.float32)
