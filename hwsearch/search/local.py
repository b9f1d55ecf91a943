"""Measured discrete local search: move a searched schedule along one axis until the measured
latency lands in the budget band.

``shift(counts, t)`` scales the tokens removed at every decision (each block's prune and merge) by
one factor: t > 0 towards removing none (dense at t = 1), t < 0 towards removing up to 4x as many
(clamped at the fewest each block can keep). The shape the search chose is kept: a block that only
merges still only merges (moving every count towards the minimum instead turned a merge-only
schedule into one pruning 40% of the tokens at block 1, and its fidelity fell from ~0.98 to 0.82).
Bisection on t with one real measurement per step (latency is monotone in the counts up to
noise), aiming at the middle of the band.
"""
from __future__ import annotations

from collections.abc import Callable

from hwsearch.schedule import Counts, bisect, min_merge_kept, removed_tokens, walk

BAND = (0.90, 1.03)  # measured / budget accepted as meeting a latency budget


MAX_GROWTH = 3.0  # at t = -1 every decision removes (1 + MAX_GROWTH) x its tokens (clamped)


def shift(counts: Counts, t: float, num_tokens: int, low: int, start: int = 1, merging: str = "rank") -> Counts:
    """Every decision's removed tokens scaled by ``1 - t`` (t >= 0) or ``1 + MAX_GROWTH |t|`` (t < 0), kept valid."""
    factor = 1.0 - t if t >= 0 else 1.0 + MAX_GROWTH * -t
    drops = removed_tokens(counts, num_tokens)

    def step(i: int, entering: int) -> tuple[int, int]:
        p = max(low, entering - round(drops[i][0] * factor))
        return p, max(min_merge_kept(p, low - 1, merging), p - round(drops[i][1] * factor))

    return walk(num_tokens, len(counts), start, step, low)


def measured_search(counts: Counts, measure: Callable[[Counts], float], budget: float, num_tokens: int, low: int,
                    start: int = 1, steps: int = 6, band: tuple[float, float] = BAND,
                    first: float | None = None, log: Callable[[str], None] = print,
                    merging: str = "rank", describe: Callable[[float], str] | None = None) -> tuple[Counts, float]:
    """Bisection on the shift until measured/budget is inside ``band``, at most ``steps`` measurements
    after the first (``first``: already measured); returns the (counts, measured) closest to the
    band's middle. ``measure`` returns milliseconds (or any cost in ``budget``'s unit: ``describe``
    words it for the log, e.g. the worst ratio of several budgets with ``budget`` 1)."""
    describe = describe or (lambda ms: f"measured {ms:.2f} ms = {ms / budget:.3f} x budget")
    aim = (band[0] + band[1]) / 2
    best: list = [counts, first if first is not None else measure(counts)]
    trial = [0]

    def measured(t: float) -> float:
        if t == 0.0:
            return best[1]
        candidate = shift(counts, t, num_tokens, low, start, merging)
        ms = measure(candidate)
        trial[0] += 1
        log(f"local search step {trial[0]}: shift {t:+.3f} -> {describe(ms)}")
        if abs(ms / budget - aim) < abs(best[1] / budget - aim):
            best[:] = [candidate, ms]
        return ms

    bisect(measured, aim * budget, -1.0, 1.0, steps + 1, rising=True,
           stop=lambda ms: band[0] <= ms / budget <= band[1])
    return best[0], best[1]
