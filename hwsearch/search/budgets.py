"""Budgets as the user gives them (``--flops-ratio``, ``--gflops``, ``--latency-ms``, ``--energy-mj``)
turned into :class:`~hwsearch.cost.base.Budget` objects on their cost models, checked reachable."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hwsearch.cost.base import Budget, check_reachable
from hwsearch.cost.flops import FlopsCost
from hwsearch.cost.measured import MeasuredCost
from hwsearch.errors import HwsearchError
from hwsearch.model.vit import CompressedViT

FLAGS = {"flops_ratio": "--flops-ratio", "gflops": "--gflops", "latency_ms": "--latency-ms",
         "energy_mj": "--energy-mj"}
LABELS = {"flops_ratio": "flops", "gflops": "gmacs", "latency_ms": "latency", "energy_mj": "energy"}
MEASURED = {"latency_ms": "latency", "energy_mj": "energy"}


def make_budgets(given: dict[str, float], model: CompressedViT, costmodel: Callable[[], dict[str, Any]],
                 compress_from: int, min_count: int, energy_weight: float = 1.0) -> list[tuple[Budget, dict]]:
    """(Budget, YAML record) per budget given (``{kind: value}``, in flag order); each refused outside
    the reachable range. ``costmodel()`` gives the fitted cost model, asked only for measured budgets;
    costs are of the model's merge operator."""
    kinds = [k for k in FLAGS if given.get(k) is not None]
    if not kinds:
        raise HwsearchError("give a budget: --flops-ratio, --gflops, --latency-ms and/or --energy-mj")
    if len(kinds) > 1 and not set(kinds) <= set(MEASURED):
        raise HwsearchError(f"{' and '.join(FLAGS[k] for k in kinds)} cannot be combined: two budgets at once "
                            f"are --latency-ms and --energy-mj")
    if energy_weight <= 0:
        raise HwsearchError("--energy-weight must be positive")
    data = costmodel() if set(kinds) & set(MEASURED) else None
    out = []
    for kind in kinds:
        cost = MeasuredCost(data, MEASURED[kind], model.merging) if kind in MEASURED \
            else FlopsCost.from_model(model.vit, model.merging)  # type: ignore[arg-type]
        dense = cost.dense_cost(model.depth)
        goal = given[kind] * dense if kind == "flops_ratio" else given[kind]
        check_reachable(cost, goal, model.depth, compress_from, min_count)
        weight = energy_weight if kind == "energy_mj" else 1.0
        out.append((Budget(cost, goal, weight, kind),
                    {"kind": kind, "value": given[kind], "target": goal, "dense": dense, "unit": cost.unit,
                     **({"weight": weight} if len(kinds) > 1 else {})}))
    return out


def label(budgets: list[tuple[Budget, dict]]) -> str:
    """Default schedule name from the budgets (``flops0.6``, ``latency425-energy900``)."""
    return "-".join(f"{LABELS[r['kind']]}{r['value']:g}" for _, r in budgets)


def predicted_record(budgets: list[tuple[Budget, dict]], counts: list[tuple[int, int]]) -> dict:
    """The schedule's predicted cost: the primary budget's at the top level, others under ``also``."""
    out: dict = {}
    for i, (budget, record) in enumerate(budgets):
        value = budget.cost.cost(counts)
        entry = {"value": value, "unit": budget.cost.unit, "ratio_of_dense": value / record["dense"],
                 "error_vs_target": value / budget.target - 1.0}
        if isinstance(budget.cost, FlopsCost):
            entry.update({"gmacs": value, "flops_ratio": value / record["dense"], **budget.cost.breakdown(counts)})
        if i == 0:
            out.update(entry)
        else:
            out.setdefault("also", {})[budget.name] = entry
    return out


def describe_predicted(budgets: list[tuple[Budget, dict]], counts: list[tuple[int, int]]) -> list[str]:
    """One line per budget: predicted cost, ratio of dense, error vs the budget."""
    lines = []
    for budget, record in budgets:
        value = budget.cost.cost(counts)
        lines.append(f"predicted {budget.name}: {value:.3f} {budget.cost.unit} = {value / record['dense']:.3f} x "
                     f"dense ({100 * (value / budget.target - 1):+.2f}% vs budget)")
    return lines
