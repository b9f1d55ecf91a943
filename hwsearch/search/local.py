"""Measured discrete local search: move a searched schedule along one axis until the measured
latency lands in the budget band.

``shift(counts, t)``: t > 0 moves every compressing block's counts towards keeping all tokens,
t < 0 towards the smallest count; the per-block shape the gradient search chose is kept.
Bisection on t with one real measurement per step (latency is monotone in the counts up to
noise), aiming at the middle of the band.
"""
from __future__ import annotations

from collections.abc import Callable

from hwsearch.schedule import Counts, bisect, walk

BAND = (0.90, 1.03)  # measured / budget accepted as meeting a latency budget


def shift(counts: Counts, t: float, num_tokens: int, low: int, start: int = 1) -> Counts:
    """Counts moved a fraction ``t`` of the way to dense (t > 0) or to ``low`` (t < 0), kept valid."""
    edge = num_tokens if t > 0 else low

    def step(i: int, _: int) -> tuple[int, int]:
        p, m = counts[i]
        return round(p + abs(t) * (edge - p)), round(m + abs(t) * (edge - m))

    return walk(num_tokens, len(counts), start, step, low)


def measured_search(counts: Counts, measure: Callable[[Counts], float], budget: float, num_tokens: int, low: int,
                    start: int = 1, steps: int = 6, band: tuple[float, float] = BAND,
                    first: float | None = None, log: Callable[[str], None] = print) -> tuple[Counts, float]:
    """Bisection on the shift until measured/budget is inside ``band``, at most ``steps`` measurements
    after the first (``first``: already measured); returns the (counts, measured) closest to the
    band's middle."""
    aim = (band[0] + band[1]) / 2
    best: list = [counts, first if first is not None else measure(counts)]
    trial = [0]

    def measured(t: float) -> float:
        if t == 0.0:
            return best[1]
        candidate = shift(counts, t, num_tokens, low, start)
        ms = measure(candidate)
        trial[0] += 1
        log(f"local search step {trial[0]}: shift {t:+.3f} -> measured {ms:.2f} ms = {ms / budget:.3f} x budget")
        if abs(ms / budget - aim) < abs(best[1] / budget - aim):
            best[:] = [candidate, ms]
        return ms

    bisect(measured, aim * budget, -1.0, 1.0, steps + 1, rising=True,
           stop=lambda ms: band[0] <= ms / budget <= band[1])
    return best[0], best[1]
