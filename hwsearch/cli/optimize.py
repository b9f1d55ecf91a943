"""``hwsearch optimize``: a per-block prune/merge schedule under a budget."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwsearch.cli.common import add_budget_args, add_merging_arg, add_model_args, budget_specs
from hwsearch.errors import HwsearchError
from hwsearch.io import safe_name
from hwsearch.search.baselines import BUILDERS, STARTS
from hwsearch.search.gradient import RATES, SearchConfig
from hwsearch.search.optimize import OptimizeRequest, run_distributed


def add_arguments(opt: argparse.ArgumentParser) -> None:
    group = opt.add_argument_group("budgets (one; or several measured ones, met together: the worst "
                                   "predicted cost/budget ratio is the constraint)")
    add_budget_args(group)
    group.add_argument("--budget", action="append", metavar="TARGET:KIND=VALUE",
                       help="a budget on another target, repeatable: TARGET:latency-ms=X or TARGET:energy-mj=E "
                            "(each target uses its own fitted cost model; local targets are measured)")
    add_model_args(opt)
    opt.add_argument("--epochs", type=int, default=SearchConfig.epochs)
    opt.add_argument("--batch-size", type=int, default=SearchConfig.batch_size)
    opt.add_argument("--lr", type=float, help="first learning rate, cosine to a tenth (default: 0.1 for ddp "
                                              "logits, 0.05 for fractions)")
    opt.add_argument("--lam", type=float, default=10.0, help="weight of the (cost/target - 1)^2 term")
    opt.add_argument("--granularity", type=int, default=4, help="candidate kept counts step")
    opt.add_argument("--compress-from", type=int, default=SearchConfig.compress_from,
                     help="first block that may compress (default 0: every block, as ToMe)")
    opt.add_argument("--ops", default="prune,merge", help="prune, merge or prune,merge")
    opt.add_argument("--init", default="tome", choices=[*BUILDERS, "flat"],
                     help="warm start: a hand schedule solved for the budget, or flat (DiffRate's zero logits)")
    opt.add_argument("--init-sharpness", type=float, default=SearchConfig.init_sharpness,
                     help="ddp: logit fall per candidate step away from the warm start (default 0.25: wide, the "
                          "search moves far from it; 2: peaked, it stays within ~5 tokens)")
    opt.add_argument("--keep-init", action="store_true",
                     help="descend from --init's schedule as it is (default: from the best on the search images of "
                          f"--init's and the hand start candidates {', '.join(STARTS)}: --init's unless another "
                          "beats it by more than one standard error)")
    opt.add_argument("--no-price-starts", action="store_true",
                     help="one latency budget on this host: solve the hand starts at their predicted latency only "
                          "(default: each measured beside dense and solved on the budget its measured error allows)")
    add_merging_arg(opt)
    opt.add_argument("--rates", default="auto", choices=RATES,
                     help="ddp: DiffRate's proxy with the budget as a penalty; fractions: free per-block kept "
                          "fractions, every update projected back onto the budget; auto (default): ddp, and on a "
                          "measured budget (latency, energy) where it does not beat its warm start, ddp priced by "
                          "GMACs from the same start, its schedule scaled onto the measured budget")
    opt.add_argument("--accumulate", type=int, help="micro-batches of --batch-size per update "
                                                    "(default: 1 for ddp, 4 for fractions)")
    opt.add_argument("--optimizer", choices=["adamw", "normalized"],
                     help="default: adamw for ddp, normalized descent (the largest step lr) for fractions")
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--name", help="schedule name (default from the budget)")
    opt.add_argument("--resume", action="store_true", help="continue an interrupted search of the same name")
    opt.add_argument("--refine", type=int, default=6,
                     help="latency budgets: measured local-search steps when the measurement misses the band")
    opt.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    if args.name:
        safe_name(args.name, "--name")
    specs = budget_specs(args)
    ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
    if not ops or set(ops) - {"prune", "merge"}:
        raise HwsearchError(f"--ops must be prune, merge or prune,merge (got {args.ops!r})")
    counts = (args.granularity, args.epochs, args.batch_size, 1 if args.accumulate is None else args.accumulate)
    if min(counts) < 1 or not args.init_sharpness > 0:
        raise HwsearchError("--granularity, --epochs, --batch-size, --accumulate and --init-sharpness must be positive")
    config = SearchConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lam=args.lam,
                          granularity=args.granularity, compress_from=args.compress_from, ops=ops, seed=args.seed,
                          init=args.init, init_sharpness=args.init_sharpness, merging=args.merging, rates=args.rates,
                          accumulate=args.accumulate, optimizer=args.optimizer, pick_start=not args.keep_init,
                          price_starts=not args.no_price_starts)
    request = OptimizeRequest(specs, args.model, args.checkpoint, args.img_size, args.data, args.num_images, config,
                              args.name, args.resume, args.refine, not args.no_progress)
    return run_distributed(Path(args.out), request)
