"""Hand-made schedules, solved for a budget: the baselines every search is compared with.

uniform   every compressing block keeps the same fraction of its tokens (half pruned, half merged)
evit      EViT-style: prune only, at fixed blocks (1/3, 7/12, 5/6 of depth: 4, 7, 10 of 12)
tome      ToMe-style: merge a constant r tokens per block (fractional r: r+1 in the first blocks),
          at most half a block's patches (ToMe's own cap)
tome-every2  ToMe-style in every second block (2r per merging block): half the blocks pay no matching
          step. Where a step costs real time (at batch 1 on this CPU a similarity-merge step costs
          ~0.5 ms, ~8% of a 200-token block), a measured cost model buys more tokens with it

A method (METHODS) is a shape, its merge operator and its first compressing block: ``tome-paper`` is
ToMe itself (bipartite soft matching, constant r from block 0, no pruning), the faithful baseline.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hwsearch.cost.base import CostModel
from hwsearch.schedule import Counts, bisect, walk


def uniform(n: int, prefix: int, depth: int, rate: float, start: int = 1, merging: str = "rank") -> Counts:
    def step(_: int, entering: int) -> tuple[int, int]:
        out = max(prefix + 1, prefix + round((entering - prefix) * rate))
        return entering - (entering - out) // 2, out

    return walk(n, depth, start, step, prefix + 1, merging)


def evit(n: int, prefix: int, depth: int, rate: float, start: int = 1, merging: str = "rank") -> Counts:
    layers = {max(start, round(depth * f)) for f in (1 / 3, 7 / 12, 5 / 6)}

    def step(i: int, entering: int) -> tuple[int, int]:
        kept = max(prefix + 1, prefix + round((entering - prefix) * rate)) if i in layers else entering
        return kept, kept

    return walk(n, depth, start, step, prefix + 1, merging)


def tome(n: int, prefix: int, depth: int, r: float, start: int = 1, every: int = 1, merging: str = "rank"
         ) -> Counts:
    """Constant r per block, capped as ToMe caps it (``r = min(r, (t - protected) // 2)``: a block
    merges at most its A half, the similarity cap, whatever ``merging``). ``every`` > 1: only blocks
    ``start``, ``start + every``, ... merge, ``every * r`` each."""
    del merging  # ToMe's own cap is the tighter one for either operator
    blocks = range(start, depth, every)  # the blocks that merge
    per_step = r * every
    base, extra = int(per_step), round((per_step - int(per_step)) * len(blocks))

    def step(i: int, entering: int) -> tuple[int, int]:
        if i not in blocks:
            return entering, entering
        wanted = entering - base - (1 if blocks.index(i) < extra else 0)
        return entering, wanted

    return walk(n, depth, start, step, prefix + 1, "similarity")


def tome_r(counts: Counts, n: int, prefix: int, depth: int, start: int = 0) -> float | None:
    """The r (in steps of 1 / merging blocks, the steps :func:`tome` resolves) for which ``tome`` builds
    exactly ``counts`` from block ``start``; None when ``counts`` is no ToMe schedule."""
    steps, wanted = depth - start, [tuple(c) for c in counts]  # rows as tuples: YAML gives lists
    for k in range(int((n - prefix) / 2 * steps) + 1):
        if tome(n, prefix, depth, k / steps, start) == wanted:
            return k / steps
    return None


def tome_every2(n: int, prefix: int, depth: int, r: float, start: int = 1, merging: str = "rank") -> Counts:
    """:func:`tome` merging in every second block (``2r`` each)."""
    return tome(n, prefix, depth, r, start, every=2, merging=merging)


@dataclass(frozen=True)
class Shape:
    """A hand schedule family of one parameter: ``build(n, prefix, depth, x, start, merging=)``; ``x`` is r, the tokens
    merged per block (cost falls as it rises, up to half the patches), where ``by_r``, else a keep rate in [0, 1]."""

    build: Callable[..., Counts]
    by_r: bool = False
    warm_start: bool = True  # a warm-start candidate of every search (hwsearch.search.starts.hand_starts)


# tome-every2 is a start only where asked for (--init): returned in 14 benchmark runs (sessions 31-37), it lost to
# the every-block schedule compared (ToMe's, the FLOPs-aware) on the held-out photos in 4 and won in none
# (docs/benchmark-log.md, session 37)
BUILDERS: dict[str, Shape] = {"uniform": Shape(uniform), "evit": Shape(evit), "tome": Shape(tome, by_r=True),
                              "tome-every2": Shape(tome_every2, by_r=True, warm_start=False)}
STARTS = tuple(kind for kind, shape in BUILDERS.items() if shape.warm_start)  # the hand shapes every search tries


def solve(kind: str, cost: CostModel, goal: float, depth: int, num_prefix: int, start: int = 1) -> Counts:
    """The ``kind`` schedule whose cost is closest to ``goal`` (bisection on its one parameter), valid for
    the merge operator ``cost`` prices."""
    n, shape = cost.num_tokens, BUILDERS[kind]

    def build(x: float) -> Counts:
        return shape.build(n, num_prefix, depth, x, start, merging=cost.merging)

    # r up to half the patches, where every block merges its cap (r = patches / blocks left ToMe's fastest
    # schedules out: at 12 blocks from block 0, r = 21.3 costs 0.571 x dense at batch 1, r = 24 0.528)
    hi = (n - num_prefix) / 2 if shape.by_r else 1.0
    lo, hi = bisect(lambda x: cost.cost(build(x)), goal, 0.0, hi, 50, rising=not shape.by_r)
    return min((build(lo), build(hi)), key=lambda c: abs(cost.cost(c) - goal))


# method -> (shape, merge operator, first compressing block; None: the search's --compress-from)
METHODS: dict[str, tuple[str, str, int | None]] = {
    "uniform": ("uniform", "rank", None), "evit": ("evit", "rank", None), "tome-style": ("tome", "rank", None),
    "tome-style-similarity": ("tome", "similarity", None), "tome-paper": ("tome", "similarity", 0),
    "tome-every2-similarity": ("tome-every2", "similarity", None),
}


def solve_method(method: str, cost_of: Callable[[str], CostModel], goal: float, depth: int, num_prefix: int,
                 compress_from: int = 1) -> tuple[Counts, str]:
    """A method's schedule at ``goal`` on the cost model of its merge operator; (counts, merging)."""
    kind, merging, start = METHODS[method]
    return solve(kind, cost_of(merging), goal, depth, num_prefix, compress_from if start is None else start), merging
