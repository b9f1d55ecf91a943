"""Measured latency or energy: the fitted tables of costmodel.json as a differentiable cost model."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from hwsearch.cost.base import CostModel
from hwsearch.cost.base import value_of as _value
from hwsearch.errors import HwsearchError
from hwsearch.model.tokens import BlockKeep
from hwsearch.profiling.additivity import compress_features

QUANTITIES = {"latency_ms": "latency", "speedup": "latency", "energy_mj": "energy"}
"""Budget kinds measured on a device, and the cost-model quantity each is on."""


class MeasuredCost(CostModel):
    """Latency (or energy) from a fitted cost model (``costmodel.json``, see :mod:`hwsearch.fit`).

    ``cost(counts)`` = overhead + scale * (embed + sum over blocks of attn(n_in) + mlp(m) + head(m_last))
    + step_scale * sum over compressing blocks of compress(n_in, p, m) (``step_scale``: the whole-model
    correction's own scale for compression steps where ``fit --measure`` found one, else ``scale``).
    ``expected_cost`` is differentiable w.r.t. the DDP logits: the MLP
    term is the ProxylessNAS expectation sum_k q_k * mlp(min(c_k, prune_kept)) over the merge
    distribution (a staircase table still gives a gradient through q); tokens entering the next
    block are the straight-through count (the same integer the schedule will have), and attention
    and compression terms interpolate the per-integer tables linearly at that count. Where the rates
    give P(prune) and P(merge), a block's compression step is gated by P(any step) and its
    "prunes"/"merges" terms by each (straight-through: values stay the hard schedule's), so fixed
    step costs have a gradient: a block may learn to skip its step, or a prune of one or two tokens.
    """

    measured = True

    def __init__(self, data: dict, quantity: str = "latency", merging: str = "rank") -> None:
        if quantity not in data["quantities"]:
            raise HwsearchError(f"no {quantity} measurements for {data['model']} on {data['target']}: its profile "
                                f"has none (profile on the device with a power meter, then hwsearch fit)")
        q = data["quantities"][quantity]
        self.data, self.quantity, self.unit = data, quantity, q["unit"]
        self.num_tokens = int(data["num_tokens"])
        self.tables = {part: (int(p["low"]), int(p["high"]), torch.tensor(p["table"], dtype=torch.float64))
                       for part, p in q["parts"].items()}
        self.embed = float(q["embed"])
        coef = q["compress"]["coef"] if merging == "rank" else q["compress"].get(f"{merging}_coef")
        if coef is None:
            raise HwsearchError(f"the cost model of {data['model']} on {data['target']} has no {merging}-merge "
                                f"compression samples: its profile predates them (run hwsearch profile again)")
        self.merging = merging
        self.coef = torch.tensor(coef, dtype=torch.float64)
        self.overhead = float(q["correction"]["overhead"])
        self.scale = float(q["correction"]["scale"])
        self.step_scale = float(q["correction"].get("step_scale", self.scale))

    def lookup(self, part: str, n: Tensor | float) -> Tensor:
        """Piecewise-linear in n between the integer entries; refuses outside the profiled range."""
        low, high, table = self.tables[part]
        value = _value(n)
        if not low <= value <= high:
            raise HwsearchError(f"cost model covers {part} at {low}..{high} tokens, not {value:g} (profile that range)")
        n_t = n if isinstance(n, Tensor) else torch.tensor(float(n), dtype=torch.float64)
        pos = n_t.to(torch.float64) - low
        i = int(min(max(0, int(pos.detach().floor())), len(table) - 2)) if len(table) > 1 else 0
        if len(table) == 1:
            return table[0] + 0 * pos
        return table[i] + (pos - i) * (table[i + 1] - table[i])

    def compress(self, n: Tensor | float, p: Tensor | float, m: Tensor | float,
                 step_probs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        feats = compress_features(n, p, m, self.merging, step_probs)
        total = torch.zeros((), dtype=torch.float64)
        for c, f in zip(self.coef, feats, strict=True):
            total = total + c * (f.to(torch.float64) if isinstance(f, Tensor) else float(f))
        return total

    def expected_mlp(self, probs: Tensor, candidates: Tensor, limit: float) -> Tensor:
        """ProxylessNAS expectation over the kept-count distribution: sum_k q_k * mlp(min(c_k, limit))."""
        values = torch.stack([self.lookup("mlp", min(float(c), limit)) for c in candidates])
        return (probs.to(torch.float64) * values).sum()

    def _terms(self, counts: Sequence[tuple[Tensor | float, Tensor | float]],
               mlp_terms: Sequence[Tensor] | None = None,
               step_probs: Sequence[tuple[Tensor, Tensor] | None] | None = None) -> tuple[Tensor, Tensor]:
        """(embed + attention + MLP + head, compression steps), added up in one pass before the
        whole-model correction (which may scale the two differently)."""
        blocks = torch.tensor(self.embed, dtype=torch.float64)
        steps = torch.zeros((), dtype=torch.float64)
        n_in: Tensor | float = float(self.num_tokens)
        for i, (p, m) in enumerate(counts):
            blocks = blocks + self.lookup("attn", n_in)
            blocks = blocks + (mlp_terms[i] if mlp_terms is not None else self.lookup("mlp", m))
            probs = step_probs[i] if step_probs is not None else None
            gate = None if probs is None else 1.0 - (1.0 - probs[0]) * (1.0 - probs[1])  # P(any step)
            if _value(m) < _value(n_in):
                step = self.compress(n_in, p, m, probs)
                steps = steps + (step if gate is None else step * (1.0 + gate - gate.detach()))
            elif gate is not None:  # not compressing now: the step it would cost, times d P(compress)
                steps = steps + self.compress(n_in, n_in, _value(n_in) - 1).detach() * (gate - gate.detach())
            n_in = m
        return blocks + self.lookup("head", n_in), steps

    def block_parts(self, counts: Sequence[tuple[int, int]]) -> list[dict[str, float]]:
        """Per block, the fitted attention, MLP and compression-step terms (times the whole-model
        correction's scale; its constant overhead is not a block's)."""
        out, n_in = [], float(self.num_tokens)
        for p, m in counts:
            step = float(self.compress(n_in, float(p), float(m))) if m < n_in else 0.0
            out.append({"attn": self.scale * float(self.lookup("attn", n_in)),
                        "mlp": self.scale * float(self.lookup("mlp", float(m))), "compress": self.step_scale * step})
            n_in = float(m)
        return out

    def split_parts(self, counts: Sequence[tuple[int, int]]) -> tuple[float, float]:
        """(embed + attention + MLP + head, compression steps), before the whole-model correction."""
        blocks, steps = self._terms([(float(p), float(m)) for p, m in counts])
        return float(blocks), float(steps)

    def cost(self, counts: Sequence[tuple[int, int]]) -> float:
        blocks, steps = self.split_parts(counts)
        return self.overhead + self.scale * blocks + self.step_scale * steps

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
        blocks, steps = self._terms([(k.prune_kept, k.merge_kept) for k in keeps], mlp_terms,
                                    [tuple(p.to(torch.float64) for p in k.step_probs) if k.step_probs is not None
                                     else None for k in keeps])  # type: ignore[misc]
        return (self.overhead + self.scale * blocks + self.step_scale * steps).to(torch.float32)
