"""Timing protocol like trtexec: warm up by time, then timed repeats; re-measure on high CV.

Pure Python + numpy: usable on a Jetson without torch.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

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

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def summarize(repeat_ms: list[float], iterations: int, attempts: int, max_cv: float) -> TimingStats:
    """Statistics of per-repeat latencies."""
    arr = np.asarray(repeat_ms, dtype=float)
    mean = float(arr.mean())
    cv = float(arr.std(ddof=1) / mean) if len(arr) > 1 and mean > 0 else 0.0
    return TimingStats(float(np.median(arr)), float(np.percentile(arr, 10)), float(np.percentile(arr, 90)),
                       mean, cv, iterations, len(arr), attempts, cv <= max_cv)


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


def measure_interleaved(fns: Mapping[str, Callable[[], object]], warmup_s: float = 1.0, repeat_s: float = 0.5,
                        repeats: int = 7, max_cv: float = 0.02, max_attempts: int = 3,
                        min_iters: int = 1, syncs: Mapping[str, Callable[[], object]] | None = None
                        ) -> dict[str, TimingStats]:
    """Measure several functions in one process, alternating repeats (ABAB) to cancel drift.

    Before each timed repeat the function runs once untimed: after the others ran, its first call is
    cold (caches, the runtime's buffers), and a large graph that fits one or two calls in a repeat
    would be timed at that cold call.
    A function whose CV exceeds ``max_cv`` is re-measured, up to ``max_attempts`` times; the
    attempt with the lowest CV is kept and ``cv_ok`` says whether it met the bound.
    """
    syncs = syncs or {}
    for name, fn in fns.items():
        _repeat(fn, warmup_s, 1, syncs.get(name))
    best: dict[str, TimingStats] = {}
    pending = list(fns)
    for attempt in range(1, max_attempts + 1):
        samples: dict[str, list[float]] = {name: [] for name in pending}
        iters = dict.fromkeys(pending, 0)
        for _ in range(repeats):
            for name in pending:
                _repeat(fns[name], 0.0, 1, syncs.get(name))  # warm again after the switch, untimed
                ms, n = _repeat(fns[name], repeat_s, min_iters, syncs.get(name))
                samples[name].append(ms)
                iters[name] += n
        for name in pending:
            stats = summarize(samples[name], iters[name], attempt, max_cv)
            if name not in best or stats.cv < best[name].cv:
                best[name] = stats
        pending = [name for name in pending if not best[name].cv_ok]
        if not pending:
            break
    return best


def measure(fn: Callable[[], object], **kwargs: float | int) -> TimingStats:
    """Measure one function (see :func:`measure_interleaved`)."""
    return measure_interleaved({"fn": fn}, **kwargs)["fn"]  # type: ignore[arg-type]
