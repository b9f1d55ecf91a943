"""``hwsearch sample``: an Optuna study of sampled schedules with the gradient result and baselines in it."""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from hwsearch.cli.common import add_budget_args, add_merging_arg, add_model_args, budgets_given, target_for
from hwsearch.cost.measured import MeasuredCost
from hwsearch.data import ImageSet, image_sets
from hwsearch.errors import HwsearchError
from hwsearch.io import safe_name
from hwsearch.model.vit import CompressedViT
from hwsearch.model.zoo import load_model
from hwsearch.search.budgets import BudgetSpec, make_budgets
from hwsearch.search.gradient import SearchConfig
from hwsearch.search.sample import SampleSettings, newest_latency_schedule, run_sample
from hwsearch.search.study import print_importances
from hwsearch.workspace import Workspace


def add_arguments(smp: argparse.ArgumentParser) -> None:
    add_model_args(smp)
    add_budget_args(smp.add_argument_group("budget: the constraint (default: the newest latency schedule's)"))
    smp.add_argument("--trials", type=int, default=50, help="completed trials in the study, all workers together")
    smp.add_argument("--sampler", default="tpe", help="tpe, nsga2, gp, random; cmaes with --objective quality")
    smp.add_argument("--objective", default="quality,cost", choices=["quality,cost", "quality"],
                     help="two objectives (Pareto), or quality with a budget penalty (single objective)")
    smp.add_argument("--space", default="fractions", choices=["fractions", "budget"],
                     help="fractions: per-block drop fractions (any cost; Pareto studies); budget: the shape is "
                          "sampled and scaled onto the budget (every trial at the budget; use --objective quality)")
    smp.add_argument("--seed", type=int)
    smp.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user:pw@host/db (default: a "
                                       "JournalStorage file under results/<target>/<model>/studies/)")
    smp.add_argument("--study", help="study name (default from the budget)")
    smp.add_argument("--tolerance", type=float, default=0.02,
                     help="a trial meets the budget up to budget x (1 + tolerance); searches aim at the budget")
    smp.add_argument("--eval-images", type=int, default=64, help="search-photo images each trial is judged on")
    smp.add_argument("--gradient", default="auto",
                     help="gradient result to put in the study: a schedule YAML, auto (find or search), none")
    smp.add_argument("--no-references", action="store_true", help="do not queue the gradient/baseline schedules")
    smp.add_argument("--compress-from", type=int, default=SearchConfig.compress_from,
                     help="first block that may compress (default 0)")
    add_merging_arg(smp)
    smp.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.study:
        safe_name(args.study, "--study")
    target = target_for(args)
    vit, name, checkpoint = load_model(args.model, args.checkpoint, args.img_size)
    model = CompressedViT(vit, merging=args.merging)
    if not 0 <= args.compress_from < model.depth:
        raise HwsearchError(f"--compress-from must be in [0, {model.depth - 1}]")
    if args.eval_images < 1:
        raise HwsearchError("--eval-images must be positive")
    ws = Workspace(Path(args.out), target, name)
    costmodel = lambda: ws.ensure_costmodel(model, args.model is not None, not args.no_progress)  # noqa: E731
    given, gradient = budgets_given(args), args.gradient
    if not given:  # the newest latency schedule's budget (and that schedule), else 0.7 x predicted dense
        found = newest_latency_schedule(ws.schedules)
        if found is not None:
            given, gradient = {"latency_ms": found[0]}, str(found[1]) if gradient == "auto" else gradient
            print(f"budget: --latency-ms {found[0]:g} and gradient result from {found[1]}")
        else:
            given = {"latency_ms": round(0.7 * MeasuredCost(costmodel()).dense_cost(model.depth), 3)}
            print(f"budget: --latency-ms {given['latency_ms']:g} (0.7 x predicted dense; no latency schedule found)")
    budgets = make_budgets([BudgetSpec(kind, value, target) for kind, value in given.items()], model,
                           lambda _: costmodel(), args.compress_from, model.num_prefix + 1)
    if len(budgets) > 1:
        raise HwsearchError("sample takes one budget (its cost is the second objective)")
    search_set, _ = image_sets(vit, args.data, args.num_images)
    # trials are judged on images of the search photos (what the gradient search trains on), spread
    # over the whole set; held-out photos stay for hwsearch evaluate on the schedule picked
    pick = torch.linspace(0, len(search_set) - 1, min(args.eval_images, len(search_set))).long()
    eval_set = ImageSet(search_set.images[pick], search_set.labels[pick] if search_set.labels is not None else None,
                        f"{search_set.source} (selection subset)")
    budget, record = budgets[0]
    study_name = args.study or f"{budget.name}{record['value']:g}"
    settings = SampleSettings(args.trials, args.sampler, args.objective, args.space, args.seed,
                              args.storage or str(ws.studies / f"{study_name}.journal"), study_name, args.tolerance,
                              gradient, not args.no_references, args.compress_from, not args.no_progress)
    study = run_sample(settings, {"model": name, "target": target.name}, model, budget, search_set, eval_set,
                       {"checkpoint": checkpoint, "img_size": int(vit.patch_embed.img_size[0])})
    print_importances(study)
    print(f"next: hwsearch compare --target {target.name} --study {study.study_name}"
          + (f" --storage {args.storage}" if args.storage else ""))
    return 0
