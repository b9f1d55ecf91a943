"""Hardware-aware vs FLOPs-aware schedules at the same MEASURED latency, on this host.

Per target and latency budget (a fraction of dense): the gradient search on the target's measured
latency model, measured beside dense and moved into the band as ``optimize --latency-ms`` does
(the hardware-aware schedule); then the same search on FLOPs at that schedule's GMACs (the
FLOPs-aware schedule), moved by the measured local search's one axis (``local.shift``: every
decision's removed tokens scaled together, the shape kept) until its measured latency matches the
hardware-aware one's within 2%. Every matching step measures dense and both schedules in one run
and compares them by their paired ratio (per round, so host drift cancels); the reported match pools
three runs at the chosen shift, refitted while their interval excludes 1 (bench.match_latency).
Fidelity (feature cosine) on held-out photos with a paired bootstrap 95% interval, also per photo,
and both schedules' shapes.

    python benchmarks/hw_vs_flops.py [--targets cpu_onnxruntime,cpu_onnxruntime_b1] [--fractions 0.7]

Profiles and fits each target first when needed. Writes results/benchmarks/hw_vs_flops.json after
every row.
"""
from __future__ import annotations

import sys
from pathlib import Path

import bench  # noqa: E402 - benchmarks/bench.py: the shared set-up (sets HF_HUB_OFFLINE)

from hwsearch.cost import Budget, FlopsCost, MeasuredCost  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.model.vit import CompressedViT, apply_schedule  # noqa: E402
from hwsearch.schedule import as_lists  # noqa: E402
from hwsearch.search.gradient import SearchConfig, gradient_search  # noqa: E402
from hwsearch.search.local import shift  # noqa: E402
from hwsearch.targets import load_target  # noqa: E402
from hwsearch.workspace import Workspace  # noqa: E402


def main() -> int:
    parser = bench.parser(__doc__, num_images=1000)
    parser.add_argument("--targets", default="cpu_onnxruntime,cpu_onnxruntime_b1")
    parser.add_argument("--fractions", default="0.7", help="latency budgets as fractions of dense")
    parser.add_argument("--refine", type=int, default=6, help="measured local-search steps (as optimize --refine)")
    parser.add_argument("--repeats", type=int, default=bench.ROUNDS, help="interleaved rounds of each matching run")
    args = parser.parse_args()
    b = bench.setup(args)
    vit, depth = b.vit, b.model.depth
    config = SearchConfig(merging="similarity")
    model = CompressedViT(vit, merging="similarity")
    flops = FlopsCost.from_model(vit, "similarity")
    rows = []
    for target_name in args.targets.split(","):
        target = load_target(target_name)
        latency = MeasuredCost(Workspace(Path(args.out), target, b.name).ensure_costmodel(model), "latency",
                               "similarity")
        for fraction in (float(f) for f in args.fractions.split(",")):
            search = bench.latency_search(model, latency, fraction * latency.dense_cost(depth), b.search_set, config,
                                           target)
            hw = bench.on_measured_budget(target, model, search, fraction, args.refine, config)
            fl = gradient_search(model, [Budget(flops, flops.cost(hw), name="gmacs")], b.search_set, config,
                                 progress=False).counts
            final, matched, runs = match_flops(target, vit, hw, fl, model, config.compress_from, args.repeats)
            ours, theirs = b.held_out_cosines(hw), b.held_out_cosines(matched)
            rows.append({"target": target.name, "batch": target.batch, "fraction": fraction,
                         "dense_ms": final["dense"], "hw_ms": final["hw"], "flops_ms": final["flops"],
                         "flops_over_hw": [final["ratio"], *final["ratio_95"]], "matching_runs": runs,
                         "matched_rounds": final["rounds"], "run_ratios": final["run_ratios"],
                         "hw_fidelity": float(ours.mean()), "flops_fidelity": float(theirs.mean()),
                         "difference": bench.paired_interval(ours, theirs),
                         "per_photo": bench.paired_by_photo(ours, theirs, b.held_out.groups),
                         "hw_schedule": as_lists(hw), "flops_schedule": as_lists(matched),
                         "gmacs": {"hw": flops.cost(hw), "flops": flops.cost(matched),
                                   "dense": flops.dense_cost(depth)},
                         "predicted_ms": {"hw": latency.cost(hw), "flops": latency.cost(matched)}})
            print_row(rows[-1])
            write_json(Path(args.out) / "benchmarks" / "hw_vs_flops.json",
                       {"rows": rows, "held_out": b.held_out.source, "images": len(b.held_out),
                        "provenance": provenance()})
    return 0


def match_flops(target, vit, hw, fl, model, start, repeats):  # type: ignore[no-untyped-def]
    """The FLOPs-aware schedule shifted (``local.shift``) until its measured latency matches ``hw``'s
    within 2% by their paired ratio (:func:`bench.match_latency`: dense and both measured together in
    every run; the reported match pools the confirming runs). Returns (the pooled match, its
    schedule, all runs)."""
    def counts(t: float):  # type: ignore[no-untyped-def]
        return shift(fl, t, model.num_tokens, model.num_prefix + 1, start, "similarity")

    def run_at(t: float):  # type: ignore[no-untyped-def]
        models = {"dense": CompressedViT(vit), "hw": apply_schedule(vit, hw, "similarity"),
                  "flops": apply_schedule(vit, counts(t), "similarity")}
        return bench.matching_run(target, models, "hw", "flops", repeats)

    match = bench.match_latency(run_at, -0.5, 0.5, rising=True, snap=lambda t: round(t, 3), ours="hw",
                                theirs="flops", label="FLOPs-aware shift")
    for run in match.runs:
        run["counts"] = as_lists(counts(run["x"]))
    return match.final, counts(match.x), match.runs


def print_row(row: dict) -> None:
    mean, lo, hi = row["difference"]
    print(f"{row['target']} (batch {row['batch']}) at {row['fraction']:.2f} x dense: dense {row['dense_ms']:.2f} ms, "
          f"hardware-aware {row['hw_ms']:.2f} ms, FLOPs-aware {row['flops_ms']:.2f} ms (paired "
          f"{row['flops_over_hw'][0]:.3f}); fidelity hardware-aware {row['hw_fidelity']:.4f} vs FLOPs-aware "
          f"{row['flops_fidelity']:.4f}: difference {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]\n"
          f"  hardware-aware {row['hw_schedule']} ({row['gmacs']['hw']:.3f} GMACs)\n"
          f"  FLOPs-aware    {row['flops_schedule']} ({row['gmacs']['flops']:.3f} GMACs)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
