"""Independence from the start: one budget, the gradient search started from every warm start.

At ``--fraction`` x dense GMACs (FLOPs cost, similarity merging, the default search), searches
started from flat logits and from the ToMe-style, uniform and EViT-style schedules solved for the
budget. Reports each start's and result's held-out fidelity, the predicted GMACs vs the budget,
the largest per-block move from its start, and the spread of the results' fidelities (the issue's
bar: within 0.005 of each other, within 1% of the budget, one block moving >= 20 tokens from the
ToMe-style start).

    python benchmarks/independence.py [--fraction 0.6] [--inits flat,tome,uniform,evit]

Writes results/benchmarks/independence.json after every start.
"""
from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import bench  # noqa: E402 - benchmarks/bench.py: the shared set-up (sets HF_HUB_OFFLINE)

from hwsearch.cost import Budget, FlopsCost  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.model.vit import CompressedViT  # noqa: E402
from hwsearch.schedule import as_lists  # noqa: E402
from hwsearch.search.baselines import solve  # noqa: E402
from hwsearch.search.gradient import SearchConfig, gradient_search  # noqa: E402

KNOBS = ("epochs", "batch_size", "lr", "lam", "accumulate", "rates", "merging", "seed", "init_sharpness", "optimizer")


def main() -> int:
    parser = bench.parser(__doc__, num_images=1000)
    parser.add_argument("--fraction", type=float, default=0.6, help="GMACs budget as a fraction of dense")
    parser.add_argument("--inits", default="flat,tome,uniform,evit")
    for f in fields(SearchConfig):  # the search knobs, at the search's defaults
        if f.name in KNOBS:
            kind = {"lr": float, "accumulate": int}.get(f.name, str if f.default is None else type(f.default))
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=f.default)
    args = parser.parse_args()
    b = bench.setup(args)
    vit, depth = b.vit, b.model.depth
    cost = FlopsCost.from_model(vit, args.merging)
    goal = args.fraction * cost.dense_cost(depth)
    runs: dict[str, dict] = {}
    for init in args.inits.split(","):
        config = SearchConfig(init=init, **{k: getattr(args, k) for k in KNOBS})
        result = gradient_search(CompressedViT(vit, merging=args.merging), [Budget(cost, goal, name="gmacs")],
                                 b.search_set, config, progress=False)
        fidelity = b.held_out_cosines(result.counts, args.merging)
        start = None
        if init != "flat":
            start_counts = solve(init, cost, goal, depth, b.model.num_prefix, config.compress_from)
            start = float(b.held_out_cosines(start_counts, args.merging).mean())
        runs[init] = {"fidelity": float(fidelity.mean()), "start_fidelity": start,
                      "budget_error": result.predicted / goal - 1, "seconds": result.seconds, "steps": result.steps,
                      "largest_move": result.movement.get("largest_move"), "movement": result.movement,
                      "start": result.start, "selection": result.selection,
                      "counts": as_lists(result.counts), "per_image": fidelity.tolist()}
        print(f"{init:8s} fidelity {runs[init]['fidelity']:.4f} (start {start if start is None else f'{start:.4f}'})"
              f"  descended from {result.start['start']}  budget {100 * runs[init]['budget_error']:+.2f}%"
              f"  largest move {runs[init]['largest_move']}"
              f"  {result.seconds:.0f} s  {as_lists(result.counts)}", flush=True)
        values = [r["fidelity"] for r in runs.values()]
        write_json(Path(args.out) / "benchmarks" / "independence.json",
                   {"fraction": args.fraction, "budget_gmacs": goal, "config": vars(args), "runs": runs,
                    "spread": max(values) - min(values), "held_out": b.held_out.source, "provenance": provenance()})
    values = [r["fidelity"] for r in runs.values()]
    print(f"spread of fidelities: {max(values) - min(values):.4f}; largest budget error "
          f"{100 * max(abs(r['budget_error']) for r in runs.values()):.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
