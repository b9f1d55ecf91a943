"""Measured discrete local search: move a searched schedule along one axis until the measured
latency lands in the budget band.

``shift(counts, t)``: t > 0 moves every compressing block's counts towards keeping all tokens,
t < 0 towards the smallest count; the per-block shape the gradient search chose is kept.
Bisection on t with one real measurement per step (latency is monotone in the counts up to
noise), aiming at the middle of the band.
"""
from __future__ import annotations

from collections.abc import Callable

Counts = list[tuple[int, int]]


def shift(counts: Counts, t: float, num_tokens: int, low: int, start: int = 1) -> Counts:
    """Counts moved a fraction ``t`` of the way to dense (t > 0) or to ``low`` (t < 0), kept valid."""
    out: Counts = []
    entering = num_tokens
    for i, (p, m) in enumerate(counts):
        if i >= start:
            edge = num_tokens if t > 0 else low
            p = round(p + abs(t) * (edge - p))
            m = round(m + abs(t) * (edge - m))
        p = max(low, min(p, entering))
        m = max(low, min(m, p))
        out.append((p, m))
        entering = m
    return out


def measured_search(counts: Counts, measure: Callable[[Counts], float], budget: float, num_tokens: int, low: int,
                    start: int = 1, steps: int = 6, band: tuple[float, float] = (0.90, 1.03),
                    first: float | None = None, log: Callable[[str], None] = print) -> tuple[Counts, float]:
    """Bisection on the shift until measured/budget is inside ``band``; returns (counts, measured)."""
    aim = (band[0] + band[1]) / 2
    t, ms = 0.0, first if first is not None else measure(counts)
    best, best_ms = counts, ms
    lo, hi = -1.0, 1.0
    for step in range(steps):
        if band[0] <= ms / budget <= band[1]:
            break
        if ms / budget > aim:  # too slow: compress more
            hi = t
        else:
            lo = t
        t = (lo + hi) / 2
        candidate = shift(counts, t, num_tokens, low, start)
        ms = measure(candidate)
        log(f"local search step {step + 1}: shift {t:+.3f} -> measured {ms:.2f} ms = {ms / budget:.3f} x budget")
        if abs(ms / budget - aim) < abs(best_ms / budget - aim):
            best, best_ms = candidate, ms
    return best, best_ms
