"""Hand starts priced by measurement: each shape solved on the budget its own measured cost allows.

The cost model adds profiled parts; its error depends on a schedule's shape, not only on its size.
At batch 1 on this CPU (session 35, one run, dense and the shapes interleaved) it priced ToMe-style
merging in every block 1.6-6.3% dearer (r = 8-20), relative to dense, than the same merging in every second
block (the standalone merge step costs more than it adds inside a whole model): solved for one
predicted budget, the every-block shape got r ~16.5 where its measured latency allowed ~15.75, and
lost the start choice (search loss 0.01291 vs 0.01232) that it wins at its measured latency
(0.01086; held-out 0.9909 vs 0.9886).

So where the budget is one latency budget on this host, every hand start is measured beside dense
in one run and re-solved on ``budget / error``. For a budget that is a share of dense (``--speedup``,
the benchmarks' fraction of dense measured) ``error`` = (measured / dense measured) / (predicted /
dense predicted), the shape's own relative error (host drift cancels); for a budget in ms
(``--latency-ms``) ``error`` = measured / predicted ms, which also carries the dense prediction's error
at the host's speed now — left to the measured check after the search, it cost a second search
whenever the profile's host speed was off by more than the band (session 36: predicted dense 433 ms,
measured 464 ms; the first schedule read 1.089 x budget). The search descends from the chosen start on
its shape's corrected budget.
"""
from __future__ import annotations

from collections.abc import Callable

from hwsearch.cost.base import CostModel
from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.measure import Measurement, measure_with_dense
from hwsearch.schedule import Counts
from hwsearch.search.baselines import BUILDERS, solve
from hwsearch.targets import Target
from profilers.timing import paired_ratio

# schedules -> each one's measured / predicted cost, both relative to dense
Pricer = Callable[[dict[str, Counts]], dict[str, float]]


def measured_pricer(target: Target, model: CompressedViT, cost: CostModel, in_ms: bool = False) -> Pricer:
    """Dense and every schedule measured in one run on ``target`` (this host), priced by :func:`shape_errors`."""
    def price(candidates: dict[str, Counts]) -> dict[str, float]:
        stats = measure_with_dense(target, model, candidates)
        predicted = {name: cost.cost(counts) for name, counts in candidates.items()}
        return shape_errors(stats, predicted, cost.dense_cost(model.depth), in_ms)

    return price


def shape_errors(stats: dict[str, Measurement], predicted: dict[str, float], dense_predicted: float,
                 in_ms: bool = False) -> dict[str, float]:
    """Per schedule in ``predicted``, measured over predicted cost: both relative to dense (``stats["dense"]``,
    paired round by round; a budget that is a share of dense measured: ``--speedup``, the benchmarks), or
    ``in_ms`` (a budget in ms, ``--latency-ms``), so the error of the dense prediction at the host's speed
    now is corrected too (the measured check compares ms with ms)."""
    if in_ms:
        return {name: stats[name].median_ms / ms for name, ms in predicted.items()}
    return {name: paired_ratio(stats[name], stats["dense"])[0] / (ms / dense_predicted)
            for name, ms in predicted.items()}


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
