"""``hwsearch`` command line: optimize (gradient search) and evaluate (measured check).

User errors are one line on stderr and exit code 2 (never a traceback).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hwsearch.errors import HwsearchError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="timm ViT name (default: the embedded DINOv2 ViT-S/14)")
    p.add_argument("--checkpoint", help="local weights: .safetensors or torch state_dict, timm keys")
    p.add_argument("--img-size", type=int, help="input size (default: the model's)")
    p.add_argument("--data", help="ImageFolder dir (root/class/img) or flat image dir; default: offline photos")
    p.add_argument("--num-images", type=int, default=1000, help="images used in all (search + held-out)")
    p.add_argument("--target", help="target name (default: $HWSEARCH_TARGET, newest profile, cpu_onnxruntime)")
    p.add_argument("--out", default="results", help="results root")


def _add_budget_args(budget: argparse._ArgumentGroup) -> None:
    budget.add_argument("--flops-ratio", type=float, help="budget as a fraction of the dense model's GMACs")
    budget.add_argument("--gflops", type=float, help="budget in GMACs (multiply-adds, as DiffRate/fvcore)")
    budget.add_argument("--latency-ms", type=float, help="latency budget on the target (needs its profile)")
    budget.add_argument("--energy-mj", type=float,
                        help="energy per inference on the target (needs a profile with power-meter readings)")
    budget.add_argument("--energy-weight", type=float, default=1.0,
                        help="weight of the energy term relative to latency when both are given")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwsearch", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    opt = sub.add_parser("optimize", help="search a per-block prune/merge schedule under a budget")
    _add_budget_args(opt.add_argument_group("budget (one; or --latency-ms and --energy-mj together: weighted loss)"))
    _add_model_args(opt)
    opt.add_argument("--epochs", type=int, default=1)
    opt.add_argument("--batch-size", type=int, default=16)
    opt.add_argument("--lr", type=float, default=0.1)
    opt.add_argument("--lam", type=float, default=10.0, help="weight of the (cost/target - 1)^2 term")
    opt.add_argument("--granularity", type=int, default=4, help="candidate kept counts step")
    opt.add_argument("--compress-from", type=int, default=1, help="first block that may compress")
    opt.add_argument("--ops", default="prune,merge", help="prune, merge or prune,merge")
    opt.add_argument("--init", default="tome", choices=["tome", "uniform", "evit", "flat"],
                     help="warm start: a hand schedule solved for the budget, or flat (DiffRate's zero logits)")
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--name", help="schedule name (default from the budget)")
    opt.add_argument("--resume", action="store_true", help="continue an interrupted search of the same name")
    opt.add_argument("--refine", type=int, default=6,
                     help="latency budgets: measured local-search steps when the measurement misses the band")
    opt.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("evaluate", help="dense vs compressed: GMACs, measured latency, fidelity")
    ev.add_argument("schedule", help="schedule YAML")
    ev.add_argument("--checkpoint", help="weights (default: the one the schedule records)")
    ev.add_argument("--data", help="as for optimize; its held-out split is used")
    ev.add_argument("--num-images", type=int, default=1000)
    ev.add_argument("--batch", type=int, help="latency batch size (default: the target's)")
    ev.add_argument("--threads", type=int, help="CPU threads (default: the target's, else 2)")
    ev.add_argument("--target", help="target the latency is measured for (default: the schedule's)")
    prof = sub.add_parser("profile", help="measure block/part latency (and energy) across token counts")
    prof.add_argument("--target", help="target name (default: $HWSEARCH_TARGET, newest profile, cpu_onnxruntime)")
    prof.add_argument("--model", help="timm ViT name (default: the embedded DINOv2 ViT-S/14)")
    prof.add_argument("--checkpoint", help="local weights (latency does not depend on them)")
    prof.add_argument("--img-size", type=int)
    prof.add_argument("--batch", type=int, help="batch size (default: the target's batch_sizes)")
    prof.add_argument("--whole-models", type=int, default=8, help="whole compressed models for the additivity check")
    prof.add_argument("--bundle", help="write a device bundle OUT.tar.gz instead of measuring here")
    prof.add_argument("--import", dest="import_csv", help="ingest measurements.csv from a device run")
    prof.add_argument("--apply-setup", action="store_true", help="run the target's setup steps (nvpmodel, ...)")
    prof.add_argument("--out", default="results")
    prof.add_argument("--no-progress", action="store_true")

    fitp = sub.add_parser("fit", help="fit costmodel.json (per-part latency tables) from profile.csv")
    fitp.add_argument("--target", help="target name (default: $HWSEARCH_TARGET, newest profile, cpu_onnxruntime)")
    fitp.add_argument("--model", help="model name (default: the embedded DINOv2 ViT-S/14)")
    fitp.add_argument("--batch", type=int, help="batch size (default: the smallest profiled)")
    fitp.add_argument("--measure", type=int, default=0, metavar="N",
                      help="measure N whole compressed models here (>= 30 recommended) for the accuracy report")
    fitp.add_argument("--img-size", type=int, help="input size of --model (as profiled)")
    fitp.add_argument("--out", default="results")

    smp = sub.add_parser("sample", help="Optuna study of sampled schedules (gradient result and baselines in it)")
    _add_model_args(smp)
    _add_budget_args(smp.add_argument_group("budget: the constraint (default: the newest latency schedule's)"))
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
    smp.add_argument("--compress-from", type=int, default=1)
    smp.add_argument("--no-progress", action="store_true")

    cmp = sub.add_parser("compare", help="table, Pareto/history PNGs and HTML from a study")
    cmp.add_argument("--target")
    cmp.add_argument("--model", help="model name (default: the embedded DINOv2 ViT-S/14)")
    cmp.add_argument("--study", help="study name (default: the newest journal)")
    cmp.add_argument("--storage", help="Optuna storage URL (default: the JournalStorage file)")
    cmp.add_argument("--out", default="results")

    for cmd, text in (("export", "static-shape ONNX of a schedule, checked against PyTorch"),
                      ("deploy", "export + engine/session for the target, measured (or a device bundle)")):
        dep = sub.add_parser(cmd, help=text)
        dep.add_argument("schedule", help="schedule YAML (from hwsearch optimize)")
        dep.add_argument("--target", help="default: the schedule's target")
        dep.add_argument("--model", help="must be the schedule's model (a check)")
        dep.add_argument("--checkpoint", help="weights (default: the one the schedule records)")
        dep.add_argument("--batch", type=int, help="static batch (default: the target's)")
        dep.add_argument("--opset", type=int, default=17)
        dep.add_argument("--parity-images", type=int, default=16, help="held-out images for the parity check")
        dep.add_argument("--out-dir", help="output folder (default: results/<target>/<model>/engines)")
        dep.add_argument("--out", default="results", help="results root")

    rep = sub.add_parser("report", help="plots from a profile")
    rep.add_argument("--profile", required=True, help="results/<target>/<model>/profile.csv")
    rep.add_argument("--out-png", help="output PNG (default: beside the profile, report/profile.png)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from hwsearch import commands

        return int(getattr(commands, args.command)(args) or 0)
    except HwsearchError as exc:
        print(f"hwsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
