"""The cost-model interface every search uses, budgets on it, the reachability check, and a latency
budget as the user gives it (ms, or a speedup over dense, on a target) for the measured checks.

Counts per block are ``(prune_kept, merge_kept)``: attention runs on the tokens entering the block,
the MLP on ``merge_kept`` tokens.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from hwsearch.errors import HwsearchError
from hwsearch.model.tokens import BlockKeep
from hwsearch.targets import Target


class CostModel(ABC):
    """Cost of a compressed model as a function of its per-block token counts.

    Implementations provide ``unit`` and ``num_tokens`` (tokens entering the first block); ``measured``:
    fitted to a device's measurements (latency, energy), not counted (GMACs); ``merging``: the merge
    operator it prices (schedules solved on it keep what that operator can keep).
    """

    unit: str
    num_tokens: int
    measured: bool = False
    merging: str = "rank"

    @abstractmethod
    def expected_cost(self, keeps: Sequence[BlockKeep]) -> Tensor:
        """Differentiable (w.r.t. the DDP logits) cost of the current search-mode rates."""

    @abstractmethod
    def cost(self, counts: Sequence[tuple[int, int]]) -> float:
        """Cost of a fixed schedule."""

    def dense_cost(self, depth: int) -> float:
        return self.cost([(self.num_tokens, self.num_tokens)] * depth)


@dataclass
class Budget:
    """One budget of the search: a cost model and its target. The search adds
    ``lam * (expected_cost / target - 1)^2``; several budgets act as one :class:`WorstRatio`."""

    cost: CostModel
    target: float
    name: str = ""


class WorstRatio(CostModel):
    """Several budgets as one cost: the largest cost/target ratio (unit: x budget, target 1).

    Meeting it puts the binding budget at 1 and keeps every other at or under its own: one schedule
    for several targets, or for latency and energy on one target. Monotone in the counts when every
    cost model is, so hand schedules are solved on it like on any cost."""

    unit = "x budget"

    def __init__(self, budgets: Sequence[Budget]) -> None:
        self.budgets = list(budgets)
        self.num_tokens = self.budgets[0].cost.num_tokens
        self.measured = any(b.cost.measured for b in self.budgets)
        self.merging = self.budgets[0].cost.merging

    def expected_cost(self, keeps: Sequence[BlockKeep]) -> Tensor:
        return self.ratio([b.cost.expected_cost(keeps) for b in self.budgets])

    def ratio(self, expected: Sequence[Tensor]) -> Tensor:
        """The worst ratio of expected costs already computed, one per budget in order."""
        import torch

        return torch.stack([e / b.target for b, e in zip(self.budgets, expected, strict=True)]).max()

    def cost(self, counts: Sequence[tuple[int, int]]) -> float:
        return max(b.cost.cost(counts) / b.target for b in self.budgets)


def constraint(budgets: Sequence[Budget]) -> Budget:
    """The one budget the search meets: the budget itself, or the worst ratio of several."""
    return budgets[0] if len(budgets) == 1 else Budget(WorstRatio(budgets), 1.0, "worst")


def value_of(v: Tensor | float) -> float:
    """A plain float from a number or a 0-d tensor."""
    return float(v.detach()) if isinstance(v, Tensor) else float(v)


def reachable_range(cost: CostModel, depth: int, compress_from: int, min_count: int) -> tuple[float, float]:
    """(cheapest schedule's cost, dense cost): every block from ``compress_from`` at ``min_count``."""
    cheapest = cost.cost([(cost.num_tokens, cost.num_tokens)] * compress_from
                         + [(min_count, min_count)] * (depth - compress_from))
    return cheapest, cost.dense_cost(depth)


def check_reachable(cost: CostModel, goal: float, depth: int, compress_from: int, min_count: int) -> float:
    """Refuse a budget outside [cheapest schedule, dense]; returns the dense cost."""
    cheapest, dense = reachable_range(cost, depth, compress_from, min_count)
    if cheapest >= dense:
        raise HwsearchError(f"the cost model predicts no schedule cheaper than dense (cheapest {cheapest:.3f} "
                            f"{cost.unit} >= dense {dense:.3f}): the profile is too noisy; hwsearch fit prints its "
                            f"noise figures, profile again on a quiet host")
    if not cheapest <= goal <= dense * (1 + 1e-9):
        raise HwsearchError(
            f"budget {goal:.3f} {cost.unit} ({goal / dense:.3f} of dense) is not reachable: "
            f"reachable range is [{cheapest:.3f}, {dense:.3f}] {cost.unit} = [{cheapest / dense:.3f}, 1.0] of dense")
    return dense


@dataclass(frozen=True)
class LatencyBudget:
    """A latency budget on a target: ``ms``, or a ``speedup`` over dense, i.e. dense / speedup with dense
    measured in the check's own first run (so a host that changed speed since the user measured dense
    does not move the budget: ``--speedup``)."""

    target: Target
    ms: float | None = None
    speedup: float | None = None

    def __post_init__(self) -> None:
        if (self.ms is None) == (self.speedup is None):
            raise ValueError("a latency budget is ms or a speedup, one of the two")

    def at(self, dense_ms: float) -> float:
        """The budget in ms where dense runs in ``dense_ms``."""
        return self.ms if self.ms is not None else dense_ms / float(self.speedup)  # type: ignore[arg-type]


def latency_budget(target: Target, kind: str, value: float) -> LatencyBudget | None:
    """A budget as given (``latency_ms`` or ``speedup``, the YAML's ``kind``) on ``target``; None for
    budgets that are not on latency."""
    if kind == "latency_ms":
        return LatencyBudget(target, ms=value)
    return LatencyBudget(target, speedup=value) if kind == "speedup" else None


__all__ = ["CostModel", "Budget", "WorstRatio", "LatencyBudget", "constraint", "check_reachable", "latency_budget",
           "reachable_range", "value_of"]
