"""``hwsearch optimize``: budgets on their cost models, the gradient search, the measured check
(when it misses the band: the search again on the budget the measurement allows, then the
measured local search), fidelity, and the schedule YAML."""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwsearch.cost.base import Budget, constraint, latency_budget
from hwsearch.cost.measured import MeasuredCost
from hwsearch.data import ImageSet, image_sets
from hwsearch.errors import HwsearchError
from hwsearch.io import provenance
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.model.zoo import load_model
from hwsearch.pages import write_page
from hwsearch.quality import collect, fidelity
from hwsearch.schedule import Counts, Schedule, as_lists
from hwsearch.search.baselines import BUILDERS
from hwsearch.search.budgets import NO_BUDGET, BudgetSpec, describe_predicted, label, make_budgets, predicted_record
from hwsearch.search.descent import rank_and_world
from hwsearch.search.finish import rescaled
from hwsearch.search.gradient import SearchConfig, gradient_search, save_history
from hwsearch.search.latency_check import SearchAgain, check_latency, measured_record
from hwsearch.search.pricing import Pricer, measured_pricer
from hwsearch.search.starts import against_hand_start
from hwsearch.workspace import Workspace


@dataclass(frozen=True)
class OptimizeRequest:
    """Everything ``optimize`` was asked for."""

    budgets: list[BudgetSpec]  # the first is the primary one: its target's folder holds the schedule
    model: str | None = None
    checkpoint: str | None = None
    img_size: int | None = None
    data: str | None = None
    num_images: int = 1000
    config: SearchConfig = field(default_factory=SearchConfig)
    name: str | None = None
    resume: bool = False
    refine: int = 6
    progress: bool = True


def run_distributed(out: Path, request: OptimizeRequest) -> int:
    """Under torchrun: data-parallel search (gloo, the search runs on the CPU), rank 0 reports."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        optimize(out, request)
        return 0
    import torch.distributed as dist

    dist.init_process_group("gloo")
    try:
        rank = dist.get_rank()
        with open(os.devnull, "w") as quiet, (contextlib.redirect_stdout(quiet) if rank else contextlib.nullcontext()):
            optimize(out, request, rank)
    finally:
        dist.destroy_process_group()
    return 0


def optimize(out: Path, request: OptimizeRequest, rank: int = 0) -> Path | None:
    """Search, check and write the schedule (rank 0) under the first budget's target; returns its path."""
    if not request.budgets:
        raise HwsearchError(NO_BUDGET)
    cfg, target = request.config, request.budgets[0].target
    vit, name, checkpoint = load_model(request.model, request.checkpoint, request.img_size)
    model = CompressedViT(vit, merging=cfg.merging)
    if not 0 <= cfg.compress_from < model.depth:
        raise HwsearchError(f"--compress-from must be in [0, {model.depth - 1}]")
    ws = Workspace(out, target, name)
    patches = model.num_tokens - model.num_prefix
    min_count = model.num_prefix + (patches % cfg.granularity or cfg.granularity)
    budgets = make_budgets(request.budgets, model,
                           lambda t: Workspace(out, t, name).ensure_costmodel(model, request.model is not None,
                                                                              request.progress),
                           cfg.compress_from, min_count)
    search_set, held_out = image_sets(vit, request.data, request.num_images)
    name_label = request.name or label(budgets)
    resume = ws.schedules / f".{name_label}.search.json" if request.resume else None
    print(f"model: {name} ({checkpoint or 'random weights'}), {model.num_tokens} tokens, {model.depth} blocks; "
          f"search images: {len(search_set)} ({search_set.source})", flush=True)
    for budget, record in budgets:
        print(f"budget{' on ' + record['on'] if 'on' in record else ''}: {budget.target:.3f} {budget.cost.unit} = "
              f"{budget.target / record['dense']:.3f} x dense ({record['dense']:.3f} {budget.cost.unit})", flush=True)
    if len(budgets) > 1:
        print("the search meets the worst of these (largest predicted cost / budget)", flush=True)
    searched = [b for b, _ in budgets]
    run_as = cfg.resolved(searched)
    print(f"search: {run_as.rates} rates{' (auto)' if cfg.rates == 'auto' else ''}, {run_as.optimizer} lr "
          f"{run_as.lr:g}, {run_as.batch_size * run_as.accumulate} images per update", flush=True)
    alone = rank_and_world()[1] == 1
    price = None
    if cfg.price_starts and len(searched) == 1 and measures_latency(searched[0]) and target.is_local and alone:
        in_ms = request.budgets[0].kind == "latency_ms"  # --latency-ms: priced in ms; --speedup: relative to dense
        price = measured_pricer(target, model, searched[0].cost, in_ms)  # the hand starts measured here
    result = gradient_search(model, searched, search_set, cfg, resume=resume,
                             progress=request.progress, price=price)
    if rank != 0:
        return None  # rank 0 measures, evaluates and writes
    print(f"schedule: {as_lists(result.counts)}")
    move = result.movement
    print(f"search started at {move['initial']}; largest move {move['largest_move']} tokens "
          f"(block {move['largest_move_block']})")
    if result.over_budget is not None:
        print(f"the search ended at {result.over_budget:.3f} x its budget (predicted): its removed tokens "
              "scaled up together onto the budget")
    print(describe_start(result.start))
    if result.selection:
        print(describe_selection(result.selection))
    print("\n".join(describe_predicted(budgets, result.counts)))
    print(f"search took {result.seconds:.0f} s")
    latency = [b for spec in request.budgets if (b := latency_budget(spec.target, spec.kind, spec.value))]
    again_log: list[dict[str, Any]] = []  # every search again: its budget and time (YAML, history)
    again = (searching_again(model, searched, search_set, cfg, request.progress, result.counts, again_log)
             if alone else None)
    check = check_latency(latency, model, result.counts, request.refine, cfg.compress_from,
                          search_again=again) if latency else None  # under torchrun rank 0 cannot search alone
    if check is not None and check.counts != result.counts:  # searched again / moved by the local search
        result.counts = check.counts
        print("\n".join(describe_predicted(budgets, result.counts)))
    searched_again = {"searched_again": again_log} if again_log else {}  # in the YAML and the history
    agreement = fidelity(collect(model, held_out), collect(apply_schedule(vit, result.counts, cfg.merging), held_out),
                         vit.num_classes > 0, held_out.labels)
    print(f"agreement with the dense model on {len(held_out)} held-out images: "
          + ", ".join(f"{k} {v:.4f}" for k, v in agreement.items()))
    schedule = Schedule.from_counts(
        name, int(vit.patch_embed.img_size[0]), model.num_tokens, model.num_prefix, result.counts,
        budget={**budgets[0][1], **({"also": [r for _, r in budgets[1:]]} if len(budgets) > 1 else {})},
        predicted=predicted_record(budgets, result.counts), merging=cfg.merging,
        provenance={**provenance(), "model": name, "checkpoint": checkpoint, "data": search_set.source,
                    "num_search_images": len(search_set), "target": target.name,
                    "search_seconds": round(result.seconds + sum(a["seconds"] for a in again_log), 1),
                    "search_steps": result.steps, **searched_again,
                    "search": dict(vars(result.config)), "warm_start": result.start["start"], "fidelity": agreement,
                    **({"measured": measured_record(check)} if check and check.measured else {})})
    path = schedule.save(ws.schedule(name_label))
    save_history(ws.schedules / f"{name_label}.history.json", result,
                 {"schedule": str(path), **searched_again})
    if resume is not None and resume.exists():
        resume.unlink()
    page = write_page(path, model, {r["on"]: b.cost.data for b, r in budgets if isinstance(b.cost, MeasuredCost)})
    print(f"wrote {path}\nwrote {page}\nnext: hwsearch evaluate {path}")
    return path


REFINE_SHARE = 3  # the hand check after a miss runs on every REFINE_SHARE-th search image


def searching_again(model: CompressedViT, budgets: list[Budget], images: ImageSet, cfg: SearchConfig,
                    progress: bool = False, after: Counts | None = None,
                    log: list[dict[str, Any]] | None = None, price: Pricer | None = None) -> SearchAgain:
    """The measured check's ``search_again(ratio)``: the gradient search with every budget on a measured
    latency model aimed at the latest schedule's own predicted cost / ``ratio`` (measured / budget; the
    budget / ``ratio`` before any schedule), the others as they are. The first search's starts may be
    priced by measurement, so that on a host slower than its profile its schedule predicts well below the
    budget: budget / ratio there asked for a near-dense schedule (1.33 x budget measured, session 40).

    The first search (none given in ``after``) is the full default search (``price``: its hand starts
    priced by measurement, :mod:`hwsearch.search.pricing`). Every later one rescales the latest schedule: its
    removed tokens scaled together onto the new budget (the shape the search found, the budget the measurement
    allows), never searched again. Why: no search again has ever ended with its own schedule. From a hand schedule
    (sessions 29, 30, 36, 44; misses 0.883-1.129 x) and from searched ones (session 43, 1.033 x; session 46, 0.883
    and 0.945 x) each kept its rescaled start, and session 45's one that beat it (+0.0026) lost the hand check;
    each took 141-240 s of ``optimize``'s 15 minutes (session 46: 15 min 50 s with one). The rescaled schedule is
    then held against the hand start (``cfg.init``) solved for the new budget on a third of the search images and
    kept only where it beats it beyond one standard error and on every search photo
    (:func:`hwsearch.search.starts.against_hand_start`: its win was at the first budget). ``log``: gets one record
    per search (the measured ratio it corrects, seconds, steps, images, the rates, and which schedule was kept:
    searched, warm start, rescaled or the hand start)."""
    latest: list[Counts] = [after] if after is not None else []

    def record(ratio: float, seconds: float, steps: int, num_images: int, rates: str, kept: str) -> None:
        if log is not None:
            log.append({"measured_over_budget": round(ratio, 4), "seconds": round(seconds, 1), "steps": steps,
                        "images": num_images, "rates": rates, "kept": kept})

    def search_again(ratio: float) -> Counts:
        again = [Budget(b.cost, aimed(b, ratio), b.name) if measures_latency(b) else b for b in budgets]
        if not latest:  # the first search
            result = gradient_search(model, again, images, cfg, progress=progress, price=price)
            print(describe_start(result.start), flush=True)
            if result.selection:
                print(describe_selection(result.selection), flush=True)
            latest.append(result.counts)
            record(ratio, result.seconds, result.steps, len(images), result.config.rates,
                   result.selection.get("kept", "searched"))
            return result.counts
        began, bound = time.perf_counter(), constraint(again)
        counts, kept = rescaled(latest[-1], bound.cost, bound.target, model, cfg.compress_from), "rescaled"
        print(f"the schedule missed by {ratio:.3f} x: its removed tokens scaled onto the new budget, "
              "not searched again", flush=True)
        used = images.take(slice(0, None, REFINE_SHARE))
        if cfg.init in BUILDERS:  # the rescaled schedule against the hand start at the new budget
            counts, why = against_hand_start(model, used, counts, cfg.init, bound.cost, bound.target,
                                             cfg.compress_from, cfg.batch_size)
            kept = f"hand start ({cfg.init})" if why.get("start") == cfg.init else kept
            print(describe_hand_check(why, kept, len(used)), flush=True)
        latest.append(counts)
        record(ratio, time.perf_counter() - began, 0, len(used), "none", kept)
        return counts

    def aimed(budget: Budget, ratio: float) -> float:
        """The predicted cost to search for after measuring ``ratio`` x budget (see above)."""
        return (budget.cost.cost(latest[-1]) if latest else budget.target) / ratio

    return search_again


def describe_start(start: dict[str, Any]) -> str:
    """The warm start the search descended from, the search-image losses that chose it and, where the
    starts were priced by measurement, their measured errors."""
    line = f"warm start: {start['start']}"
    if "start_loss" in start:
        loss = ", ".join(f"{k} {v:.4f}" for k, v in start["start_loss"].items())
        line += (f" (search-image loss {loss}; the best's gain over {start['named']} {start['start_gain']:+.4f}, "
                 f"one standard error {start['start_standard_error']:.4f}; {start['start_seconds']:.0f} s)")
    if "measured_errors" in start:
        errors = ", ".join(f"{k} {v:.3f}" for k, v in start["measured_errors"].items())
        line += (f"\nstarts measured beside dense, measured / predicted: {errors}; "
                 f"each solved on the budget / its own; searched on {start['budget']:.3f}")
    return line


def describe_hand_check(why: dict[str, Any], kept: str, num_images: int) -> str:
    """Which of the search again's schedule and the hand start at its budget was kept (against_hand_start)."""
    if "start_loss" not in why:
        return f"kept the {kept} schedule: the hand start solved for the new budget is the same"
    loss = why["start_loss"]
    hand = next(k for k in loss if k != "searched")
    photos = why.get("photo_gain") or {}
    per_photo = (", per photo " + ", ".join(f"{k} {v:+.4f}" for k, v in photos.items())) if photos else ""
    return (f"against {hand} solved for the new budget, on {num_images} search images: loss {hand} {loss[hand]:.4f}, "
            f"the schedule {loss['searched']:.4f} (its gain {why['start_gain']:+.4f}, one standard error "
            f"{why['start_standard_error']:.4f}{per_photo}; kept only if above it and on every photo): kept the {kept}")


def describe_selection(selection: dict[str, Any]) -> str:
    """Which of the searched schedule and its warm start was kept, and why (a line per rates tried)."""
    lines = []
    if (first := selection.get("first")) is not None:
        why = (f"their gain {first['gain']:+.4f}, one standard error {first['standard_error']:.4f}"
               if "gain" in first else "they ended on it")
        lines.append(f"the {first['rates']} rates did not beat the warm start ({why}); "
                     f"ddp priced by {selection['priced_by']} descended from the same start, "
                     "its schedule scaled onto the budget")
    if "search_loss" in selection:
        loss, ratio = selection["search_loss"], selection["cost_over_budget"]
        lines.append(f"kept the {selection['kept']}: search-image loss "
                     + ", ".join(f"{k} {v:.4f}" for k, v in loss.items())
                     + f" (the search's gain {selection['gain']:+.4f}, one standard error "
                     f"{selection['standard_error']:.4f}); predicted cost "
                     + ", ".join(f"{k} {v:.3f}" for k, v in ratio.items()) + " x budget")
    else:
        lines.append("kept the warm start: the search ended on it")
    return "\n".join(lines)


def measures_latency(budget: Budget) -> bool:
    """A budget on a measured latency model (what the measured check corrects)."""
    return isinstance(budget.cost, MeasuredCost) and budget.cost.quantity == "latency"
