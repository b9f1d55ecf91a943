"""Measured discrete local search: move a searched schedule along one axis until the measured
latency lands in the budget band.

``shift(counts, t)`` scales the tokens removed at every decision (each block's prune and merge) by
one factor: t > 0 towards removing none (dense at t = 1), t < 0 towards removing up to 4x as many
(clamped at the fewest each block can keep). The shape the search chose is kept: a block that only
merges still only merges (moving every count towards the minimum instead turned a merge-only
schedule into one pruning 40% of the tokens at block 1, and its fidelity fell from ~0.98 to 0.82).
Bisection on t with one real measurement per step (latency is monotone in the counts up to
noise), aiming at AIM x budget until in SETTLED; with the dense cost known, the first step is the
shift that the measured speedup predicts (latency about linear in the tokens removed).
"""
from __future__ import annotations

from collections.abc import Callable

from hwsearch.schedule import Counts, bisect, removed_tokens, walk

BAND = (0.90, 1.03)  # measured / budget accepted as meeting a latency budget
SETTLED = (0.95, 1.03)  # where the check stops moving a schedule: in the band, leaving under 5% unused
AIM = 0.98  # where a local search aims: just under the budget (the middle, 0.965, gave away 3.5% of it)


def in_band(ratio: float, band: tuple[float, float] = BAND) -> bool:
    """Whether measured / budget meets a latency budget."""
    return band[0] <= ratio <= band[1]


MAX_GROWTH = 3.0  # at t = -1 every decision removes (1 + MAX_GROWTH) x its tokens (clamped)


def shift(counts: Counts, t: float, num_tokens: int, low: int, start: int = 1, merging: str = "rank") -> Counts:
    """Every decision's removed tokens scaled by ``1 - t`` (t >= 0) or ``1 + MAX_GROWTH |t|`` (t < 0), kept valid."""
    factor = removed_scale(t)
    drops = removed_tokens(counts, num_tokens)

    def step(i: int, entering: int) -> tuple[int, int]:
        p = max(low, entering - round(drops[i][0] * factor))
        return p, p - round(drops[i][1] * factor)

    return walk(num_tokens, len(counts), start, step, low, merging)


def measured_search(counts: Counts, measure: Callable[[Counts], float], budget: float, num_tokens: int, low: int,
                    start: int = 1, steps: int = 6, band: tuple[float, float] = BAND,
                    first: float | None = None, log: Callable[[str], None] = print,
                    merging: str = "rank", describe: Callable[[float], str] | None = None,
                    full: float | None = None) -> tuple[Counts, float]:
    """Bisection on the shift until measured/budget is inside SETTLED, at most ``steps`` measurements
    after the first (``first``: already measured); returns the (counts, measured) in ``band`` and
    closest to AIM x budget (else the closest). SETTLED is narrower than the band below: at batch 1
    the first step of a search that started 8% over landed at 0.93 x budget, in the band with 7% of
    the budget unused, where 5% fewer GMACs cost ~0.007 fidelity. ``measure`` returns milliseconds
    (or any cost in ``budget``'s unit: ``describe`` words it for the log, e.g. the worst ratio of
    several budgets with ``budget`` 1).

    ``full``: the dense model's cost in the same unit. Then each step is a guess, not the
    bracket's middle: latency falls about linearly with the tokens removed, so the shift whose
    removed tokens scale by ``(full - aim) / (full - measured)`` from the latest measurement, until
    one measurement is above the aim and one below; bisection between those two after that. Halving
    [-1, 1] instead first tried 2.5x the removed tokens for a schedule that missed by 5%, and spent
    four measurements to get back near it; bisecting [guess, 1] after a guess that fell just short
    (0.948 x budget) tried 1.36 x budget next (batch 8, 2026-11-28).
    """
    describe = describe or (lambda ms: f"measured {ms:.2f} ms = {ms / budget:.3f} x budget")
    aim = AIM
    best: list = [counts, first if first is not None else measure(counts)]
    trial = [0]

    def rank(ms: float) -> tuple[bool, float]:  # in the band first, then the nearest to the aim
        return not in_band(ms / budget, band), abs(ms / budget - aim)

    def measured(t: float) -> float:
        if t == 0.0:
            return best[1]
        candidate = shift(counts, t, num_tokens, low, start, merging)
        ms = measure(candidate)
        trial[0] += 1
        log(f"local search step {trial[0]}: shift {t:+.3f} -> {describe(ms)}")
        if rank(ms) < rank(best[1]):
            best[:] = [candidate, ms]
        return ms

    lo, hi, left = -1.0, 1.0, steps + 1  # bisection on [-1, 1]: its first middle is the start, measured
    if full is not None and full > best[1] > 0:
        points = [(0.0, best[1])]
        while left > 1:  # the linear model from the latest point, until the aim is bracketed
            t, ms = points[-1]
            guess = min(max(from_scale(removed_scale(t) * (full - aim * budget) / (full - ms)), lo), hi)
            if any(abs(guess - seen) < 1e-6 for seen, _ in points):  # at an end already measured
                break
            points.append((guess, measured(guess)))
            left -= 1
            if in_band(points[-1][1] / budget, SETTLED) or not full > points[-1][1] > 0:
                return best[0], best[1]
            lo = max([-1.0] + [t for t, ms in points if ms < aim * budget])
            hi = min([1.0] + [t for t, ms in points if ms > aim * budget])
            if lo > -1.0 and hi < 1.0:  # bracketed: bisection between the two nearest
                break
        left -= 1
    bisect(measured, aim * budget, lo, hi, left, rising=True, stop=lambda ms: in_band(ms / budget, SETTLED))
    return best[0], best[1]


def removed_scale(t: float) -> float:
    """The factor :func:`shift` scales every decision's removed tokens by at ``t``."""
    return 1.0 - t if t >= 0 else 1.0 + MAX_GROWTH * -t


def from_scale(scale: float) -> float:
    """The shift whose removed tokens scale by ``scale`` (clamped to [-1, 1])."""
    return max(-1.0, min(1.0, 1.0 - scale if scale <= 1 else -(scale - 1) / MAX_GROWTH))
