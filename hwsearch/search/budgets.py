"""Budgets as the user gives them (``--flops-ratio``, ``--gflops``, ``--latency-ms``, ``--speedup``,
``--energy-mj`` on ``--target``, and ``--budget TARGET:latency-ms=X`` / ``TARGET:speedup=S`` /
``TARGET:energy-mj=E`` for several targets) turned into :class:`~hwsearch.cost.base.Budget` objects on
their cost models, checked reachable. A speedup S is a latency budget of dense / S: predicted dense
for the search, measured dense (in the check's own run) for the check."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hwsearch.cost.base import Budget, check_reachable
from hwsearch.cost.flops import FlopsCost
from hwsearch.cost.measured import QUANTITIES as MEASURED
from hwsearch.cost.measured import MeasuredCost
from hwsearch.errors import HwsearchError
from hwsearch.model.vit import CompressedViT
from hwsearch.targets import Target

FLAGS = {"flops_ratio": "--flops-ratio", "gflops": "--gflops", "latency_ms": "--latency-ms",
         "speedup": "--speedup", "energy_mj": "--energy-mj"}
LABELS = {"flops_ratio": "flops", "gflops": "gmacs", "latency_ms": "latency", "speedup": "speedup",
          "energy_mj": "energy"}
NO_BUDGET = "give a budget: --flops-ratio, --gflops, --latency-ms, --speedup, --energy-mj or --budget"
BUDGET_FORM = re.compile(r"(?P<target>[A-Za-z0-9_.-]+):(?P<kind>latency-ms|speedup|energy-mj)=(?P<value>[0-9.eE+-]+)")


@dataclass(frozen=True)
class BudgetSpec:
    """One budget as given: its kind, value and the target whose cost model it is on."""

    kind: str
    value: float
    target: Target


def parse_budget(text: str) -> tuple[str, str, float]:
    """``TARGET:latency-ms=X``, ``TARGET:speedup=S`` or ``TARGET:energy-mj=E`` -> (target name, kind, value > 0)."""
    match = BUDGET_FORM.fullmatch(text.strip())
    value = None
    if match:
        try:
            value = float(match["value"])
        except ValueError:
            value = None
    if match is None or value is None or not value > 0:
        raise HwsearchError(f"--budget {text!r}: expected TARGET:latency-ms=X, TARGET:speedup=S or "
                            f"TARGET:energy-mj=E with X, S, E > 0 (e.g. jetson_orin_nano_b1:latency-ms=12)")
    return match["target"], match["kind"].replace("-", "_"), value


def make_budgets(specs: list[BudgetSpec], model: CompressedViT, costmodel: Callable[[Target], dict[str, Any]],
                 compress_from: int, min_count: int) -> list[tuple[Budget, dict]]:
    """(Budget, YAML record) per budget given (in order; the first is the primary one), each refused
    outside its reachable range. ``costmodel(target)`` gives a target's fitted cost model, asked only
    for measured budgets; costs are of the model's merge operator. Several budgets are met together:
    the search's constraint is the worst cost/budget ratio."""
    if not specs:
        raise HwsearchError(NO_BUDGET)
    flops = [s for s in specs if s.kind not in MEASURED]
    if flops and len(specs) > 1:
        raise HwsearchError(f"{FLAGS[flops[0].kind]} cannot be combined with other budgets: budgets met together "
                            f"are measured ones (--latency-ms, --speedup, --energy-mj, --budget)")
    seen = [(s.target.name, MEASURED.get(s.kind, s.kind)) for s in specs]
    if len(set(seen)) < len(seen):
        raise HwsearchError("the same budget (target and quantity) is given twice: one latency budget "
                            "(--latency-ms or --speedup) and one energy budget per target")
    for spec in specs:
        if spec.kind == "speedup" and not spec.value > 1:
            raise HwsearchError(f"--speedup {spec.value:g}: a speedup over dense must be above 1")
    several = len({s.target.name for s in specs}) > 1
    out = []
    for spec in specs:
        if spec.kind in MEASURED:
            cost = MeasuredCost(costmodel(spec.target), MEASURED[spec.kind], model.merging)
        else:
            cost = FlopsCost.from_model(model.vit, model.merging)  # type: ignore[assignment]
        dense = cost.dense_cost(model.depth)
        goal = {"flops_ratio": spec.value * dense, "speedup": dense / spec.value}.get(spec.kind, spec.value)
        check_reachable(cost, goal, model.depth, compress_from, min_count)
        name = f"{spec.target.name}:{spec.kind}" if several else spec.kind
        out.append((Budget(cost, goal, name),
                    {"kind": spec.kind, "value": spec.value, "target": goal, "dense": dense, "unit": cost.unit,
                     **({"on": spec.target.name} if spec.kind in MEASURED else {})}))
    return out


def label(budgets: list[tuple[Budget, dict]]) -> str:
    """Default schedule name from the budgets (``flops0.6``, ``latency425-energy900``; with several
    targets each budget names its target: ``latency80_cpu_onnxruntime_b1-latency400_cpu_onnxruntime``)."""
    several = len({r.get("on") for _, r in budgets}) > 1
    return "-".join(f"{LABELS[r['kind']]}{r['value']:g}" + (f"_{r['on']}" if several else "") for _, r in budgets)


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
