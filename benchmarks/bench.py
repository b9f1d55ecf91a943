"""The set-up every benchmark shares: arguments, target, model, results folder, image sets."""
from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from hwsearch.cost.base import Budget, LatencyBudget  # noqa: E402
from hwsearch.cost.fit import load_costmodel  # noqa: E402
from hwsearch.cost.measured import MeasuredCost  # noqa: E402
from hwsearch.data import ImageSet, default_sets  # noqa: E402
from hwsearch.model.vit import CompressedViT, apply_schedule  # noqa: E402
from hwsearch.model.zoo import load_model  # noqa: E402
from hwsearch.profiling.measure import Measurement, measure_models, measure_pair  # noqa: E402
from hwsearch.quality import Reference, collect, feature_cosines, group_indices  # noqa: E402
from hwsearch.schedule import Counts, bisect  # noqa: E402
from hwsearch.search.latency_check import check_latency  # noqa: E402
from hwsearch.search.optimize import searching_again  # noqa: E402
from hwsearch.search.pricing import measured_pricer  # noqa: E402
from hwsearch.targets import Target, load_target  # noqa: E402
from hwsearch.workspace import Workspace  # noqa: E402
from profilers.timing import balanced_orders, paired_ratio  # noqa: E402


@dataclass
class Bench:
    target: Target
    vit: Any
    name: str
    checkpoint: str | None
    model: CompressedViT
    workspace: Workspace
    search_set: ImageSet
    held_out: ImageSet

    @cached_property
    def held_out_ref(self) -> Reference:
        """Dense on the held-out images (computed once)."""
        return collect(self.model, self.held_out)

    def held_out_cosines(self, counts: Counts, merging: str = "similarity") -> torch.Tensor:
        """Per held-out image, the feature cosine of ``counts`` (deploy mode, ``merging``) with dense."""
        return feature_cosines(self.held_out_ref, collect(apply_schedule(self.vit, counts, merging), self.held_out))

    def latency_cost(self, merging: str = "similarity") -> MeasuredCost:
        """The target's fitted latency model (hwsearch profile + hwsearch fit first) for ``merging``."""
        return MeasuredCost(load_costmodel(self.workspace.costmodel_json), "latency", merging)


def paired_interval(a: Any, b: Any, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over images and its paired bootstrap 95% interval (images resampled together)."""
    import numpy as np

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_by_photo(a: Any, b: Any, groups: list[str] | None) -> dict[str, tuple[float, float, float]]:
    """:func:`paired_interval` within each held-out photo (so one photo cannot carry a result)."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return {g: paired_interval(a[idx], b[idx]) for g, idx in group_indices(groups).items()}


def latency_search(model: CompressedViT, cost: MeasuredCost, goal_ms: float, images: ImageSet,
                   config: Any, target: Target) -> Callable[[float], Counts]:
    """``search(r)``: the gradient search's schedule on the latency budget ``goal_ms`` / r (optimize's: the
    first search's hand starts measured on ``target`` unless ``config.price_starts`` is off)."""
    price = measured_pricer(target, model, cost) if config.price_starts else None
    return searching_again(model, [Budget(cost, goal_ms, name="latency_ms")], images, config, price=price)


def on_measured_budget(target: Target, model: CompressedViT, search: Callable[[float], Counts], fraction: float,
                       refine: int, config: Any) -> Counts:
    """As ``optimize --latency-ms``: the searched schedule (``search(1.0)``; ``search(r)`` searches on the
    budget / r) measured beside dense; when it misses the band around ``fraction`` x the dense latency
    measured in that run, the search again on the budget / (measured / budget), then the measured
    local search."""
    counts = search(1.0)
    first = measure_pair(target, model, counts)
    budget_ms = fraction * first["dense"].median_ms
    print(f"  budget {fraction:.2f} x dense measured = {budget_ms:.2f} ms", flush=True)
    pending = {tuple(counts): first}
    measure_fn = lambda t, c: pending.pop(tuple(c), None) or measure_pair(t, model, c)  # noqa: E731
    return check_latency([LatencyBudget(target, budget_ms)], model, counts, refine, config.compress_from,
                         measure_fn, search).counts


def matching_run(target: Target, models: dict[str, CompressedViT], ours: str, theirs: str, repeats: int
                 ) -> tuple[dict[str, Any], dict[str, Measurement]]:
    """Dense and the compared models measured in one run of ``repeats`` interleaved rounds: a summary
    (each model's median; ``theirs / ours`` as their paired ratio ``ratio`` with its 95% interval
    ``ratio_95``) and the measurements themselves (to pool runs)."""
    stats = measure_models(target, models, target.batch, {"repeats": repeats})
    return summary(stats, ours, theirs), stats


def summary(stats: dict[str, Measurement], ours: str, theirs: str) -> dict[str, Any]:
    value, low, high = paired_ratio(stats[theirs], stats[ours])
    return {**{k: m.median_ms for k, m in stats.items()}, "ratio": value, "ratio_95": [low, high]}


@dataclass
class Match:
    """A latency match: the parameter chosen, the pooled runs at it, and every run on the way."""

    x: float
    final: dict[str, Any]  # summary of the confirming runs pooled (``rounds``, per-run ``run_ratios``)
    runs: list[dict[str, Any]]  # every run: {"x", medians, "ratio", "ratio_95", "phase"}


TOLERANCE = 0.02  # |theirs / ours - 1| accepted as equal latency
CONFIRM = 3  # runs pooled at the chosen parameter
REFITS = 3  # pooled matches at most, each at a refitted parameter
ROUNDS = 2 * len(balanced_orders(3))  # of each matching run: two full balanced cycles of dense, ours, theirs


def match_latency(run_at: Callable[[float], tuple[dict[str, Any], dict[str, Measurement]]], lo: float, hi: float,
                  rising: bool, snap: Callable[[float], float], ours: str, theirs: str, label: str,
                  coarse: int = 5, confirm: int = CONFIRM) -> Match:
    """The parameter x whose model ``theirs`` matches ``ours`` in measured latency within 2%.

    ``run_at(x)`` measures dense, ours and theirs(x) in one run (:func:`matching_run`); the ratio
    theirs/ours rises with x when ``rising``. One run's paired ratio moves by ~4% between runs
    minutes apart on this VM at batch 1 (more than its own interval: each run has its own bias), so
    a single matching run matched schedules ~8% apart in GMACs. Hence: a coarse bisection on single
    runs (``coarse`` steps, not stopped by a lucky run, so that runs lie on both sides); then x
    from a log-linear fit over every run near the match (the runs' biases average out), ``confirm``
    runs there pooled round by round; while the pooled ratio misses 2% or its interval excludes 1 (a
    1% mismatch moves fidelity by ~0.001 at 0.7 x dense: session 38), a refit with them and ``confirm``
    more runs, at most ``REFITS`` times and while the refit moves x; the pooled match nearest 1 is
    returned. ``snap`` rounds x to what the model accepts.
    """
    runs: list[dict[str, Any]] = []

    def coarse_ratio(x: float) -> float:
        logged_run(run_at, x, "coarse", runs, ours, theirs, label)
        return runs[-1]["ratio"]

    bisect(coarse_ratio, 1.0, lo, hi, coarse, rising=rising)  # no early stop: runs on both sides
    tried: list[Match] = []
    for _ in range(REFITS):
        x = snap(fitted_match(runs, rising, lo, hi))
        if tried and x == tried[-1].x:  # the refit stays (e.g. at a bound the other side cannot pass)
            break
        tried.append(pooled_match(run_at, x, ours, theirs, label, confirm, runs))
        low, high = tried[-1].final["ratio_95"]
        if abs(tried[-1].final["ratio"] - 1) <= TOLERANCE and low <= 1 <= high:
            break
    return min(tried, key=lambda m: abs(math.log(m.final["ratio"])))


def pooled_match(run_at: Callable[[float], tuple[dict[str, Any], dict[str, Measurement]]], x: float, ours: str,
                 theirs: str, label: str, confirm: int = CONFIRM, runs: list[dict[str, Any]] | None = None) -> Match:
    """``confirm`` runs at ``x`` pooled round by round (appended to ``runs``, phase "confirm")."""
    runs = [] if runs is None else runs
    pooled: dict[str, Measurement] | None = None
    per_run = []
    for _ in range(confirm):
        stats = logged_run(run_at, x, "confirm", runs, ours, theirs, label)
        per_run.append(runs[-1]["ratio"])
        pooled = stats if pooled is None else {k: m.pooled(stats[k]) for k, m in pooled.items()}
    assert pooled is not None
    final = {**summary(pooled, ours, theirs), "rounds": pooled[ours].repeats, "run_ratios": per_run}
    print(f"  {label}={x:.4g}, {confirm} runs pooled ({final['rounds']} rounds): paired {theirs}/{ours} "
          f"{final['ratio']:.3f} [{final['ratio_95'][0]:.3f}, {final['ratio_95'][1]:.3f}]", flush=True)
    return Match(x, final, runs)


def logged_run(run_at: Callable[[float], tuple[dict[str, Any], dict[str, Measurement]]], x: float, phase: str,
               runs: list[dict[str, Any]], ours: str, theirs: str, label: str) -> dict[str, Measurement]:
    """One matching run at ``x``: its summary appended to ``runs`` and printed; its measurements returned."""
    found, stats = run_at(x)
    runs.append({"x": x, "phase": phase, **found})
    print(f"  {label}={x:.4g}: paired {theirs}/{ours} {found['ratio']:.3f} [{found['ratio_95'][0]:.3f}, "
          f"{found['ratio_95'][1]:.3f}], dense {found['dense']:.2f} ms", flush=True)
    return stats


def fitted_match(runs: list[dict[str, Any]], rising: bool, lo: float, hi: float) -> float:
    """x where a least-squares line through (x, log ratio) of the runs within 15% of a match (all
    runs when those have fewer than two distinct x) crosses 0; the closest run's x when the runs have
    one x or the slope has the wrong sign."""
    import numpy as np

    near = [r for r in runs if abs(math.log(r["ratio"])) <= math.log(1.15)]
    if len({r["x"] for r in near}) < 2:
        near = runs
    closest = min(runs, key=lambda r: abs(math.log(r["ratio"])))["x"]
    if len({r["x"] for r in near}) < 2:
        return closest
    slope, intercept = np.polyfit([r["x"] for r in near], np.log([r["ratio"] for r in near]), 1)
    if (slope > 0) != rising:
        return closest
    return float(min(hi, max(lo, -intercept / slope)))


def parser(doc: str | None, num_images: int) -> argparse.ArgumentParser:
    """A benchmark's argument parser with the shared options."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="cpu_onnxruntime")
    p.add_argument("--model", help="default: the embedded DINOv2 ViT-S/14")
    p.add_argument("--img-size", type=int)
    p.add_argument("--num-images", type=int, default=num_images, help="search + held-out images")
    p.add_argument("--out", default="results")
    return p


def setup(args: argparse.Namespace) -> Bench:
    target = load_target(args.target)
    vit, name, checkpoint = load_model(args.model, None, args.img_size)
    search_set, held_out = default_sets(int(vit.patch_embed.img_size[0]), args.num_images)
    return Bench(target, vit, name, checkpoint, CompressedViT(vit), Workspace(Path(args.out), target, name),
                 search_set, held_out)
