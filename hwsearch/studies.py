"""``hwsearch sample``: an Optuna study of sampled schedules, with the gradient result and the hand
baselines in the same study, judged by the same quality measure and cost model.

Storage: a JournalStorage file under results/<target>/<model>/studies/ (several local processes
may share it; rerunning continues the study), or ``--storage URL`` (PostgreSQL for workers on
many machines, with heartbeats and retried failed trials).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import optuna

from hwsearch.baselines import solve
from hwsearch.cost import Budget, CostModel
from hwsearch.data import ImageSet
from hwsearch.errors import HwsearchError
from hwsearch.models import CompressedViT, apply_schedule
from hwsearch.quality import collect, fidelity
from hwsearch.search import sampled
from hwsearch.search.sampled import BudgetSpace, Evaluator, Space

BASELINES = ("uniform", "evit", "tome")


def quality_key(classifier: bool, labels: Any) -> str:
    """Backbones: feature cosine to the dense model; classifiers: top-1 (labels) or top-1 agreement."""
    if not classifier:
        return "feature_cosine"
    return "top1" if labels is not None else "top1_agreement"


def make_quality(model: CompressedViT, images: ImageSet):  # type: ignore[no-untyped-def]
    """quality(counts) on a fixed image set, the dense outputs computed once."""
    classifier = model.vit.num_classes > 0
    key = quality_key(classifier, images.labels)
    ref = collect(model, images)

    def quality(counts: sampled.Counts) -> float:
        report = fidelity(ref, collect(apply_schedule(model.vit, counts), images), classifier, images.labels)
        return float(report[key])

    return quality, key


def study_dir(out: str, target: str, model: str) -> Path:
    return Path(out) / target / model / "studies"


def open_study(args: argparse.Namespace, folder: Path, name: str, directions: list[str] | None,
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Create or continue a study (``directions=None``: it must exist)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = sampled.rdb_storage(args.storage) if args.storage else \
        sampled.journal_storage(str(folder / f"{name}.journal"))
    if directions is None:
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise HwsearchError(f"no study {name!r} in {args.storage or folder / (name + '.journal')}: "
                                f"run hwsearch sample first") from None
    return optuna.create_study(study_name=name, storage=storage, directions=directions, sampler=sampler,
                               load_if_exists=True)


QUESTION = "question"  # one user attr (one journal record), so a concurrent worker never sees half of it


def check_study(study: optuna.Study, expected: dict[str, Any]) -> None:
    """A continued study must be the same question (model, target, cost, budget, quality)."""
    current = study.user_attrs.get(QUESTION)
    if current is None:
        study.set_user_attr(QUESTION, expected)
        return
    differ = [k for k, v in expected.items() if current.get(k) != v]
    if differ:
        raise HwsearchError(f"study {study.study_name!r} was made for other settings ("
                            + ", ".join(f"{k}: {current.get(k)!r} != {expected[k]!r}" for k in differ)
                            + "): use another --study name")


def question(study: optuna.Study) -> dict[str, Any]:
    """The settings a study was made for (model, target, cost, unit, budget, quality, ...)."""
    q = study.user_attrs.get(QUESTION)
    if not isinstance(q, dict):
        raise HwsearchError(f"study {study.study_name!r} was not made by hwsearch sample")
    return q


def enqueue_references(study: optuna.Study, space: Space, cost: CostModel, budget: float,
                       gradient: tuple[sampled.Counts, dict[str, Any]] | None) -> list[str]:
    """Queue the gradient schedule and the hand baselines solved for the budget (once per study)."""
    have = sampled.origins(study)
    queued = []
    if gradient is not None and "gradient" not in have:
        sampled.enqueue_schedule(study, space, gradient[0], "gradient", **gradient[1])
        queued.append("gradient")
    for kind in BASELINES:
        if f"baseline:{kind}" not in have:
            counts = solve(kind, cost, budget, space.depth, space.num_prefix, space.compress_from)
            sampled.enqueue_schedule(study, space, counts, f"baseline:{kind}")
            queued.append(f"baseline:{kind}")
    return queued


def gradient_reference(args: argparse.Namespace, model: CompressedViT, budget: Budget,
                       search_set: ImageSet) -> tuple[sampled.Counts, dict[str, Any]] | None:
    """The gradient result for this budget: ``--gradient FILE``, or a search run now (``auto``)."""
    from hwsearch.schedule import load as load_schedule
    from hwsearch.search.gradient import SearchConfig, gradient_search

    if args.gradient == "none":
        return None
    if args.gradient != "auto":
        schedule = load_schedule(args.gradient)
        schedule.check_model(model)
        return schedule.counts(), {"schedule": str(args.gradient),
                                   "search_seconds": schedule.provenance.get("search_seconds")}
    config = SearchConfig(epochs=1, batch_size=16, seed=args.seed or 0, compress_from=args.compress_from)
    print(f"gradient search for the study (budget {budget.target:.3f} {budget.cost.unit}) ...", flush=True)
    result = gradient_search(model, [budget], search_set, config, progress=not args.no_progress)
    print(f"gradient search took {result.seconds:.0f} s: {[list(c) for c in result.counts]}", flush=True)
    return result.counts, {"search_seconds": round(result.seconds, 2), "search_steps": result.steps,
                           "search_images": len(search_set)}


def run_sample(args: argparse.Namespace, target, model: CompressedViT, name: str, budget: Budget,  # type: ignore[no-untyped-def]
               search_set: ImageSet, eval_set: ImageSet) -> optuna.Study:
    """Create/continue the study, queue the references, run trials up to the global cap."""
    if args.trials < 1:
        raise HwsearchError("--trials must be positive")
    objectives = 1 if args.objective == "quality" else 2
    sampler = sampled.make_sampler(args.sampler, args.seed, objectives)
    folder = study_dir(args.out, target.name, name)
    study_name = args.study or f"{budget.name}{_plain(getattr(args, budget.name, None) or budget.target)}"
    study = open_study(args, folder, study_name, ["maximize", "minimize"] if objectives == 2 else ["maximize"],
                       sampler)
    quality, key = make_quality(model, eval_set)
    check_study(study, {"model": name, "target": target.name, "cost": budget.name, "unit": budget.cost.unit,
                        "budget": round(budget.target, 6), "quality": key, "objectives": objectives,
                        "eval_images": len(eval_set), "eval_source": eval_set.source, "tolerance": args.tolerance,
                        "space": args.space})
    if not args.storage:
        failed = sampled.fail_dead_local_trials(study)
        if failed:
            print(f"trials {failed} were left running by a killed worker: marked failed and queued again")
    space = Space(model.num_tokens, model.num_prefix, model.depth, args.compress_from) if args.space == "fractions" \
        else BudgetSpace(model.num_tokens, model.num_prefix, model.depth, args.compress_from, budget.cost,
                         budget.target)
    if not args.no_references:
        gradient = gradient_reference(args, model, budget, search_set) \
            if "gradient" not in sampled.origins(study) else None
        queued = enqueue_references(study, space, budget.cost, budget.target, gradient)
        if queued:
            print(f"queued into the study: {', '.join(queued)}")
    evaluator = Evaluator(quality, budget.cost, budget.target, args.tolerance)
    done = _complete(study)
    print(f"study {study_name!r}: {done} of {args.trials} trials complete; sampler {args.sampler}; quality = {key} "
          f"on {len(eval_set)} images ({eval_set.source}); cost = predicted {budget.name} ({budget.cost.unit}); "
          f"constraint cost <= {budget.target * (1 + args.tolerance):.3f} (budget + {100 * args.tolerance:g}%)",
          flush=True)
    started = time.perf_counter()
    if done < args.trials:
        study.optimize(sampled.objective(space, evaluator, args.trials, objectives, f"sampler:{args.sampler}"),
                       n_trials=args.trials - done, callbacks=[optuna.study.MaxTrialsCallback(args.trials)],
                       show_progress_bar=not args.no_progress)
    print(f"{_complete(study)} trials complete ({time.perf_counter() - started:.0f} s in this run)")
    return study


def _complete(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _plain(value: float) -> str:
    return f"{value:g}"


def print_importances(study: optuna.Study, top: int = 5) -> dict[str, float]:
    """fANOVA importances of the parameters for quality (needs a few complete trials)."""
    # trials whose parameters lie in the sampled space: queued schedules may carry none (budget
    # space) or drops beyond MAX_DROP, which fANOVA's space cannot hold
    view = optuna.create_study(directions=study.directions)
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.params:
            try:
                view.add_trial(trial)
            except ValueError:
                continue
    if len(view.trials) < 5:
        return {}
    importances = optuna.importance.get_param_importances(
        view, target=lambda t: t.values[0], evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    print("parameter importances for quality: "
          + ", ".join(f"{k} {v:.2f}" for k, v in list(importances.items())[:top]))
    return dict(importances)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Complete trials as plain rows, in trial order."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        rows.append({"number": t.number, "origin": t.user_attrs.get("origin", "?"),
                     "quality": float(t.user_attrs["quality"]), "cost": float(t.user_attrs["cost"]),
                     "seconds": float(t.user_attrs.get("seconds", 0.0)),
                     "search_seconds": t.user_attrs.get("search_seconds"),
                     "feasible": all(v <= 0 for v in t.constraints.values()),
                     "counts": json.loads(t.user_attrs["counts"])})
    return rows
