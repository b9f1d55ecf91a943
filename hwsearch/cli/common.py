"""Arguments shared by several commands, and the target each command runs for."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from hwsearch.errors import HwsearchError
from hwsearch.schedule import load_schedule
from hwsearch.search.budgets import FLAGS, BudgetSpec, parse_budget
from hwsearch.targets import Target, load_target, resolve_target

TARGET_HELP = "target name (default: $HWSEARCH_TARGET, newest profile, cpu_onnxruntime)"
MODEL_HELP = "timm ViT name (default: the embedded DINOv2 ViT-S/14)"


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help=MODEL_HELP)
    p.add_argument("--checkpoint", help="local weights: .safetensors or torch state_dict, timm keys")
    p.add_argument("--img-size", type=int, help="input size (default: the model's)")
    p.add_argument("--data", help="ImageFolder dir (root/class/img) or flat image dir; default: offline photos")
    p.add_argument("--num-images", type=int, default=1000, help="images used in all (search + held-out)")
    p.add_argument("--target", help=TARGET_HELP)
    p.add_argument("--out", default="results", help="results root")


def add_merging_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--merging", default="similarity", choices=["rank", "similarity"],
                   help="merge operator: similarity (ToMe's bipartite matching of the most similar pairs) or rank "
                        "(least important tokens into their most similar kept token)")


def add_budget_args(budget: argparse._ArgumentGroup) -> None:
    budget.add_argument("--flops-ratio", type=float, help="budget as a fraction of the dense model's GMACs")
    budget.add_argument("--gflops", type=float, help="budget in GMACs (multiply-adds, as DiffRate/fvcore)")
    budget.add_argument("--latency-ms", type=float, help="latency budget on the target (needs its profile)")
    budget.add_argument("--speedup", type=float,
                        help="latency budget as a speedup S over dense on the target: dense / S (needs its "
                             "profile; on this host the check measures dense in its own run, so a host that "
                             "changed speed since you timed dense does not move the budget)")
    budget.add_argument("--energy-mj", type=float,
                        help="energy per inference on the target (needs a profile with power-meter readings)")


def add_schedule_args(p: argparse.ArgumentParser) -> None:
    """export / deploy: a schedule, its target, weights, static batch and where engines go."""
    p.add_argument("schedule", help="schedule YAML (from hwsearch optimize)")
    p.add_argument("--target", help="default: the schedule's target")
    p.add_argument("--model", help="must be the schedule's model (a check)")
    p.add_argument("--checkpoint", help="weights (default: the one the schedule records)")
    p.add_argument("--batch", type=int, help="static batch (default: the target's)")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--parity-images", type=int, default=16, help="held-out images for the parity check")
    p.add_argument("--out-dir", help="output folder (default: results/<target>/<model>/engines)")
    p.add_argument("--out", default="results", help="results root")


def run_on_schedule(args: argparse.Namespace, flow: Callable[..., object], **extra: object) -> int:
    """export / deploy: ``flow`` on the schedule for its target (``--target`` or the schedule's)."""
    target = target_for(args, load_schedule(args.schedule).provenance.get("target") or None)
    flow(args.schedule, target, args.model, args.checkpoint, Path(args.out), args.out_dir, args.batch, args.opset,
         args.parity_images, **extra)
    return 0


def budgets_given(args: argparse.Namespace) -> dict[str, float]:
    """``{kind: value}`` for the budget flags given."""
    return {k: getattr(args, k) for k in FLAGS if getattr(args, k) is not None}


def budget_specs(args: argparse.Namespace) -> list[BudgetSpec]:
    """The budgets given: the one-target flags on ``--target``, then each ``--budget TARGET:KIND=VALUE``.
    The first budget's target is the primary one (printed, and where the schedule is written)."""
    given, several = budgets_given(args), list(getattr(args, "budget", None) or [])
    parsed = [parse_budget(text) for text in several]  # a malformed one is refused before anything loads
    if several and args.target and not given:
        raise HwsearchError("--target goes with --latency-ms/--energy-mj/--flops-ratio/--gflops; each --budget "
                            "names its own target")
    specs: list[BudgetSpec] = []
    if given or not several:
        target = target_for(args)
        specs = [BudgetSpec(kind, value, target) for kind, value in given.items()]
    specs += [BudgetSpec(kind, value, load_target(name)) for name, kind, value in parsed]
    if several and not given:
        print(f"target: {specs[0].target.name} (first --budget)", flush=True)
    return specs


def target_for(args: argparse.Namespace, fallback: str | None = None) -> Target:
    """``--target``, else the schedule's (``fallback``), else the default rule; printed first."""
    if args.target:
        name, why = args.target, "--target"
    elif fallback:
        name, why = fallback, "schedule"
    else:
        name, why = resolve_target(None, Path(getattr(args, "out", "results")))
    target = load_target(name)
    print(f"target: {target.name} ({why})", flush=True)
    return target
