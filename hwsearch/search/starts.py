"""How a gradient search begins: the warm start it descends from, chosen on the search images.

The gradient rates are local (docs/benchmark-log.md, "Independence from the start"): from the EViT-style schedule
every variant measured kept its three-block shape (best 0.9756 held-out vs 0.99 from the ToMe-style
start), and from dense the surrogate's own path, tightening the budget step by step, ended front-loaded
at 0.9587. So the global choice is made on the deploy-mode loss the search is judged by: every hand
schedule solved for the budget is scored on the search images, and the search descends from the best
— the named warm start unless another beats it by more than one standard error of the paired
difference (the rule :func:`hwsearch.search.finish.better_of` ends the search with).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch

from hwsearch.cost.base import Budget, CostModel, constraint
from hwsearch.data import ImageSet
from hwsearch.model.vit import CompressedViT
from hwsearch.quality import Reference, by_group, collect
from hwsearch.schedule import Counts
from hwsearch.search.baselines import STARTS, solve
from hwsearch.search.finish import paired_gain, schedule_losses
from hwsearch.search.pricing import Pricer, priced_starts


def hand_starts(cost: CostModel, target: float, depth: int, num_prefix: int, compress_from: int,
                kinds: Iterable[str] = STARTS) -> dict[str, Counts]:
    """The hand schedules ``kinds`` (default: the start candidates, :data:`hwsearch.search.baselines.STARTS`),
    each solved for the budget."""
    return {kind: solve(kind, cost, target, depth, num_prefix, compress_from) for kind in kinds}


def pick_start(model: CompressedViT, data: ImageSet, ref: Reference, labels: torch.Tensor | None,
               candidates: dict[str, Counts], batch_size: int, cache: dict[tuple, torch.Tensor] | None = None
               ) -> tuple[str, dict[str, Any]]:
    """The name of the start to descend from: the first candidate (the named one) unless the one with the
    lowest mean search loss beats it by more than one standard error (clustered by photo: ``paired_gain``); and why
    (every mean loss).
    ``cache``: see :func:`hwsearch.search.finish.schedule_losses`."""
    unique: dict[str, Counts] = {}
    for name, counts in candidates.items():  # a start equal to an earlier one is scored once, under its first name
        if counts not in unique.values():
            unique[name] = counts
    preferred = next(iter(unique))
    if len(unique) == 1:
        return preferred, {"start": preferred}
    losses = schedule_losses(model, data, ref, labels, unique, batch_size, cache)
    best = min(losses, key=lambda name: float(losses[name].mean()))
    wins, why = beats(losses, preferred, best, data.groups)
    chosen = best if wins else preferred
    return chosen, {"start": chosen, "named": preferred, **why}


def beats(losses: dict[str, torch.Tensor], base: str, other: str, groups: list[str] | None,
          every_photo: bool = False) -> tuple[bool, dict[str, Any]]:
    """Whether ``other`` beats ``base`` by their per-image losses: by more than one standard error of the paired
    difference (clustered by photo: ``paired_gain``) and, with ``every_photo``, on every source photo; and why
    (every mean loss, the gain, its standard error and, with ``every_photo``, the gain per photo)."""
    gain, standard_error = paired_gain(losses[base], losses[other], groups)
    why = {"start_loss": {k: float(v.mean()) for k, v in losses.items()}, "start_gain": float(gain.mean()),
           "start_standard_error": standard_error}
    wins = float(gain.mean()) > standard_error
    if every_photo:
        why["photo_gain"] = by_group(gain, groups)
        wins = wins and all(g > 0 for g in why["photo_gain"].values())
    return wins, why


def choose_start(model: CompressedViT, data: ImageSet, ref: Reference, labels: torch.Tensor | None,
                 budgets: list[Budget], named: dict[str, Counts], compress_from: int, batch_size: int,
                 cache: dict[tuple, torch.Tensor] | None = None, price: Pricer | None = None, hands: bool = True
                 ) -> tuple[Counts, dict[str, Any], list[Budget]]:
    """(the warm start: :func:`pick_start` among ``named`` and, with ``hands``, the hand starts; why; the
    budgets to search on).

    ``price`` (one budget): the starts priced by measurement (:mod:`hwsearch.search.pricing`) first;
    the search then runs on the chosen shape's budget corrected by its measured error."""
    bound = constraint(budgets)
    candidates = dict(named)
    if hands:
        candidates |= hand_starts(bound.cost, bound.target, model.depth, model.num_prefix, compress_from)
    began = time.perf_counter()
    errors = None
    if price is not None:
        if len(budgets) > 1:
            raise ValueError("hand starts are priced by measurement for one budget only")
        candidates, errors = priced_starts(candidates, price, bound.cost, bound.target, model.depth,
                                           model.num_prefix, compress_from)
    name, chosen = pick_start(model, data, ref, labels, candidates, batch_size, cache)
    chosen["start_seconds"] = round(time.perf_counter() - began, 1)
    if errors is not None:  # the search keeps the start's shape priced as measured
        budgets = [Budget(bound.cost, bound.target / errors[name], bound.name)]
        chosen |= {"measured_errors": {k: round(v, 4) for k, v in errors.items()}, "budget": budgets[0].target}
    return candidates[name], chosen, budgets


def against_hand_start(model: CompressedViT, data: ImageSet, candidate: Counts, kind: str, cost: CostModel,
                       target: float, compress_from: int, batch_size: int) -> tuple[Counts, dict[str, Any]]:
    """``candidate``, or the hand schedule ``kind`` solved for ``target`` unless the candidate beats it on ``data``
    (distillation loss, deploy mode) by more than one standard error of the paired difference (the rule
    :func:`pick_start` and the search's end use) *and* on every source photo of ``data`` (where it has them); and
    why. For a searched shape moved onto another budget by the measured check: it won over its hand start at the
    first budget, and must win again at the new one, on every scene it was searched on. Session 45 replayed this
    check on five recorded schedules (``results/benchmarks/hand_check_replay_s45.*``): the three that lost to their
    hand start on the held-out photos (-0.0017, -0.0021, -0.0020: the cat -0.009 to -0.021) beat it by 1.4-2.1
    standard errors but each lost one search photo; the two that beat it held-out (+0.0033, +0.0019) won all five."""
    hand = solve(kind, cost, target, model.depth, model.num_prefix, compress_from)
    if hand == candidate:
        return candidate, {}
    ref = collect(model, data, batch_size)
    losses = schedule_losses(model, data, ref, None, {kind: hand, "searched": candidate}, batch_size)
    wins, why = beats(losses, kind, "searched", data.groups, every_photo=True)
    return (candidate if wins else hand), {"start": "searched" if wins else kind, **why}
