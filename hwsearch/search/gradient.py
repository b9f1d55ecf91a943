"""DiffRate gradient search: learn per-block prune/merge counts under a cost budget.

Two kinds of rates, only they are trained (cosine LR), the backbone is frozen. ``ddp`` (DiffRate's):
loss = distillation to the dense model + lam * (max over budgets of cost / target - 1)^2 (several
budgets, on one or several targets: the binding one is met, the others kept under), AdamW on the DDP
logits. ``fractions``: the distillation loss alone, every update projected to fixed cost and back onto
the budget (see hwsearch.search.fractions). ``auto`` (default) takes fractions when a budget is
measured, ddp for GMACs. Dense outputs are computed once and cached. The warm start is solved on the
worst ratio, and the search descends from the best hand schedule on the search images
(hwsearch.search.starts); the first budget is the primary one (reported prediction, history).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from hwsearch.cost.base import Budget, WorstRatio, constraint
from hwsearch.data import ImageSet, normalize
from hwsearch.io import atomic_path, write_json
from hwsearch.model.vit import CompressedViT
from hwsearch.quality import collect, distill_loss
from hwsearch.schedule import Counts, as_lists
from hwsearch.search.baselines import solve
from hwsearch.search.finish import TOLERANCE, better_of, onto_budget
from hwsearch.search.fractions import FractionRates, NormalizedDescent, project_out
from hwsearch.search.pricing import Pricer
from hwsearch.search.rates import RateSchedule
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
    # ddp (DiffRate's proxy, penalty loss), fractions (free rates on the budget), or auto: fractions when
    # a budget is measured (latency, energy), ddp for GMACs alone (measured; README "Why DDP for GMACs")
    rates: str = "auto"
    accumulate: int | None = None  # micro-batches of batch_size per update; None: the rates' default
    optimizer: str | None = None  # adamw, or normalized (see NormalizedDescent); None: the rates' default
    keep_better_start: bool = True  # return the warm start where it beats the search's end (see better_of)
    pick_start: bool = True  # descend from the best hand schedule on the search images (see hwsearch.search.starts)
    price_starts: bool = True  # one latency budget on this host: hand starts priced by measurement (search.pricing)

    def resolved(self, budgets: list[Budget]) -> SearchConfig:
        """This config with ``auto`` and every None replaced by the rates' defaults for these budgets."""
        rates = self.rates
        if rates == "auto":
            rates = "fractions" if any(b.cost.measured for b in budgets) else "ddp"
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


def _save_state(path: Path, rates: RateSchedule, optim: torch.optim.Optimizer, step: int) -> None:
    """Resume point as JSON (no pickle): logits, AdamW moments, step."""
    state = {
        "step": step,
        "rates": {k: v.tolist() for k, v in rates.state_dict().items() if k.endswith("logits")},
        "optim": [{k: (v.tolist() if torch.is_tensor(v) else v) for k, v in s.items()}
                  for s in optim.state_dict()["state"].values()],
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state))


def _load_state(path: Path, rates: RateSchedule, optim: torch.optim.Optimizer) -> int:
    state = json.loads(path.read_text())
    current = rates.state_dict()
    current.update({k: torch.tensor(v) for k, v in state["rates"].items()})
    rates.load_state_dict(current)
    opt_state = optim.state_dict()
    opt_state["state"] = {i: {k: torch.tensor(v) for k, v in s.items()} for i, s in enumerate(state["optim"])}
    optim.load_state_dict(opt_state)
    return int(state["step"])


def cosine_lr(step: int, total: int, lr: float, lr_min: float) -> float:
    """Cosine decay from ``lr`` at step 0 to ``lr_min`` at the last step."""
    return lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * step / max(total - 1, 1)))


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torch.distributed (torchrun), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_grads(rates: RateSchedule) -> None:
    import torch.distributed as dist

    for p in rates.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def gradient_search(model: CompressedViT, budgets: list[Budget], data: ImageSet,
                    cfg: SearchConfig, resume: Path | None = None, progress: bool = True,
                    stop_after: int | None = None, start: Counts | None = None,
                    price: Pricer | None = None) -> SearchResult:
    """Run the DiffRate loop; returns the rounded schedule and its predicted cost(s).

    Under torchrun each rank takes its shard of every batch; the loss is weighted so that the
    summed (all-reduced) gradient equals the single-process gradient of the whole batch, hence
    every rank keeps the same logits (the same as one process, up to float summation order).

    With ``resume``, the state is saved after every step and a rerun continues from it;
    ``stop_after`` ends the run early after that many steps (as an interruption would). ``start``: the
    warm start's counts (default: ``cfg.init`` solved for the budget; none for "flat"). ``price`` (one
    budget, no ``start`` given): the hand starts priced by measurement (:mod:`hwsearch.search.pricing`);
    the search then runs on the chosen start's corrected budget.
    """
    cfg = cfg.resolved(budgets)
    torch.manual_seed(cfg.seed)
    cost, target = budgets[0].cost, budgets[0].target
    bound, worst_of = constraint(budgets), WorstRatio(budgets)  # several budgets: the worst cost/budget ratio
    rank, world = rank_and_world()
    progress = progress and rank == 0
    start_time = time.perf_counter()
    model.eval().requires_grad_(False)
    model = CompressedViT(model.vit, merging=cfg.merging)  # the operator searched (same blocks and weights)
    classifier = model.vit.num_classes > 0
    labels = data.labels if (cfg.use_labels and data.labels is not None and classifier) else None
    ref = collect(model, data, cfg.batch_size)
    rates = make_rates(cfg, model)
    fixed = isinstance(rates, FractionRates)
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
        bound, worst_of, target = constraint(budgets), WorstRatio(budgets), budgets[0].target
    if start is not None:
        if fixed:
            rates.init_from(start)
        else:
            rates.init_from(start, cfg.init_sharpness)
    if fixed:
        rates.retract(budgets)
    start_counts = start if start is not None else rates.counts(rates())  # moves are counted from the warm start
    learned = [p for p in rates.parameters() if p.requires_grad]
    optim = make_optimizer(cfg, learned)
    per_update = cfg.batch_size * cfg.accumulate
    steps_per_epoch = math.ceil(len(data) / per_update)
    total = cfg.epochs * steps_per_epoch
    step = _load_state(resume, rates, optim) if resume is not None and resume.is_file() else 0
    gen = torch.Generator().manual_seed(cfg.seed)
    orders = [torch.randperm(len(data), generator=gen) for _ in range(cfg.epochs)]
    history: list[dict[str, float]] = []
    bar = tqdm(total=total, initial=step, desc="DiffRate search", disable=not progress, dynamic_ncols=True)
    end = total if stop_after is None else min(total, stop_after)
    while step < end:
        epoch, i = divmod(step, steps_per_epoch)
        update = orders[epoch][i * per_update:(i + 1) * per_update]
        optim.zero_grad(set_to_none=True)
        task_sum = 0.0
        for micro in update.split(cfg.batch_size):
            idx = micro[rank::world]  # this rank's shard (the whole batch in one process)
            if len(idx):
                images = normalize(data.images[idx], model.vit.pretrained_cfg)
                out = model.features(images, rates())
                task = distill_loss(ref.take(idx), out, classifier, labels[idx] if labels is not None else None)
                task = task * (len(idx) / len(update))  # shard mean -> its share of the update's mean
                task.backward()
                task_sum += task.item()
        keeps = rates()
        expected = [b.cost.expected_cost(keeps) for b in budgets]
        penalty = cfg.lam * (worst_of.ratio(expected) - 1.0) ** 2  # the binding budget at 1, others under
        if fixed:  # the update moves tokens at fixed cost; the retraction puts it back on the budget
            _project_task_gradient(rates, budgets, expected, world)
        else:
            (penalty / world).backward()
            if world > 1:
                _all_reduce_grads(rates)
        for group in optim.param_groups:
            group["lr"] = cosine_lr(step, total, cfg.lr, cfg.lr / 10)
        optim.step()
        if fixed:
            rates.retract(budgets)
        step += 1
        loss = task_sum + (0.0 if fixed else penalty.item() / world)
        record = {"step": step, "loss": loss, "task": task_sum, "cost": expected[0].item(),  # this rank
                  **{f"cost_{b.name}": e.item() for b, e in zip(budgets[1:], expected[1:], strict=True)}}
        history.append(record)
        bar.set_postfix(task=f"{record['task']:.4f}", cost=f"{record['cost']:.3f}/{target:.3f} {cost.unit}")
        bar.update()
        if resume is not None and rank == 0:
            _save_state(resume, rates, optim, step)
    bar.close()
    with torch.no_grad():
        counts = rates.counts(rates())
        over = bound.cost.cost(counts) / bound.target
        counts = onto_budget(counts, bound.cost, bound.target, model, cfg.compress_from)
        selection: dict[str, Any] = {}
        if start is not None and cfg.keep_better_start and counts != start:
            counts, selection = better_of(model, data, ref, labels, {"searched": counts, "warm start": start},
                                          bound.cost, bound.target, cfg.batch_size, scored)
    logits = {k: v.tolist() for k, v in rates.state_dict().items() if k.endswith("logits")}
    return SearchResult(counts, cost.cost(counts), target, {b.name: b.cost.cost(counts) for b in budgets},
                        time.perf_counter() - start_time, step, cfg, history, logits, movement(start_counts, counts),
                        selection, over if over > 1 + TOLERANCE else None, chosen)


def make_optimizer(cfg: SearchConfig, learned: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "normalized":
        return NormalizedDescent(learned, cfg.lr)
    if cfg.optimizer != "adamw":
        raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adamw or normalized)")
    return torch.optim.AdamW(learned, lr=cfg.lr, weight_decay=0.0)


def make_rates(cfg: SearchConfig, model: CompressedViT) -> RateSchedule | FractionRates:
    if cfg.rates == "fractions":
        return FractionRates(model.depth, model.num_tokens, model.num_prefix, cfg.compress_from, cfg.ops, cfg.merging)
    return RateSchedule(model.depth, model.num_tokens, model.num_prefix, cfg.granularity, cfg.compress_from,
                        cfg.ops, cfg.merging)


def _project_task_gradient(rates: FractionRates, budgets: list[Budget], expected: list[torch.Tensor],
                           world: int) -> None:
    """Replace the accumulated task gradient by its part orthogonal to the worst budget's cost gradient."""
    if world > 1:
        _all_reduce_grads(rates)
    params = [p for p in rates.parameters() if p.requires_grad]
    task = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
    worst = max(range(len(budgets)), key=lambda i: float(expected[i].detach()) / budgets[i].target)
    cost = torch.autograd.grad(expected[worst] / budgets[worst].target, params, allow_unused=True)
    cost = [c if c is not None else torch.zeros_like(p) for c, p in zip(cost, params, strict=True)]
    for p, g in zip(params, project_out(task, cost), strict=True):
        p.grad = g


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
