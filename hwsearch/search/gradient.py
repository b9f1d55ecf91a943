"""DiffRate gradient search: learn per-block prune/merge counts under a cost budget.

Two kinds of rates, only they are trained (cosine LR), the backbone is frozen. ``ddp`` (DiffRate's):
loss = distillation to the dense model + lam * (max over budgets of cost / target - 1)^2 (several
budgets, on one or several targets: the binding one is met, the others kept under), AdamW on the DDP
logits. ``fractions``: the distillation loss alone, every update projected to fixed cost and back onto
the budget (see hwsearch.search.fractions). ``auto`` (default) is DDP; on a measured budget (latency, energy),
where DDP priced by the measured model does not beat its warm start, DDP priced by GMACs descends from the same
start and its schedule is scaled onto the measured budget (:func:`proxy_budgets`). The loop itself is
hwsearch.search.descent. Dense outputs are computed once and cached. The warm start is solved on the
worst ratio, and the search descends from the best hand schedule on the search images
(hwsearch.search.starts); the first budget is the primary one (reported prediction, history).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from hwsearch.cost.base import Budget, constraint
from hwsearch.cost.flops import FlopsCost
from hwsearch.data import ImageSet
from hwsearch.io import write_json
from hwsearch.model.vit import CompressedViT
from hwsearch.quality import collect
from hwsearch.schedule import Counts, as_lists
from hwsearch.search.baselines import solve
from hwsearch.search.descent import Descent, descend
from hwsearch.search.finish import TOLERANCE, better_of, onto_budget
from hwsearch.search.pricing import Pricer
from hwsearch.search.starts import choose_start


@dataclass
class SearchConfig:
    """Knobs of the DiffRate loop (defaults sized for ~1,000 images on a 2-core CPU; optimize's defaults)."""

    epochs: int = 1
    batch_size: int = 16
    lr: float | None = None  # first learning rate (cosine to a tenth of it); None: DEFAULT_LR of the rates
    lam: float = 10.0
    granularity: int = 4
    compress_from: int = 0
    ops: tuple[str, ...] = ("prune", "merge")
    seed: int = 0
    use_labels: bool = True
    init: str = "tome"  # warm start: a hand schedule solved for the budget (baselines.BUILDERS) or "flat"
    init_sharpness: float = 0.25  # ddp: logit fall per candidate step from the warm start (README "A wide warm start")
    merging: str = "similarity"  # the merge operator searched (the model's); see hwsearch.model.matching
    # ddp (DiffRate's proxy, penalty loss), fractions (free rates on the budget), or auto: ddp, and on a
    # measured budget DDP priced by GMACs where DDP priced by the measured model does not beat the warm start
    # (proxy_budgets; README "Which rates")
    rates: str = "auto"
    accumulate: int | None = None  # micro-batches of batch_size per update; None: the rates' default
    optimizer: str | None = None  # adamw, or normalized (see NormalizedDescent); None: the rates' default
    keep_better_start: bool = True  # return the warm start where it beats the search's end (see better_of)
    pick_start: bool = True  # descend from the best hand schedule on the search images (see hwsearch.search.starts)
    price_starts: bool = True  # one latency budget on this host: hand starts priced by measurement (search.pricing)

    def resolved(self, budgets: list[Budget]) -> SearchConfig:
        """This config with ``auto`` and every None replaced by the rates' defaults for these budgets."""
        rates = "ddp" if self.rates == "auto" else self.rates
        if rates not in RATE_DEFAULTS:
            raise ValueError(f"unknown rates {rates!r} (auto, ddp or fractions)")
        lr, accumulate, optimizer = RATE_DEFAULTS[rates]
        return replace(self, rates=rates, lr=lr if self.lr is None else self.lr,
                       accumulate=accumulate if self.accumulate is None else self.accumulate,
                       optimizer=optimizer if self.optimizer is None else self.optimizer)


# (first lr, micro-batches per update, optimizer). ddp: logits (a step moves a peaked distribution by
# about one candidate); fractions: the largest move 5% of a decision's tokens at first, 64 images per update
RATE_DEFAULTS = {"ddp": (0.1, 1, "adamw"), "fractions": (0.05, 4, "normalized")}
RATES = ("auto", *RATE_DEFAULTS)  # what --rates accepts


def proxy_budgets(model: CompressedViT, budgets: list[Budget], start: Counts, merging: str) -> list[Budget] | None:
    """``auto``'s second descent on a measured budget: one GMACs budget at the warm start's GMACs (its schedule is
    then scaled onto the measured budget and judged there), or None where no budget is measured. Why (clustered
    standard errors, session 45): from the ToMe-style start DDP priced by the latency model beat it in none of six
    searches (-0.0065 to +0.0003); the fraction rates beat it twice (per-image standard errors) and both of those
    schedules lost afterwards (to the hand start at the next budget, to ToMe at equal measured latency); DDP
    priced by GMACs moved in every FLOPs-aware search of ``hw_vs_flops.py``, and at the same measured latency its
    shape beat the latency search's (that start) in 4 of 5 runs of sessions 41-45 (session 45, batch 1: +0.0011
    [+0.0001, +0.0021]). The measured budget still decides the scale and the measured check the result."""
    if not any(b.cost.measured for b in budgets):
        return None
    gmacs = FlopsCost.from_model(model.vit, merging)
    return [Budget(gmacs, gmacs.cost(start), "gmacs")]


@dataclass
class SearchResult:
    counts: Counts
    predicted: float
    target: float
    predicted_by: dict[str, float]
    seconds: float
    steps: int
    config: SearchConfig  # the config as run (resolved: no auto, no None)
    history: list[dict[str, float]] = field(default_factory=list)
    logits: dict[str, list[float]] = field(default_factory=dict)
    movement: dict[str, Any] = field(default_factory=dict)
    selection: dict[str, Any] = field(default_factory=dict)  # searched vs warm start (better_of)
    over_budget: float | None = None  # predicted cost / budget before onto_budget moved it (None: not moved)
    start: dict[str, Any] = field(default_factory=dict)  # the warm start chosen and why (pick_start)


def gradient_search(model: CompressedViT, budgets: list[Budget], data: ImageSet,
                    cfg: SearchConfig, resume: Path | None = None, progress: bool = True,
                    stop_after: int | None = None, start: Counts | None = None,
                    price: Pricer | None = None) -> SearchResult:
    """Run the DiffRate search (:func:`hwsearch.search.descent.descend`); returns the rounded schedule
    and its predicted cost(s).

    ``start``: the warm start's counts (default: ``cfg.init`` solved for the budget; none for "flat").
    ``price`` (one budget, no ``start`` given): the hand starts priced by measurement
    (:mod:`hwsearch.search.pricing`); the search then runs on the chosen start's corrected budget.
    ``resume``/``stop_after``: see ``descend``. With ``auto`` rates on a measured budget, where the search does not
    beat its warm start, DDP priced by GMACs descends from the same start (:func:`proxy_budgets`).
    """
    asked, cfg = cfg, cfg.resolved(budgets)
    torch.manual_seed(cfg.seed)
    cost, target = budgets[0].cost, budgets[0].target
    bound = constraint(budgets)  # several budgets: the worst cost/budget ratio
    start_time = time.perf_counter()
    model.eval().requires_grad_(False)
    model = CompressedViT(model.vit, merging=cfg.merging)  # the operator searched (same blocks and weights)
    classifier = model.vit.num_classes > 0
    labels = data.labels if (cfg.use_labels and data.labels is not None and classifier) else None
    ref = collect(model, data, cfg.batch_size)
    named_as = "given" if start is not None else cfg.init
    if start is None and cfg.init != "flat":  # "flat": zero logits (DiffRate's uniform candidates, or half each)
        start = solve(cfg.init, bound.cost, bound.target, model.depth, model.num_prefix, cfg.compress_from)
    chosen: dict[str, Any] = {"start": named_as}
    scored: dict[tuple, torch.Tensor] = {}  # search-image losses by schedule: the start is scored once
    price = price if named_as != "given" else None
    if cfg.pick_start or (price is not None and start is not None):  # --keep-init: the named start, priced
        named = {} if start is None else {named_as: start}
        start, chosen, budgets = choose_start(model, data, ref, labels, budgets, named, cfg.compress_from,
                                              cfg.batch_size, scored, price, hands=cfg.pick_start)
        bound, target = constraint(budgets), budgets[0].target

    @torch.no_grad()
    def finish(run: Descent) -> tuple[Counts, dict[str, Any], float]:
        """The descent's schedule onto the budget, then it or the warm start (better_of); its cost / budget."""
        over = bound.cost.cost(run.counts) / bound.target
        counts = onto_budget(run.counts, bound.cost, bound.target, model, cfg.compress_from)
        if start is None or not cfg.keep_better_start:
            return counts, {}, over
        if counts == start:
            return counts, {"kept": "warm start"}, over
        counts, selection = better_of(model, data, ref, labels, {"searched": counts, "warm start": start},
                                      bound.cost, bound.target, cfg.batch_size, scored)
        return counts, selection, over

    run = descend(model, budgets, data, ref, labels, cfg, start, resume, progress, stop_after)
    initial = run.initial
    counts, selection, over = finish(run)
    steps, history = run.steps, run.history
    proxy = proxy_budgets(model, budgets, start, cfg.merging) if asked.rates == "auto" and start else None
    # "kept" is only recorded where a warm start was compared (keep_better_start): the first descent did not beat it
    if proxy and stop_after is None and selection.get("kept") == "warm start":
        first, priced_by = {"rates": cfg.rates, **selection}, proxy[0].name
        again = resume.with_name(f"{resume.name}.{priced_by}") if resume is not None else None
        run = descend(model, proxy, data, ref, labels, cfg, start, again, progress)
        counts, selection, over = finish(run)  # onto the measured budget, then against the start there
        selection = {**selection, "first": first, "priced_by": priced_by}
        steps, history = steps + run.steps, history + [{**h, "priced_by": priced_by} for h in run.history]
    return SearchResult(counts, cost.cost(counts), target, {b.name: b.cost.cost(counts) for b in budgets},
                        time.perf_counter() - start_time, steps, cfg, history, run.logits, movement(initial, counts),
                        selection, over if over > 1 + TOLERANCE else None, chosen)


def movement(start: Counts, end: Counts) -> dict[str, Any]:
    """Per block the initial and final counts, and the largest move (tokens)."""
    moves = [max(abs(a[0] - b[0]), abs(a[1] - b[1])) for a, b in zip(start, end, strict=True)]
    return {"initial": as_lists(start), "final": as_lists(end), "largest_move": max(moves, default=0),
            "largest_move_block": moves.index(max(moves)) if moves else None}


def save_history(path: Path, result: SearchResult, extra: dict[str, Any]) -> None:
    """Per-step loss/cost history beside the schedule (with the config as run)."""
    write_json(path, {"config": asdict(result.config), "history": result.history,
                      "logits": result.logits, "movement": result.movement, "start": result.start,
                      "selection": result.selection,
                      "over_budget": result.over_budget, **extra})


__all__ = ["SearchConfig", "SearchResult", "gradient_search"]
