"""Timing protocol like trtexec: warm up by time, then timed repeats; re-measure on high CV.

Pure Python + numpy: usable on a Jetson without torch.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class TimingStats:
    """Per-inference latency over repeats (each repeat = mean of its iterations), milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    mean_ms: float
    cv: float
    iterations: int
    repeats: int
    attempts: int
    cv_ok: bool
    samples_ms: list[float] = field(default_factory=list, repr=False)  # per repeat, in run order

    def as_dict(self) -> dict[str, float | int | bool]:
        """The summary (without the per-repeat samples)."""
        out = asdict(self)
        del out["samples_ms"]
        return out


def summarize(repeat_ms: list[float], iterations: int, attempts: int, max_cv: float) -> TimingStats:
    """Statistics of per-repeat latencies."""
    arr = np.asarray(repeat_ms, dtype=float)
    mean = float(arr.mean())
    cv = float(arr.std(ddof=1) / mean) if len(arr) > 1 and mean > 0 else 0.0
    return TimingStats(float(np.median(arr)), float(np.percentile(arr, 10)), float(np.percentile(arr, 90)),
                       mean, cv, iterations, len(arr), attempts, cv <= max_cv, [float(v) for v in arr])


def paired_ratio(a: TimingStats, b: TimingStats, resamples: int = 2000, seed: int = 0
                 ) -> tuple[float, float, float]:
    """``a / b`` from one interleaved run: the median over rounds of a's repeat over b's repeat in the
    same round (seconds apart, so the host's drift cancels), and a bootstrap 95% interval of it.

    This VM's speed drifts 10-25% over minutes; the ratio of two medians keeps the drift that fell
    on one function's repeats and not the other's, the per-round ratio does not.
    """
    if not a.samples_ms or len(a.samples_ms) != len(b.samples_ms):
        raise ValueError("paired_ratio needs two measurements of one interleaved run (same rounds)")
    ratios = np.asarray(a.samples_ms) / np.asarray(b.samples_ms)
    rng = np.random.default_rng(seed)
    medians = np.median(ratios[rng.integers(0, len(ratios), size=(resamples, len(ratios)))], axis=1)
    return float(np.median(ratios)), float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def _repeat(fn: Callable[[], object], seconds: float, min_iters: int,
            sync: Callable[[], object] | None = None) -> tuple[float, int]:
    """Run ``fn`` until ``seconds`` passed and at least ``min_iters`` times; mean ms, iterations.

    ``sync`` (GPU backends) waits for the enqueued work before the clock is read.
    """
    count, start = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        if time.perf_counter() - start >= seconds and count >= min_iters:
            break
    if sync is not None:
        sync()
    return (time.perf_counter() - start) * 1e3 / count, count


def balanced_orders(count: int) -> list[list[int]]:
    """Round orders of ``count`` functions in which each one runs in every slot, and right after every
    other one, equally often (a Williams design, as crossover trials use; ``2 * count`` rounds when
    ``count`` is odd, else ``count``). Cycling them cancels what one function leaves to the next."""
    first, low, high = [0], 1, count - 1
    while len(first) < count:
        first.append(low)
        low += 1
        if len(first) < count:
            first.append(high)
            high -= 1
    orders = [[(slot + shift) % count for slot in first] for shift in range(count)]
    return orders + [order[::-1] for order in orders] if count % 2 else orders


def measure_interleaved(fns: Mapping[str, Callable[[], object]], warmup_s: float = 1.0, repeat_s: float = 0.5,
                        repeats: int = 7, max_cv: float = 0.02, max_attempts: int = 3,
                        min_iters: int = 1, syncs: Mapping[str, Callable[[], object]] | None = None,
                        together: bool = False) -> dict[str, TimingStats]:
    """Measure several functions in one process, alternating repeats to cancel drift.

    Each round runs every function once, in the orders of :func:`balanced_orders`: with one fixed
    order, an identical copy of a schedule timed right after another read ~1.5% faster than the
    copy timed right after dense (results/benchmarks/slot_order_b8_s40.log), a bias for whichever
    model a comparison listed last. Use a multiple of ``len(balanced_orders(n))`` repeats to balance fully.

    Before each timed repeat the function runs once untimed: after the others ran, its first call is
    cold (caches, the runtime's buffers), and a large graph that fits one or two calls in a repeat
    would be timed at that cold call.
    A function whose CV exceeds ``max_cv`` is re-measured, up to ``max_attempts`` times; the
    attempt with the lowest CV is kept and ``cv_ok`` says whether it met the bound.
    ``together`` (comparisons): an attempt re-measures all functions, and all results come from the
    one attempt with the lowest worst CV, so their repeats stay paired round by round
    (:func:`paired_ratio`).
    """
    syncs = syncs or {}
    for name, fn in fns.items():
        _repeat(fn, warmup_s, 1, syncs.get(name))
    best: dict[str, TimingStats] = {}
    pending = list(fns)
    for attempt in range(1, max_attempts + 1):
        if not pending:
            break
        samples: dict[str, list[float]] = {name: [] for name in pending}
        iters = dict.fromkeys(pending, 0)
        orders = balanced_orders(len(pending))
        for round_ in range(repeats):
            for name in (pending[i] for i in orders[round_ % len(orders)]):
                _repeat(fns[name], 0.0, 1, syncs.get(name))  # warm again after the switch, untimed
                ms, n = _repeat(fns[name], repeat_s, min_iters, syncs.get(name))
                samples[name].append(ms)
                iters[name] += n
        stats = {name: summarize(samples[name], iters[name], attempt, max_cv) for name in pending}
        if together:
            if not best or max(s.cv for s in stats.values()) < max(s.cv for s in best.values()):
                best = stats
            pending = [] if all(s.cv_ok for s in best.values()) else list(fns)
            continue
        for name, found in stats.items():
            if name not in best or found.cv < best[name].cv:
                best[name] = found
        pending = [name for name in pending if not best[name].cv_ok]
    return best


def measure(fn: Callable[[], object], **kwargs: float | int) -> TimingStats:
    """Measure one function (see :func:`measure_interleaved`)."""
    return measure_interleaved({"fn": fn}, **kwargs)["fn"]  # type: ignore[arg-type]
