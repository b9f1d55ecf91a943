"""A compression schedule: per block (kept after prune, kept after merge); validated YAML.

Also the helpers every searcher shares: the one ``Counts`` type, walking blocks to build a valid
schedule, bisection of a one-parameter schedule family onto a budget, random valid schedules.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hwsearch.errors import HwsearchError
from hwsearch.io import plain, write_text

Counts = list[tuple[int, int]]
"""Per block ``(prune_kept, merge_kept)``, prefix tokens included (DiffRate's kept numbers)."""


def as_lists(counts: Sequence[Sequence[int]]) -> list[list[int]]:
    """Counts as plain lists (JSON/YAML/printing)."""
    return [[int(v) for v in c] for c in counts]


def removed_tokens(counts: Counts, num_tokens: int) -> list[tuple[int, int]]:
    """Per block the tokens its prune and its merge remove: ``(entering - prune_kept, prune_kept - merge_kept)``."""
    out, entering = [], num_tokens
    for p, m in counts:
        out.append((entering - p, p - m))
        entering = m
    return out


def walk(num_tokens: int, depth: int, start: int, step: Callable[[int, int], tuple[int, int]],
         low: int = 2, merging: str = "rank") -> Counts:
    """Build a valid schedule block by block: blocks before ``start`` stay dense; from ``start`` on,
    ``step(block, entering)`` proposes ``(prune_kept, merge_kept)``, clamped to
    ``low <= merge_kept <= prune_kept <= entering`` and to what ``merging`` can keep (:func:`min_merge_kept`;
    ``low`` is the prefix tokens + 1)."""
    counts: Counts = [(num_tokens, num_tokens)] * start
    entering = num_tokens
    for i in range(start, depth):
        p, m = step(i, entering)
        p = max(low, min(int(p), entering))
        m = max(low, min(int(m), p), min_merge_kept(p, low - 1, merging))
        counts.append((p, m))
        entering = m
    return counts


def bisect(value: Callable[[float], float], goal: float, lo: float, hi: float, steps: int, rising: bool,
           stop: Callable[[float], bool] | None = None) -> tuple[float, float]:
    """Bisection of ``x`` in ``[lo, hi]`` so that ``value(x)`` (monotone, ``rising`` or falling in x)
    meets ``goal``; ``stop(value)`` ends early. Returns the final bracket ``(lo, hi)``.

    The one loop behind every "scale this schedule shape onto a budget": hand baselines, budget-space
    trials (predicted cost) and the measured local search (one real measurement per step).
    """
    for _ in range(steps):
        mid = (lo + hi) / 2
        got = value(mid)
        if stop is not None and stop(got):
            break
        if (got > goal) == rising:
            hi = mid
        else:
            lo = mid
    return lo, hi


def random_schedules(num_tokens: int, num_prefix: int, depth: int, count: int, seed: int = 0,
                     start: int = 1, grid: Sequence[int] | None = None, merging: str = "rank") -> list[Counts]:
    """Random valid schedules for ``merging`` from mild (first) to heavy (last) compression.

    Per block the kept fraction is drawn around a level that falls from 0.99 to 0.65 over the list;
    with ``grid`` every count is snapped down onto it (profiled counts only; a similarity merge's
    cap, :func:`min_merge_kept`, may then lift a merge count off the grid).
    """
    rng = random.Random(seed)
    low = num_prefix + 1

    def snap(n: int) -> int:
        return max((g for g in grid if g <= n), default=low) if grid is not None else n

    out = []
    for i in range(count):
        level = 1.0 - 0.35 * (i + 1) / count

        def step(_: int, entering: int) -> tuple[int, int]:
            rate = min(1.0, max(0.3, rng.gauss(level, 0.08)))  # noqa: B023 - used within this iteration
            m = snap(max(low, round(num_prefix + (entering - num_prefix) * rate)))
            p = snap(rng.randint(m, entering))
            return p, m

        out.append(walk(num_tokens, depth, start, step, low, merging))
    return out


@dataclass
class BlockCounts:
    """Tokens kept after pruning and after merging in one block (prefix tokens included)."""

    prune_kept: int
    merge_kept: int


@dataclass
class Schedule:
    """Static token counts for a deploy-mode model, plus where they came from."""

    model: str
    img_size: int
    num_tokens: int
    num_prefix: int
    blocks: list[BlockCounts]
    budget: dict[str, Any] = field(default_factory=dict)
    predicted: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    merging: str = "rank"  # the merge operator (files without the key predate similarity merging)

    def counts(self) -> Counts:
        return [(b.prune_kept, b.merge_kept) for b in self.blocks]

    def validate(self) -> "Schedule":
        """Counts within [num_prefix + 1, num_tokens] and non-increasing through depth."""
        low, current = self.num_prefix + 1, self.num_tokens
        if not self.blocks:
            raise HwsearchError("schedule has no blocks")
        if self.merging not in MERGING:
            raise HwsearchError(f"schedule: merging must be one of {', '.join(MERGING)} (got {self.merging!r})")
        for i, b in enumerate(self.blocks):
            if not low <= b.merge_kept <= b.prune_kept <= current:
                raise HwsearchError(
                    f"schedule block {i}: need {low} <= merge_kept ({b.merge_kept}) <= prune_kept "
                    f"({b.prune_kept}) <= tokens entering ({current})")
            fewest = min_merge_kept(b.prune_kept, self.num_prefix, self.merging)
            if b.merge_kept < fewest:
                raise HwsearchError(f"schedule block {i}: similarity merging keeps at least {fewest} of "
                                    f"{b.prune_kept} tokens (one bipartite round), not {b.merge_kept}")
            current = b.merge_kept
        return self

    def check_model(self, model: Any) -> None:
        """Refuse a schedule made for another model shape."""
        if model.num_tokens != self.num_tokens or model.depth != len(self.blocks):
            raise HwsearchError(
                f"schedule for {self.model} ({len(self.blocks)} blocks, {self.num_tokens} tokens) does not "
                f"fit this model ({model.depth} blocks, {model.num_tokens} tokens)")

    @classmethod
    def from_counts(cls, model: str, img_size: int, num_tokens: int, num_prefix: int,
                    counts: Sequence[tuple[int, int]], **extra: Any) -> "Schedule":
        blocks = [BlockCounts(int(p), int(m)) for p, m in counts]
        return cls(model, img_size, num_tokens, num_prefix, blocks, **extra).validate()

    def to_dict(self) -> dict[str, Any]:
        data = plain(asdict(self))
        data["blocks"] = [[b.prune_kept, b.merge_kept] for b in self.blocks]
        return data

    def save(self, path: str | Path) -> Path:
        """Write YAML atomically."""
        path = Path(path)
        write_text(path, "# hwsearch schedule: blocks are [prune_kept, merge_kept] (class token included)\n"
                   + yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None))
        return path


MERGING = ("rank", "similarity")


def min_merge_kept(prune_kept: int, num_prefix: int, merging: str) -> int:
    """Fewest tokens one block's merge can keep: similarity merging removes at most the A half."""
    if merging != "similarity":
        return num_prefix + 1
    return prune_kept - len(range(num_prefix % 2, prune_kept - num_prefix, 2))


_REQUIRED = {"model": str, "img_size": int, "num_tokens": int, "num_prefix": int, "blocks": list}


def from_dict(data: Any, where: str = "schedule") -> Schedule:
    """Build and validate a Schedule from parsed YAML; one clear error for anything wrong."""
    if not isinstance(data, dict):
        raise HwsearchError(f"{where}: not a schedule (expected a mapping)")
    for key, typ in _REQUIRED.items():
        if key not in data:
            raise HwsearchError(f"{where}: missing key {key!r}")
        if not isinstance(data[key], typ):
            raise HwsearchError(f"{where}: {key!r} must be {typ.__name__}")
    blocks = []
    for i, b in enumerate(data["blocks"]):
        if not (isinstance(b, (list, tuple)) and len(b) == 2 and all(isinstance(v, int) for v in b)):
            raise HwsearchError(f"{where}: block {i} must be [prune_kept, merge_kept] integers")
        blocks.append(BlockCounts(int(b[0]), int(b[1])))
    extra = {k: data.get(k) or {} for k in ("budget", "predicted", "provenance")}
    for k, v in extra.items():
        if not isinstance(v, dict):
            raise HwsearchError(f"{where}: {k!r} must be a mapping")
    return Schedule(data["model"], data["img_size"], data["num_tokens"], data["num_prefix"], blocks,
                    **extra, merging=str(data.get("merging", "rank"))).validate()


def load_schedule(path: str | Path) -> Schedule:
    """Read a schedule YAML with ``safe_load``."""
    path = Path(path)
    if not path.is_file():
        raise HwsearchError(f"schedule not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0]
        raise HwsearchError(f"{path}: corrupt schedule YAML ({reason})") from None
    return from_dict(data, str(path))


load = load_schedule  # ``hwsearch.schedule.load``: the public name since the first release
