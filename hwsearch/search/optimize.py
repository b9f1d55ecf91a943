"""``hwsearch optimize``: budgets on their cost models, the gradient search, the measured check
(with the measured local search when it misses the band), fidelity, and the schedule YAML."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hwsearch.cost.measured import MeasuredCost
from hwsearch.data import image_sets
from hwsearch.errors import HwsearchError
from hwsearch.io import provenance
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.model.zoo import load_model
from hwsearch.pages import write_page
from hwsearch.profiling.measure import Measurement, measure_models
from hwsearch.quality import collect, fidelity
from hwsearch.schedule import Counts, Schedule, as_lists
from hwsearch.search.budgets import BudgetSpec, describe_predicted, label, make_budgets, predicted_record
from hwsearch.search.gradient import SearchConfig, gradient_search, save_history
from hwsearch.search.local import BAND, measured_search
from hwsearch.targets import Target
from hwsearch.workspace import Workspace
from profilers.timing import paired_ratio


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
        raise HwsearchError("give a budget: --flops-ratio, --gflops, --latency-ms, --energy-mj or --budget")
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
    result = gradient_search(model, [b for b, _ in budgets], search_set, cfg, resume=resume,
                             progress=request.progress)
    if rank != 0:
        return None  # rank 0 measures, evaluates and writes
    print(f"schedule: {as_lists(result.counts)}")
    move = result.movement
    print(f"search started at {move['initial']}; largest move {move['largest_move']} tokens "
          f"(block {move['largest_move_block']})")
    print("\n".join(describe_predicted(budgets, result.counts)))
    print(f"search took {result.seconds:.0f} s")
    measured = None
    latency = [(spec.target, spec.value) for spec in request.budgets if spec.kind == "latency_ms"]
    if latency:
        counts, measured = check_latency(latency, model, result.counts, request.refine, cfg.compress_from)
        if counts != result.counts:  # moved by the measured local search
            result.counts = counts
            print("\n".join(describe_predicted(budgets, result.counts)))
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
                    "search_seconds": round(result.seconds, 1), "search_steps": result.steps,
                    "search": dict(vars(cfg)), "fidelity": agreement,
                    **({"measured": measured_record(measured, latency)} if measured else {})})
    path = schedule.save(ws.schedule(name_label))
    save_history(ws.schedules / f"{name_label}.history.json", result, cfg, {"schedule": str(path)})
    if resume is not None and resume.exists():
        resume.unlink()
    page = write_page(path, model, {r["on"]: b.cost.data for b, r in budgets if isinstance(b.cost, MeasuredCost)})
    print(f"wrote {path}\nwrote {page}\nnext: hwsearch evaluate {path}")
    return path


def measure_pair(target: Target, model: CompressedViT, counts: Counts, batch: int | None = None,
                 here: bool = False) -> dict[str, Measurement]:
    """Dense and compressed deploy-mode models measured here in one run (repeats interleaved: measured
    alone, the small model runs with warmer caches and reads up to ~25% faster on this CPU)."""
    models = {"dense": CompressedViT(model.vit), "compressed": apply_schedule(model.vit, counts, model.merging)}
    return measure_models(target, models, batch or target.batch, here=here)


def describe_measurement(target: Target, stats: dict[str, Measurement], batch: int, budget_ms: float | None) -> str:
    d, c = stats["dense"], stats["compressed"]
    versus = f"; budget {budget_ms:.2f} ms -> {c.median_ms / budget_ms:.3f} x budget" if budget_ms else ""
    speedup = f"speedup {d.median_ms / c.median_ms:.2f}x"
    if c.samples_ms:  # one run's rounds: the paired speedup and its interval
        value, low, high = paired_ratio(d, c)
        speedup = f"speedup {value:.2f}x (paired over {c.repeats} rounds, 95% {low:.2f}-{high:.2f})"
    return (f"measured on {target.name} ({target.backend}, batch {batch}, same run): compressed "
            f"{c.median_ms:.2f} ms (p10-p90 {c.p10_ms:.2f}-{c.p90_ms:.2f}, cv {100 * c.cv:.1f}%), "
            f"dense {d.median_ms:.2f} ms; {speedup}{versus}")


Measured = dict[str, dict[str, Measurement]]  # target name -> {"dense", "compressed"}
SETTLE = 2  # extra runs a measurement may pool before the band decides on it


def check_latency(budgets: list[tuple[Target, float]], model: CompressedViT, counts: Counts, refine: int,
                  compress_from: int, measure_fn: Callable[[Target, Counts], dict[str, Measurement]] | None = None
                  ) -> tuple[Counts, Measured | None]:
    """Measure the searched schedule on every local target of the latency budgets ``(target, ms)``;
    when the worst measured/budget ratio misses the band, a measured local search on that ratio.
    Returns the schedule kept and its measurements (dense and compressed in one run, per target);
    remote targets are predicted only. The local search judges every later candidate at the first
    run's host speed: its paired ratio to dense in its own run x the first run's dense latency (this
    VM's speed drifts 10-25% in minutes, which moved a schedule's raw median more than a local-search
    step does; the ratio measured in one run does not drift).

    ``measure_fn(target, counts)`` measures dense and compressed (default: :func:`measure_pair` here).
    """
    for target, _ in budgets:
        if not target.is_local:
            print(f"predicted only: {target.name} is not this host, nothing was measured")
    local = [(t, ms) for t, ms in budgets if t.is_local]
    if not local:
        return counts, None
    measure_fn = measure_fn or (lambda t, c: measure_pair(t, model, c))

    def measure_all(candidate: Counts, show: bool) -> Measured:
        found = {t.name: measure_fn(t, candidate) for t, _ in local}
        for t, ms in local:
            if show:
                print(describe_measurement(t, found[t.name], t.batch, ms), flush=True)
        return found

    measured = measure_all(counts, True)
    anchor = {t.name: measured[t.name]["dense"].median_ms for t, _ in local}  # the first run's host speed

    def of_budget(found: Measured, name: str, ms: float) -> tuple[float, float, float]:
        """The compressed model's latency at the first run's host speed / ``ms``: estimate, 95% interval."""
        ratio = paired_ratio(found[name]["compressed"], found[name]["dense"])
        return ratio[0] * anchor[name] / ms, ratio[1] * anchor[name] / ms, ratio[2] * anchor[name] / ms

    def compressed_ms(found: Measured, name: str) -> float:
        return of_budget(found, name, 1.0)[0]

    def settled(candidate: Counts, found: Measured) -> Measured:
        """More runs of ``candidate``, pooled, while a target's estimate is outside the band but its 95%
        interval reaches into it: the measurement cannot yet tell on which side it is (at most SETTLE)."""
        for _ in range(SETTLE):
            undecided = [(t, ms, estimate) for t, ms in local
                         if _undecided(*(estimate := of_budget(found, t.name, ms)))]
            if not undecided:
                break
            t, ms, (value, low, high) = undecided[0]
            again = measure_all(candidate, False)
            found = {n: {k: m.pooled(again[n][k]) for k, m in stats.items()} for n, stats in found.items()}
            print(f"{value:.3f} x budget on {t.name} (95% {low:.3f}-{high:.3f}) reaches into the band: measured "
                  f"again, {found[t.name]['compressed'].repeats} rounds pooled -> "
                  f"{of_budget(found, t.name, ms)[0]:.3f} x budget", flush=True)
        return found

    measured = settled(counts, measured)

    def worst(found: Measured) -> float:
        return max(compressed_ms(found, t.name) / ms for t, ms in local)

    single = len(local) == 1  # one target: the search reads milliseconds; several: the worst ratio
    budget = local[0][1] if single else 1.0

    def score(found: Measured) -> float:
        return compressed_ms(found, local[0][0].name) if single else worst(found)

    ratio = worst(measured)
    if BAND[0] <= ratio <= BAND[1] or refine <= 0:
        return counts, measured
    what = "measured" if len(local) == 1 else "worst measured"
    print(f"{what} {ratio:.3f} x budget, outside [{BAND[0]:.2f}, {BAND[1]:.2f}]: measured local search around "
          f"the schedule (at most {refine} measurements)", flush=True)
    seen = {tuple(counts): measured}

    def measure(candidate: Counts) -> float:
        seen[tuple(candidate)] = settled(candidate, measure_all(candidate, False))
        return score(seen[tuple(candidate)])

    best, _ = measured_search(counts, measure, budget, model.num_tokens, model.num_prefix + 1, compress_from,
                              steps=refine, first=score(measured), log=lambda m: print(m, flush=True),
                              merging=model.merging,
                              describe=None if single else lambda v: f"worst measured / budget {v:.3f}",
                              full=anchor[local[0][0].name] if single else max(anchor[t.name] / ms for t, ms in local))
    print(f"schedule: {as_lists(best)}\nits measurement from the local search (dense and compressed in one run):")
    for t, ms in local:
        print(describe_measurement(t, seen[tuple(best)][t.name], t.batch, ms), flush=True)
        at_anchor = compressed_ms(seen[tuple(best)], t.name)
        print(f"at the first run's host speed (dense {anchor[t.name]:.2f} ms): {at_anchor:.2f} ms = "
              f"{at_anchor / ms:.3f} x budget", flush=True)
    return best, seen[tuple(best)]


def _undecided(value: float, low: float, high: float) -> bool:
    """Outside the band, but with an interval that reaches into it."""
    return not BAND[0] <= value <= BAND[1] and low <= BAND[1] and high >= BAND[0]


def measured_record(measured: Measured, budgets: list[tuple[Target, float]]) -> dict:
    """The YAML's ``measured``: one target as before ({dense, compressed}); several by target name,
    each with its budget and measured/budget ratio. Each also has ``speedup_paired``: dense /
    compressed as the median of per-round ratios, with its 95% interval (drift-free, unlike the
    ratio of the two medians)."""
    def record(stats: dict[str, Measurement]) -> dict:
        out: dict = {k: m.as_dict() for k, m in stats.items()}
        if stats["compressed"].samples_ms:
            out["speedup_paired"] = list(paired_ratio(stats["dense"], stats["compressed"]))
        return out

    if len(measured) == 1:
        return record(next(iter(measured.values())))
    limits = {t.name: ms for t, ms in budgets}
    return {name: {**record(stats), "budget_ms": limits[name],
                   "ratio_of_budget": stats["compressed"].median_ms / limits[name]} for name, stats in measured.items()}
