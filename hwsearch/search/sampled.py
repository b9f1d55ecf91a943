"""Optuna search over sampled schedules, on the same cost model and quality measure as the gradient search.

A trial's parameters are, for every compressing block, the fraction of the removable tokens
dropped by pruning and then by merging (``prune_i``, ``merge_i`` in [0, MAX_DROP]); counts are
rebuilt block by block, so every sampled schedule is valid (monotone) by construction, and any
schedule (gradient result, hand baselines) maps back to parameters exactly. Objectives: quality
(agreement with the dense model on a fixed held-out set; maximized) and cost (predicted by the
cost model; minimized); a budget is a constraint (``trial.set_constraint``). Every trial stores
its counts, origin and wall time as user attributes.
"""
from __future__ import annotations

import json
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna

from hwsearch.cost.base import CostModel
from hwsearch.errors import HwsearchError
from hwsearch.schedule import Counts, as_lists, bisect, walk

MAX_DROP = 0.5  # per block and op; enqueued schedules beyond it are evaluated exactly as given
SAMPLERS = ("tpe", "nsga2", "gp", "random", "cmaes")


@dataclass(frozen=True)
class Space:
    """Token layout of a model: which blocks may compress."""

    num_tokens: int
    num_prefix: int
    depth: int
    compress_from: int = 1

    def counts(self, params: dict[str, float]) -> Counts:
        """Schedule from drop fractions (a fraction of the tokens that could still go)."""

        def step(i: int, entering: int) -> tuple[int, int]:
            p = entering - round(params[f"prune_{i}"] * (entering - self.num_prefix - 1))
            return p, p - round(params[f"merge_{i}"] * (p - self.num_prefix - 1))

        return walk(self.num_tokens, self.depth, self.compress_from, step, self.num_prefix + 1)

    def params(self, counts: Counts) -> dict[str, float]:
        """Inverse of :meth:`counts` (exact: ``counts(params(c)) == c``)."""
        out: dict[str, float] = {}
        cur = self.num_tokens
        for i in range(self.compress_from, self.depth):
            p, m = counts[i]
            out[f"prune_{i}"] = (cur - p) / (cur - self.num_prefix - 1) if cur > self.num_prefix + 1 else 0.0
            out[f"merge_{i}"] = (p - m) / (p - self.num_prefix - 1) if p > self.num_prefix + 1 else 0.0
            cur = m
        return out

    def suggest(self, trial: optuna.Trial) -> Counts:
        params = {}
        for i in range(self.compress_from, self.depth):
            for op in ("prune", "merge"):
                params[f"{op}_{i}"] = trial.suggest_float(f"{op}_{i}", 0.0, MAX_DROP)
        return self.counts(params)


@dataclass(frozen=True)
class BudgetSpace(Space):
    """Schedules ON the budget: a trial samples only the shape, the scale is solved.

    Per compressing block a weight ``w_i`` (share of the compression it takes) and a split
    ``split_i`` (pruned share of its drop); one scale ``s`` (bisection) makes block i drop the
    fraction ``min(1, s * w_i)`` of its removable tokens so that the predicted cost is the largest
    not above the budget. Every trial is then at the budget, and samplers compare schedules of
    equal cost, as the gradient search's result is. Queued schedules are evaluated as given.
    """

    cost: Any = None
    budget: float = 0.0
    merging: str = "rank"  # similarity merging merges at most half a block's patches

    def shaped(self, weights: list[float], splits: list[float], scale: float) -> Counts:
        def step(i: int, entering: int) -> tuple[int, int]:
            j = i - self.compress_from
            drop = round(min(1.0, scale * weights[j]) * (entering - self.num_prefix - 1))
            p = entering - round(splits[j] * drop)
            return p, entering - drop

        return walk(self.num_tokens, self.depth, self.compress_from, step, self.num_prefix + 1, self.merging)

    def suggest(self, trial: optuna.Trial) -> Counts:
        blocks = range(self.compress_from, self.depth)
        weights = [trial.suggest_float(f"weight_{i}", 0.0, 1.0) for i in blocks]
        splits = [trial.suggest_float(f"split_{i}", 0.0, 1.0) for i in blocks]
        top = 1.0 / max(min(w for w in weights if w > 0) if any(weights) else 1.0, 1e-6)
        # cost falls as the scale grows (up to rounding): the largest-cost schedule not above the budget
        _, hi = bisect(lambda s: self.cost.cost(self.shaped(weights, splits, s)), self.budget, 0.0, top, 40,
                       rising=False)
        best = self.shaped(weights, splits, hi)
        return best if self.cost.cost(best) <= self.budget else self.shaped(weights, splits, 0.0)


def make_sampler(name: str, seed: int | None, objectives: int) -> optuna.samplers.BaseSampler:
    if name not in SAMPLERS:
        raise HwsearchError(f"unknown sampler {name!r}: choose from {', '.join(SAMPLERS)}")
    if name == "cmaes" and objectives > 1:
        raise HwsearchError("--sampler cmaes is single-objective: give --objective quality (with a budget)")
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.RandomSampler(seed=seed)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def cap_reached(study: optuna.Study, trial: optuna.Trial, cap: int) -> bool:
    """True when ``cap`` trials numbered before this one are complete or still running.

    Checked when a trial starts, so concurrent workers never complete more than ``cap`` trials in
    total (MaxTrialsCallback alone stops only after a trial ends, and can overshoot).
    """
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
    before = [t for t in study.get_trials(deepcopy=False, states=states) if t.number < trial.number]
    return len(before) >= cap


@dataclass
class Evaluator:
    """Quality and cost of a schedule: what every trial and every method is judged by."""

    quality: Callable[[Counts], float]
    cost: CostModel
    budget: float | None
    tolerance: float = 0.02  # feasible up to budget * (1 + tolerance): the searches aim AT the budget

    def record(self, trial: optuna.Trial, counts: Counts, started: float) -> tuple[float, float]:
        quality, cost = self.quality(counts), self.cost.cost(counts)
        trial.set_user_attr("counts", json.dumps(as_lists(counts)))
        trial.set_user_attr("quality", quality)
        trial.set_user_attr("cost", cost)
        trial.set_user_attr("seconds", time.perf_counter() - started)
        if self.budget is not None:
            trial.set_constraint("budget", cost - self.budget * (1 + self.tolerance))
        return quality, cost


def objective(space: Space, evaluator: Evaluator, cap: int, objectives: int, origin: str = "sampler",
              penalty: float = 10.0) -> Callable[[optuna.Trial], Any]:
    """The Optuna objective: (quality, cost), or quality minus a budget penalty (single objective).

    ``origin`` labels sampled trials (queued ones keep the origin they were queued with).
    """

    def run(trial: optuna.Trial) -> Any:
        started = time.perf_counter()
        trial.set_user_attr("worker", worker_id())  # first: a worker killed later leaves a trial it can be failed by
        if cap_reached(trial.study, trial, cap):
            trial.study.stop()
            raise optuna.TrialPruned("global trial cap reached by other workers")
        if "origin" not in trial.user_attrs:
            trial.set_user_attr("origin", origin)
        queued = trial.user_attrs.get("queued_counts")
        with warnings.catch_warnings():  # queued schedules may drop more than MAX_DROP: used as given
            warnings.filterwarnings("ignore", message="Fixed parameter .* is out of range")
            counts = [tuple(c) for c in json.loads(queued)] if queued else space.suggest(trial)
        quality, cost = evaluator.record(trial, counts, started)
        if objectives == 2:
            return quality, cost
        over = max(0.0, cost / (evaluator.budget * (1 + evaluator.tolerance)) - 1.0) if evaluator.budget else 0.0
        return quality - penalty * over ** 2  # CMA-ES and other single-objective samplers take no constraints

    return run


def enqueue_schedule(study: optuna.Study, space: Space, counts: Counts, origin: str, **attrs: Any) -> None:
    """Queue a schedule made elsewhere (gradient search, hand baseline) as the study's next trial.

    It is evaluated by the same objective as sampled trials; ``origin`` marks where it came from.
    In the drop-fraction space it is queued as its exact parameters (beyond MAX_DROP used as given);
    in a :class:`BudgetSpace` (no exact inverse) as its counts.
    """
    if isinstance(space, BudgetSpace):
        study.enqueue_trial({}, user_attrs={"origin": origin, "queued_counts": json.dumps(as_lists(counts)),
                                            **attrs})
    else:
        study.enqueue_trial(space.params(counts), user_attrs={"origin": origin, **attrs}, skip_if_exists=True)


def origins(study: optuna.Study) -> set[str]:
    """Origins of all trials, queued ones included."""
    return {str(t.user_attrs.get("origin")) for t in study.get_trials(deepcopy=False)}
