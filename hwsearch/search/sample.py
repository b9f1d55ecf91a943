"""``hwsearch sample``: an Optuna study of sampled schedules, with the gradient result and the hand
baselines in the same study, judged by the same quality measure and cost model."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from hwsearch.cost.base import Budget, CostModel
from hwsearch.data import ImageSet
from hwsearch.errors import HwsearchError
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.quality import collect, fidelity, quality_key
from hwsearch.schedule import Counts, as_lists, load_schedule
from hwsearch.search import sampled
from hwsearch.search import study as studies
from hwsearch.search.baselines import BUILDERS, solve
from hwsearch.search.gradient import SearchConfig, gradient_search
from hwsearch.search.sampled import BudgetSpace, Evaluator, Space


@dataclass(frozen=True)
class SampleSettings:
    """What ``hwsearch sample`` was asked for (the study's question and how to run it)."""

    trials: int
    sampler: str
    objective: str  # "quality,cost" (Pareto) or "quality" (budget penalty)
    space: str  # "fractions" or "budget"
    seed: int | None
    storage: str  # RDB URL or journal file path
    study: str
    tolerance: float
    gradient: str  # a schedule YAML, "auto" or "none"
    references: bool
    compress_from: int
    progress: bool


def make_quality(model: CompressedViT, images: ImageSet):  # type: ignore[no-untyped-def]
    """quality(counts) on a fixed image set, the dense outputs computed once."""
    classifier = model.vit.num_classes > 0
    key = quality_key(classifier, images.labels)
    ref = collect(model, images)

    def quality(counts: Counts) -> float:
        out = collect(apply_schedule(model.vit, counts, model.merging), images)
        report = fidelity(ref, out, classifier, images.labels)
        return float(report[key])

    return quality, key


def enqueue_references(study: optuna.Study, space: Space, cost: CostModel, budget: float,
                       gradient: tuple[Counts, dict[str, Any]] | None) -> list[str]:
    """Queue the gradient schedule and the hand baselines solved for the budget (once per study)."""
    have = sampled.origins(study)
    queued = []
    if gradient is not None and "gradient" not in have:
        sampled.enqueue_schedule(study, space, gradient[0], "gradient", **gradient[1])
        queued.append("gradient")
    for kind in BUILDERS:
        if f"baseline:{kind}" not in have:
            counts = solve(kind, cost, budget, space.depth, space.num_prefix, space.compress_from)
            sampled.enqueue_schedule(study, space, counts, f"baseline:{kind}")
            queued.append(f"baseline:{kind}")
    return queued


def gradient_reference(settings: SampleSettings, model: CompressedViT, budget: Budget,
                       search_set: ImageSet) -> tuple[Counts, dict[str, Any]] | None:
    """The gradient result for this budget: a schedule file, or a search run now (``auto``)."""
    if settings.gradient == "none":
        return None
    if settings.gradient != "auto":
        schedule = load_schedule(settings.gradient)
        schedule.check_model(model)
        if schedule.merging != model.merging:
            raise HwsearchError(f"{settings.gradient} merges by {schedule.merging}, the study by {model.merging} "
                                f"(--merging {schedule.merging})")
        return schedule.counts(), {"schedule": settings.gradient,
                                   "search_seconds": schedule.provenance.get("search_seconds")}
    # the search's own end: its warm start (ToMe-style) is a trial of its own in the study
    config = SearchConfig(epochs=1, batch_size=16, seed=settings.seed or 0, compress_from=settings.compress_from,
                          merging=model.merging, keep_better_start=False)
    print(f"gradient search for the study (budget {budget.target:.3f} {budget.cost.unit}) ...", flush=True)
    result = gradient_search(model, [budget], search_set, config, progress=settings.progress)
    print(f"gradient search took {result.seconds:.0f} s: {as_lists(result.counts)}", flush=True)
    return result.counts, {"search_seconds": round(result.seconds, 2), "search_steps": result.steps,
                           "search_images": len(search_set)}


def run_sample(settings: SampleSettings, identity: dict[str, str], model: CompressedViT, budget: Budget,
               search_set: ImageSet, eval_set: ImageSet, source: dict[str, Any] | None = None) -> optuna.Study:
    """Create/continue the study, queue the references, run trials up to the global cap.

    ``identity`` names the model and target (part of the study's question); ``source`` (checkpoint,
    img_size) is kept beside it so that ``compare`` rebuilds the same model for the trials' pages.
    """
    if settings.trials < 1:
        raise HwsearchError("--trials must be positive")
    objectives = 1 if settings.objective == "quality" else 2
    sampler = sampled.make_sampler(settings.sampler, settings.seed, objectives)
    name = settings.study
    study = studies.open_study(settings.storage, name, ["maximize", "minimize"] if objectives == 2 else ["maximize"],
                               sampler)
    quality, key = make_quality(model, eval_set)
    studies.check_study(study, {**identity, "cost": budget.name, "unit": budget.cost.unit,
                                "budget": round(budget.target, 6), "quality": key, "objectives": objectives,
                                "eval_images": len(eval_set), "eval_source": eval_set.source,
                                "tolerance": settings.tolerance, "space": settings.space,
                                **({"merging": model.merging} if model.merging != "rank" else {})})
    if source:
        study.set_user_attr(studies.MODEL_SOURCE, source)
    if "://" not in settings.storage:
        failed = studies.fail_dead_local_trials(study)
        if failed:
            print(f"trials {failed} were left running by a killed worker: marked failed and queued again")
    space = Space(model.num_tokens, model.num_prefix, model.depth, settings.compress_from) \
        if settings.space == "fractions" else BudgetSpace(model.num_tokens, model.num_prefix, model.depth,
                                                          settings.compress_from, budget.cost, budget.target,
                                                          model.merging)
    if settings.references:
        gradient = gradient_reference(settings, model, budget, search_set) \
            if "gradient" not in sampled.origins(study) else None
        queued = enqueue_references(study, space, budget.cost, budget.target, gradient)
        if queued:
            print(f"queued into the study: {', '.join(queued)}")
    evaluator = Evaluator(quality, budget.cost, budget.target, settings.tolerance)
    done = studies.complete_trials(study)
    print(f"study {name!r}: {done} of {settings.trials} trials complete; sampler {settings.sampler}; quality = "
          f"{key} on {len(eval_set)} images ({eval_set.source}); cost = predicted {budget.name} "
          f"({budget.cost.unit}); constraint cost <= {budget.target * (1 + settings.tolerance):.3f} "
          f"(budget + {100 * settings.tolerance:g}%)", flush=True)
    started = time.perf_counter()
    if done < settings.trials:
        study.optimize(sampled.objective(space, evaluator, settings.trials, objectives, f"sampler:{settings.sampler}"),
                       n_trials=settings.trials - done, callbacks=[optuna.study.MaxTrialsCallback(settings.trials)],
                       show_progress_bar=settings.progress)
    print(f"{studies.complete_trials(study)} trials complete ({time.perf_counter() - started:.0f} s in this run)")
    return study


def newest_latency_schedule(schedules: Path) -> tuple[float, Path] | None:
    """The newest one-budget latency schedule's budget and path (``sample``'s default budget)."""
    for path in sorted(schedules.glob("latency*.yaml"), key=lambda p: p.stat().st_mtime, reverse=True):
        schedule = load_schedule(path)
        if schedule.budget.get("kind") == "latency_ms" and not schedule.budget.get("also"):
            return float(schedule.budget["value"]), path
    return None
