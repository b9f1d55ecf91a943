"""``hwsearch fit``: costmodel.json from results/<target>/<model>/profile.csv (+ measured accuracy)."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwsearch.cli.common import TARGET_HELP, target_for
from hwsearch.cost.accuracy import evaluate_costmodel, keep_accuracy, remeasured_report
from hwsearch.cost.fit import describe_fit, describe_reach, save_costmodel
from hwsearch.cost.measured import MeasuredCost
from hwsearch.io import read_json_object
from hwsearch.model.vit import CompressedViT
from hwsearch.model.zoo import DEFAULT_MODEL, load_model
from hwsearch.profiling.table import read_profile
from hwsearch.report.plots import scatter_png
from hwsearch.targets import Target
from hwsearch.workspace import Workspace, save_fit


def add_arguments(fitp: argparse.ArgumentParser) -> None:
    fitp.add_argument("--target", help=TARGET_HELP)
    fitp.add_argument("--model", help="model name (default: the embedded DINOv2 ViT-S/14)")
    fitp.add_argument("--batch", type=int, help="batch size (default: the target's, when profiled; else the smallest)")
    fitp.add_argument("--measure", type=int, default=0, metavar="N",
                      help="measure N whole compressed models and dense here (>= 30 recommended): the whole-model "
                           "correction is refitted on them, with the accuracy report")
    fitp.add_argument("--img-size", type=int, help="input size of --model (as profiled)")
    fitp.add_argument("--out", default="results")


def run(args: argparse.Namespace) -> int:
    target = target_for(args)
    ws = Workspace(Path(args.out), target, args.model or DEFAULT_MODEL)
    with ws.lock():
        return fit(args, target, ws)


def fit(args: argparse.Namespace, target: Target, ws: Workspace) -> int:
    """Fit, describe, and with ``--measure`` the accuracy report (under the results folder's lock)."""
    previous = read_json_object(ws.costmodel_json)  # its measured whole models are kept
    data = save_fit(ws, args.batch or ws.fit_batch())
    print("\n".join(describe_fit(data)))
    model = CompressedViT(load_model(args.model, None, args.img_size)[0])  # weights do not change latency
    meta = read_json_object(ws.meta_json)
    print("\n".join(describe_reach(data, model.depth, model.num_prefix, read_profile(ws.profile_csv), meta)))
    if args.measure:
        similarity = data["quantities"]["latency"]["compress"].get("similarity_coef") is not None
        merging = "similarity" if similarity else "rank"  # the search's default operator, where profiled
        report = evaluate_costmodel(MeasuredCost(data, merging=merging), target, model, args.measure)
        print(keep_accuracy(data, report))
        save_costmodel(data, ws.costmodel_json)
        print(f"wrote {scatter_png(report, ws.report / 'costmodel_scatter.png', f'{ws.model} on {target.name}')}")
    elif (report := remeasured_report(data, previous)) is not None:
        print(f"the {report['models']} whole models measured by the last fit --measure, with this fit:")
        print(keep_accuracy(data, report))
        save_costmodel(data, ws.costmodel_json)
    print(f"wrote {ws.costmodel_json}")
    return 0
