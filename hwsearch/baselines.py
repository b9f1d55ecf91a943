"""Hand-made schedules, solved for a budget: the baselines every search is compared with.

uniform   every compressing block keeps the same fraction of its tokens (half pruned, half merged)
evit      EViT-style: prune only, at fixed blocks (1/3, 7/12, 5/6 of depth: 4, 7, 10 of 12)
tome      ToMe-style: merge a constant r tokens per block (fractional r: r+1 in the first blocks)
"""
from __future__ import annotations

from collections.abc import Callable

from hwsearch.cost import CostModel

Counts = list[tuple[int, int]]


def uniform(n: int, prefix: int, depth: int, rate: float, start: int = 1) -> Counts:
    counts, cur = [(n, n)] * start, n
    for _ in range(depth - start):
        out = max(prefix + 1, prefix + round((cur - prefix) * rate))
        counts.append((cur - (cur - out) // 2, out))
        cur = out
    return counts


def evit(n: int, prefix: int, depth: int, rate: float, start: int = 1) -> Counts:
    layers = {max(start, round(depth * f)) for f in (1 / 3, 7 / 12, 5 / 6)}
    counts, cur = [], n
    for i in range(depth):
        if i in layers:
            cur = max(prefix + 1, prefix + round((cur - prefix) * rate))
        counts.append((cur, cur))
    return counts


def tome(n: int, prefix: int, depth: int, r: float, start: int = 1) -> Counts:
    base, extra = int(r), round((r - int(r)) * (depth - start))
    counts, cur = [(n, n)] * start, n
    for i in range(depth - start):
        prev = cur
        cur = max(prefix + 1, cur - base - (1 if i < extra else 0))
        counts.append((prev, cur))
    return counts


BUILDERS: dict[str, Callable[..., Counts]] = {"uniform": uniform, "evit": evit, "tome": tome}


def solve(kind: str, cost: CostModel, goal: float, depth: int, num_prefix: int, start: int = 1) -> Counts:
    """The ``kind`` schedule whose cost is closest to ``goal`` (bisection on its one parameter)."""
    n = cost.num_tokens
    build = BUILDERS[kind]
    # uniform/evit: a keep rate in [0, 1] (cost rises with it); tome: r (cost falls with it)
    lo, hi, rising = (0.0, 1.0, True) if kind != "tome" else (0.0, (n - num_prefix) / max(1, depth - start), False)
    for _ in range(50):
        mid = (lo + hi) / 2
        if (cost.cost(build(n, num_prefix, depth, mid, start)) > goal) == rising:
            hi = mid
        else:
            lo = mid
    candidates = [build(n, num_prefix, depth, x, start) for x in (lo, hi)]
    return min(candidates, key=lambda c: abs(cost.cost(c) - goal))
