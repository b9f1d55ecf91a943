"""The measured check of ``optimize --latency-ms``: the searched schedule measured beside dense on
every local target of the latency budgets, re-measured while the measurement cannot tell on which
side of [0.95, 1.03] x budget it is. When it is outside (over the budget, or leaving 5% of it
unused): first the search again on the budget divided by the measured / budget ratio (the cost
model's error on this schedule, measured: the new schedule is the search's shape for the latency the
budget really allows, where scaling the old one's removed tokens would keep a shape chosen for
another budget), measured; then, if still outside, the measured local search
(:mod:`hwsearch.search.local`) around it.

Every candidate after the first is judged at the first run's host speed: its paired ratio to dense
in its own run x the first run's dense latency. This VM's speed drifts 10-25% in minutes, which
moved a schedule's raw median more than a local-search step does; the ratio measured in one run
does not drift.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from hwsearch.cost.base import LatencyBudget
from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.measure import Measurement, describe_measurement, measure_pair
from hwsearch.schedule import Counts, as_lists
from hwsearch.search.local import SETTLED, in_band, measured_search
from hwsearch.targets import Target
from profilers.timing import paired_ratio

Measured = dict[str, dict[str, Measurement]]  # target name -> {"dense", "compressed"}
MeasureFn = Callable[[Target, Counts], dict[str, Measurement]]
SearchAgain = Callable[[float], Counts]  # measured / budget ratio -> the search's schedule on budget / ratio
SETTLE = 2  # extra runs a measurement may pool before the band decides on it


@dataclass
class CheckResult:
    """The schedule kept, its measurements (per target, dense and compressed in one run), its
    latency at the first run's host speed (ms per target: what the band judged), that speed (the
    first run's dense latency per target) and the budgets in ms there."""

    counts: Counts
    measured: Measured | None
    at_first_speed: dict[str, float]
    first_dense: dict[str, float]
    budget_ms: dict[str, float] = field(default_factory=dict)


class LatencyCheck:
    """Measurements of candidate schedules against latency budgets on local targets; the first
    measurement fixes the host speed (and so the budgets given as speedups)."""

    def __init__(self, budgets: list[LatencyBudget], model: CompressedViT,
                 measure_fn: MeasureFn | None = None) -> None:
        self.budgets = [b for b in budgets if b.target.is_local]
        self.measure_fn = measure_fn or (lambda t, c: measure_pair(t, model, c))
        self.anchor: dict[str, float] = {}  # the first run's dense latency per target: its host speed

    def measure(self, candidate: Counts, show: bool = False) -> Measured:
        """Dense and ``candidate`` on every local target (the first call fixes the host speed)."""
        found = {b.target.name: self.measure_fn(b.target, candidate) for b in self.budgets}
        if not self.anchor:
            self.anchor = {name: stats["dense"].median_ms for name, stats in found.items()}
        if show:
            for t, ms in self.local:
                print(describe_measurement(t, found[t.name], t.batch, ms), flush=True)
        return found

    @property
    def local(self) -> list[tuple[Target, float]]:
        """``(target, budget ms)`` at the first run's host speed (empty before the first measurement)."""
        return [(b.target, b.at(self.anchor[b.target.name])) for b in self.budgets] if self.anchor else []

    def of_budget(self, found: Measured, name: str, ms: float) -> tuple[float, float, float]:
        """The compressed model's latency at the first run's host speed / ``ms``: estimate, 95% interval."""
        # through dense / compressed, the YAML's speedup_paired: at_first_speed_ms x speedup = first_dense_ms
        speedup, low, high = paired_ratio(found[name]["dense"], found[name]["compressed"])
        scale = self.anchor[name] / ms
        return scale / speedup, scale / high, scale / low

    def at_first_speed(self, found: Measured) -> dict[str, float]:
        return {t.name: self.of_budget(found, t.name, 1.0)[0] for t, _ in self.local}

    def worst(self, found: Measured) -> float:
        """The largest latency / budget over the targets (at the first run's host speed)."""
        return max(self.of_budget(found, t.name, ms)[0] for t, ms in self.local)

    def settled(self, candidate: Counts, found: Measured, confirm: bool = False) -> Measured:
        """More runs of ``candidate``, pooled, while a target's estimate is outside SETTLED but its 95%
        interval reaches into it: the measurement cannot yet tell on which side it is (at most SETTLE).
        With ``confirm``, an estimate outside SETTLED is measured again even when its interval is: one
        run's bias on this VM (the paired ratio moved 4-15% between runs minutes apart, more than its
        in-run interval) must not decide alone what the whole search does next."""
        for attempt in range(SETTLE):
            estimates = [(t, ms, self.of_budget(found, t.name, ms)) for t, ms in self.local]
            pending = [(t, ms, e) for t, ms, e in estimates
                       if undecided(*e) or (confirm and attempt == 0 and not in_band(e[0], SETTLED))]
            if not pending:
                break
            t, ms, (value, low, high) = pending[0]
            again = self.measure(candidate)
            found = {n: {k: m.pooled(again[n][k]) for k, m in stats.items()} for n, stats in found.items()}
            why = "reaches into" if undecided(value, low, high) else "is one run's reading, outside"
            print(f"{value:.3f} x budget on {t.name} (95% {low:.3f}-{high:.3f}) {why} "
                  f"[{SETTLED[0]:.2f}, {SETTLED[1]:.2f}]: measured again, "
                  f"{found[t.name]['compressed'].repeats} rounds pooled -> "
                  f"{self.of_budget(found, t.name, ms)[0]:.3f} x budget", flush=True)
        return found


def check_latency(budgets: list[LatencyBudget], model: CompressedViT, counts: Counts, refine: int,
                  compress_from: int, measure_fn: MeasureFn | None = None,
                  search_again: SearchAgain | None = None) -> CheckResult:
    """Measure the searched schedule on every local target of the latency budgets; when the worst
    measured/budget ratio misses the band, ``search_again(ratio)`` (when given) and its measurement,
    then, if that still misses, a measured local search on that ratio. Remote targets are predicted
    only. ``measure_fn(target, counts)`` measures dense and compressed (default: :func:`measure_pair`
    here)."""
    for budget in budgets:
        if not budget.target.is_local:
            print(f"predicted only: {budget.target.name} is not this host, nothing was measured")
    check = LatencyCheck(budgets, model, measure_fn)
    if not check.budgets:
        return CheckResult(counts, None, {}, {})
    measured = check.settled(counts, check.measure(counts, show=True), confirm=refine > 0)
    budget_ms = {t.name: ms for t, ms in check.local}

    def kept(schedule: Counts, found: Measured) -> CheckResult:
        return CheckResult(schedule, found, check.at_first_speed(found), check.anchor, budget_ms)

    ratio = check.worst(measured)
    if in_band(ratio, SETTLED) or refine <= 0:
        return kept(counts, measured)
    single = len(check.local) == 1  # one target: the search reads milliseconds; several: the worst ratio
    what = "measured" if single else "worst measured"
    outside = f"outside [{SETTLED[0]:.2f}, {SETTLED[1]:.2f}]"
    seen = {tuple(counts): measured}
    if search_again is not None:
        print(f"{what} {ratio:.3f} x budget, {outside}: the search again on the budget / {ratio:.3f}", flush=True)
        counts = search_again(ratio)
        print(f"schedule: {as_lists(counts)}", flush=True)
        if tuple(counts) not in seen:
            seen[tuple(counts)] = check.settled(counts, check.measure(counts, show=True))
        measured = seen[tuple(counts)]
        ratio = check.worst(measured)
        if in_band(ratio, SETTLED):
            return kept(counts, measured)
    print(f"{what} {ratio:.3f} x budget, {outside}: measured local search around the schedule (at most {refine} "
          f"measurements)", flush=True)
    name, budget = (check.local[0][0].name, check.local[0][1]) if single else ("", 1.0)

    def score(found: Measured) -> float:
        return check.of_budget(found, name, 1.0)[0] if single else check.worst(found)

    def measure(candidate: Counts) -> float:
        seen[tuple(candidate)] = check.settled(candidate, check.measure(candidate))
        return score(seen[tuple(candidate)])

    full = check.anchor[name] if single else max(check.anchor[t.name] / ms for t, ms in check.local)
    best, _ = measured_search(counts, measure, budget, model.num_tokens, model.num_prefix + 1, compress_from,
                              steps=refine, first=score(measured), log=lambda m: print(m, flush=True),
                              merging=model.merging,
                              describe=None if single else lambda v: f"worst measured / budget {v:.3f}",
                              full=full)
    kept = seen[tuple(best)]
    print(f"schedule: {as_lists(best)}\nits measurement from the local search (dense and compressed in one run):")
    at_first = check.at_first_speed(kept)
    for t, ms in check.local:
        print(describe_measurement(t, kept[t.name], t.batch, ms), flush=True)
        print(f"at the first run's host speed (dense {check.anchor[t.name]:.2f} ms): {at_first[t.name]:.2f} ms = "
              f"{at_first[t.name] / ms:.3f} x budget", flush=True)
    return CheckResult(best, kept, at_first, check.anchor, budget_ms)


def undecided(value: float, low: float, high: float) -> bool:
    """Outside SETTLED, but with an interval that reaches into it."""
    return not in_band(value, SETTLED) and low <= SETTLED[1] and high >= SETTLED[0]


def measured_record(check: CheckResult) -> dict:
    """The YAML's ``measured``: one target as before ({dense, compressed}); several by target name,
    each with its budget and measured/budget ratio. Each also has ``speedup_paired`` (dense /
    compressed as the median of per-round ratios, with its 95% interval: drift-free, unlike the
    ratio of the two medians), ``at_first_speed_ms`` (the compressed latency at the host speed of
    the check's first run, whose dense latency is ``first_dense_ms``: what the band judged) and
    ``budget_ms`` (the budget there: a speedup budget's dense / speedup)."""
    assert check.measured is not None

    def record(name: str, stats: dict[str, Measurement]) -> dict:
        out: dict = {k: m.as_dict() for k, m in stats.items()}
        if stats["compressed"].samples_ms:
            out["speedup_paired"] = list(paired_ratio(stats["dense"], stats["compressed"]))
        if name in check.at_first_speed:
            out["at_first_speed_ms"] = check.at_first_speed[name]
            out["first_dense_ms"] = check.first_dense[name]
        if name in check.budget_ms:
            out["budget_ms"] = check.budget_ms[name]
        return out

    if len(check.measured) == 1:
        return record(*next(iter(check.measured.items())))
    return {name: {**record(name, stats), "ratio_of_budget": stats["compressed"].median_ms / check.budget_ms[name]}
            for name, stats in check.measured.items()}
