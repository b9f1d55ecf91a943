"""Hand starts priced by measurement: each shape solved on the budget its own measured cost allows.

The cost model adds profiled parts; its error depends on a schedule's shape, not only on its size.
At batch 1 on this CPU (session 35, one run, dense and the shapes interleaved) it priced ToMe-style
merging in every block 1.6-6.3% dearer (r = 8-20), relative to dense, than the same merging in every second
block (the standalone merge step costs more than it adds inside a whole model): solved for one
predicted budget, the every-block shape got r ~16.5 where its measured latency allowed ~15.75, and
lost the start choice (search loss 0.01291 vs 0.01232) that it wins at its measured latency
(0.01086; held-out 0.9909 vs 0.9886).

So where the budget is one latency budget on this host, every hand start is measured beside dense
in one run (its paired ratio to dense: host drift cancels), and re-solved on ``budget / error``,
``error`` = (measured / dense measured) / (predicted / dense predicted): the shape's own relative
error, measured. The error of the dense prediction itself is left to the measured check after the
search, as before. The search then descends from the chosen start on its shape's corrected budget.
"""
from __future__ import annotations

from collections.abc import Callable

from hwsearch.cost.base import CostModel
from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.measure import measure_with_dense
from hwsearch.schedule import Counts
from hwsearch.search.baselines import BUILDERS, solve
from hwsearch.targets import Target
from profilers.timing import paired_ratio

# schedules -> each one's measured / predicted cost, both relative to dense
Pricer = Callable[[dict[str, Counts]], dict[str, float]]


def measured_pricer(target: Target, model: CompressedViT, cost: CostModel) -> Pricer:
    """Dense and every schedule measured in one run on ``target`` (this host); per schedule its paired
    ratio to dense over its predicted ratio to dense."""
    def price(candidates: dict[str, Counts]) -> dict[str, float]:
        stats = measure_with_dense(target, model, candidates)
        dense = cost.dense_cost(model.depth)
        return {name: paired_ratio(stats[name], stats["dense"])[0] / (cost.cost(counts) / dense)
                for name, counts in candidates.items()}

    return price


def priced_starts(candidates: dict[str, Counts], price: Pricer, cost: CostModel, target: float, depth: int,
                  num_prefix: int, compress_from: int) -> tuple[dict[str, Counts], dict[str, float]]:
    """(every hand start re-solved on ``target`` / its measured error, the errors). Candidates named after a
    hand shape (:data:`BUILDERS`) are re-solved; equal schedules are measured once."""
    unique: dict[tuple, str] = {}
    for name, counts in candidates.items():
        unique.setdefault(tuple(counts), name)
    measured = price({name: candidates[name] for name in unique.values()})
    errors = {name: measured[unique[tuple(counts)]] for name, counts in candidates.items()}
    priced = {name: solve(name, cost, target / errors[name], depth, num_prefix, compress_from) if name in BUILDERS
              else counts for name, counts in candidates.items()}
    return priced, errors
