"""One descent of the rates from a warm start: the training loop of the gradient search.

Only the rates are trained (cosine LR), the backbone is frozen and the dense outputs (``ref``) are
computed once by the caller. ``ddp``: loss = distillation + lam * (worst cost / target - 1)^2, AdamW on
the DDP logits. ``fractions``: the distillation loss alone, every update projected to fixed cost and
retracted onto the budget (:mod:`hwsearch.search.fractions`). Under torchrun each rank takes its shard of
every batch and the gradients are all-reduced, so every rank keeps the same rates.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from hwsearch.cost.base import Budget, WorstRatio
from hwsearch.data import ImageSet, normalize
from hwsearch.io import atomic_path
from hwsearch.model.vit import CompressedViT
from hwsearch.quality import Reference, distill_loss
from hwsearch.schedule import Counts
from hwsearch.search.fractions import FractionRates, NormalizedDescent, project_out
from hwsearch.search.rates import RateSchedule

if TYPE_CHECKING:
    from hwsearch.search.gradient import SearchConfig


@dataclass
class Descent:
    initial: Counts  # the start's counts (flat: the rates' own before the first step); moves count from it
    counts: Counts  # the rates' rounded schedule at the end (before onto_budget / better_of)
    steps: int
    history: list[dict[str, float]]
    logits: dict[str, list[float]]


def descend(model: CompressedViT, budgets: list[Budget], data: ImageSet, ref: Reference,
            labels: torch.Tensor | None, cfg: SearchConfig, start: Counts | None, resume: Path | None = None,
            progress: bool = True, stop_after: int | None = None) -> Descent:
    """Train ``cfg.rates`` (resolved) from ``start`` (None: flat) for ``cfg.epochs`` over ``data``.
    With ``resume``, the state is saved after every step and a rerun continues from it; ``stop_after``
    ends early after that many steps (as an interruption would)."""
    rank, world = rank_and_world()
    worst_of, target, unit = WorstRatio(budgets), budgets[0].target, budgets[0].cost.unit
    classifier = model.vit.num_classes > 0
    rates = make_rates(cfg, model)
    fixed = isinstance(rates, FractionRates)
    if start is not None:
        if fixed:
            rates.init_from(start)
        else:
            rates.init_from(start, cfg.init_sharpness)
    if fixed:
        rates.retract(budgets)
    with torch.no_grad():
        initial = start if start is not None else rates.counts(rates())
    optim = make_optimizer(cfg, [p for p in rates.parameters() if p.requires_grad])
    per_update = cfg.batch_size * cfg.accumulate
    steps_per_epoch = math.ceil(len(data) / per_update)
    total = cfg.epochs * steps_per_epoch
    step = _load_state(resume, rates, optim) if resume is not None and resume.is_file() else 0
    gen = torch.Generator().manual_seed(cfg.seed)
    orders = [torch.randperm(len(data), generator=gen) for _ in range(cfg.epochs)]
    history: list[dict[str, float]] = []
    bar = tqdm(total=total, initial=step, desc=f"DiffRate search ({cfg.rates})",
               disable=not (progress and rank == 0), dynamic_ncols=True)
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
        bar.set_postfix(task=f"{record['task']:.4f}", cost=f"{record['cost']:.3f}/{target:.3f} {unit}")
        bar.update()
        if resume is not None and rank == 0:
            _save_state(resume, rates, optim, step)
    bar.close()
    with torch.no_grad():
        counts = rates.counts(rates())
    logits = {k: v.tolist() for k, v in rates.state_dict().items() if k.endswith("logits")}
    return Descent(initial, counts, step, history, logits)


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


def cosine_lr(step: int, total: int, lr: float, lr_min: float) -> float:
    """Cosine decay from ``lr`` at step 0 to ``lr_min`` at the last step."""
    return lr_min + (lr - lr_min) * 0.5 * (1 + math.cos(math.pi * step / max(total - 1, 1)))


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) under torch.distributed (torchrun), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_reduce_grads(rates: RateSchedule | FractionRates) -> None:
    import torch.distributed as dist

    for p in rates.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


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


def _save_state(path: Path, rates: RateSchedule | FractionRates, optim: torch.optim.Optimizer, step: int) -> None:
    """Resume point as JSON (no pickle): logits, optimizer moments, step."""
    state = {
        "step": step,
        "rates": {k: v.tolist() for k, v in rates.state_dict().items() if k.endswith("logits")},
        "optim": [{k: (v.tolist() if torch.is_tensor(v) else v) for k, v in s.items()}
                  for s in optim.state_dict()["state"].values()],
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state))


def _load_state(path: Path, rates: RateSchedule | FractionRates, optim: torch.optim.Optimizer) -> int:
    state = json.loads(path.read_text())
    current = rates.state_dict()
    current.update({k: torch.tensor(v) for k, v in state["rates"].items()})
    rates.load_state_dict(current)
    opt_state = optim.state_dict()
    opt_state["state"] = {i: {k: torch.tensor(v) for k, v in s.items()} for i, s in enumerate(state["optim"])}
    optim.load_state_dict(opt_state)
    return int(state["step"])
