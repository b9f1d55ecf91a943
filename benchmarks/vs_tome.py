"""hwsearch's latency-aware schedule vs ToMe itself at equal MEASURED latency, on this host.

Per target and latency budget (fractions of dense): the gradient search with similarity merging on
the target's measured cost model, then, as ``optimize --latency-ms`` does, measured beside dense and
moved by the measured local search until it lands in [0.90, 1.03] x (fraction x dense measured);
then ToMe as the paper runs it (bipartite soft matching, constant r from block 0, no pruning), r
chosen on real measurements so that ToMe's measured latency matches the searched schedule's within
2%. Every run measures dense, the searched schedule and ToMe together (repeats interleaved) and
compares ToMe with the searched schedule by their paired ratio (per round, so host drift cancels);
r comes from a bisection, then a fit over every run near the match, and the reported match pools
three runs at that r, refitted while their interval excludes 1 (one run's ratio moves ~4% between
runs at batch 1: bench.match_latency).
Where ToMe at its fastest r (every block merging up to its cap) is still slower than the searched
schedule, ToMe cannot meet that budget; the row then also compares at ToMe's fastest latency, with
the searched schedule shifted towards dense (local.shift) until it matches.
Fidelity (feature cosine: mean of class-token and patch-mean cosines) is compared on held-out
photos with a paired bootstrap 95% interval, also per photo.

    python benchmarks/vs_tome.py [--targets cpu_onnxruntime,cpu_onnxruntime_b1] [--fractions 0.6,0.7]

Profiles and fits each target first when needed (hwsearch profile: minutes). Prints one table;
writes results/benchmarks/vs_tome_<target>.json after every row.
"""
from __future__ import annotations

import sys
from pathlib import Path

import bench  # noqa: E402 - benchmarks/bench.py: the shared set-up (sets HF_HUB_OFFLINE)

from hwsearch.cost import MeasuredCost  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.model.vit import CompressedViT, apply_schedule  # noqa: E402
from hwsearch.schedule import as_lists  # noqa: E402
from hwsearch.search.baselines import tome, tome_r  # noqa: E402
from hwsearch.search.gradient import RATES, SearchConfig  # noqa: E402
from hwsearch.search.local import shift  # noqa: E402
from hwsearch.targets import load_target  # noqa: E402
from hwsearch.workspace import Workspace  # noqa: E402


def main() -> int:
    parser = bench.parser(__doc__, num_images=1000)
    parser.add_argument("--targets", default="cpu_onnxruntime,cpu_onnxruntime_b1")
    parser.add_argument("--fractions", default="0.6,0.7", help="latency budgets as fractions of dense")
    parser.add_argument("--epochs", type=int, default=SearchConfig.epochs)
    parser.add_argument("--refine", type=int, default=6, help="measured local-search steps (as optimize --refine)")
    parser.add_argument("--repeats", type=int, default=bench.ROUNDS, help="interleaved rounds of each matching run")
    parser.add_argument("--ops", default="prune,merge", help="what the search may do (as optimize --ops)")
    parser.add_argument("--rates", default="auto", choices=RATES,
                        help="the search's rates (as optimize --rates)")
    args = parser.parse_args()
    b = bench.setup(args)
    vit, depth, prefix = b.vit, b.model.depth, b.model.num_prefix
    rows = []
    for target_name in args.targets.split(","):
        target = load_target(target_name)
        searched_model = CompressedViT(vit, merging="similarity")
        data = Workspace(Path(args.out), target, b.name).ensure_costmodel(searched_model)
        cost = MeasuredCost(data, "latency", "similarity")
        for fraction in (float(f) for f in args.fractions.split(",")):
            goal = fraction * cost.dense_cost(depth)
            config = SearchConfig(epochs=args.epochs, merging="similarity", ops=tuple(args.ops.split(",")),
                                  rates=args.rates)
            search = bench.latency_search(searched_model, cost, goal, b.search_set, config, target)
            searched = bench.on_measured_budget(target, searched_model, search, fraction, args.refine, config)
            r, final, runs = match_tome(target, vit, searched, cost, depth, prefix, args.repeats)
            tome_counts = tome(b.model.num_tokens, prefix, depth, r, 0)
            theirs = b.held_out_cosines(tome_counts)
            row = {"target": target.name, "batch": target.batch, "fraction": fraction, "r": r, "ops": args.ops,
                   "rates": args.rates,
                   **compared(b, searched, theirs, final, runs)}
            fastest = (b.model.num_tokens - prefix) / 2  # block 0 merges its cap, and every block after it
            if final["ratio"] > 1 + bench.TOLERANCE and r >= fastest - 1 / 12:  # ToMe cannot get as fast
                print(f"  ToMe at its fastest (r={fastest:.2f}) is slower than the searched schedule: the searched "
                      "schedule shifted to ToMe's latency as well", flush=True)
                shifted, final, runs = match_to_tome(target, vit, searched, tome_counts, b.model, args.repeats)
                row["at_tome_fastest"] = compared(b, shifted, theirs, final, runs)
            rows.append(row)
            print_row(row)
            write_json(Path(args.out) / "benchmarks" / f"vs_tome_{target.name}.json",  # after every row
                       {"rows": [r for r in rows if r["target"] == target.name], "held_out": b.held_out.source,
                        "images": len(b.held_out), "provenance": provenance()})
    return 0


def compared(b, ours_counts, theirs, final, runs):  # type: ignore[no-untyped-def]
    """Latencies of the pooled match and held-out fidelity of ``ours_counts`` vs ToMe's per-image
    feature cosines ``theirs``, paired."""
    ours = b.held_out_cosines(ours_counts)
    return {"dense_ms": final["dense"], "hwsearch_ms": final["hwsearch"], "tome_ms": final["tome"],
            "tome_over_hwsearch": [final["ratio"], *final["ratio_95"]], "matched_rounds": final["rounds"],
            "run_ratios": final["run_ratios"], "matching_runs": runs,
            "hwsearch_fidelity": float(ours.mean()), "tome_fidelity": float(theirs.mean()),
            "difference": bench.paired_interval(ours, theirs),
            "per_photo": bench.paired_by_photo(ours, theirs, b.held_out.groups), "schedule": as_lists(ours_counts)}


def match_to_tome(target, vit, searched, tome_counts, model, repeats):  # type: ignore[no-untyped-def]
    """The searched schedule shifted towards dense (``local.shift``) until its measured latency matches
    ToMe's (at its fastest r) within 2%. Returns (the shifted schedule, the pooled match, all runs)."""
    def counts(t: float):  # type: ignore[no-untyped-def]
        return shift(searched, t, model.num_tokens, model.num_prefix + 1, 0, "similarity")

    def run_at(t: float):  # type: ignore[no-untyped-def]
        models = {"dense": CompressedViT(vit), "hwsearch": apply_schedule(vit, counts(t), "similarity"),
                  "tome": apply_schedule(vit, tome_counts, "similarity")}
        return bench.matching_run(target, models, "hwsearch", "tome", repeats)

    # tome / hwsearch falls as the shift (towards dense) slows the searched schedule
    match = bench.match_latency(run_at, 0.0, 0.5, rising=False, snap=lambda t: round(t, 3), ours="hwsearch",
                                theirs="tome", label="searched shift")
    return counts(match.x), match.final, match.runs


def match_tome(target, vit, searched, cost, depth, prefix, repeats):  # type: ignore[no-untyped-def]
    """ToMe's r (to a twelfth of a token per block) whose measured latency matches the searched
    schedule's within 2% (:func:`bench.match_latency`: every run measures dense, the searched
    schedule and ToMe(r) together and compares them by their paired ratio; the reported match pools
    the confirming runs). Where the searched schedule is ToMe's own at some r, that r is the match (the
    same model: equal latency by identity; a measured match would pick an r a token or two away,
    below what latency resolves, and the fidelity difference would only be those tokens'); its
    confirming runs are kept for the record. Returns (r, the pooled match, all runs)."""
    n = cost.num_tokens
    ours = apply_schedule(vit, searched, "similarity")

    def run_at(r: float):  # type: ignore[no-untyped-def]
        models = {"dense": CompressedViT(vit), "hwsearch": ours,
                  "tome": apply_schedule(vit, tome(n, prefix, depth, r, 0), "similarity")}
        return bench.matching_run(target, models, "hwsearch", "tome", repeats)

    own = tome_r(searched, n, prefix, depth)
    if own is not None:
        print(f"  the searched schedule is ToMe r={own:.4g}: matched by identity", flush=True)
        match = bench.pooled_match(run_at, own, "hwsearch", "tome", "ToMe r")
        return match.x, match.final, match.runs
    # r up to half the patches: above patches / blocks later blocks merge their cap, still faster
    match = bench.match_latency(run_at, 0.0, (n - prefix) / 2, rising=False, snap=lambda r: round(r * 12) / 12,
                                ours="hwsearch", theirs="tome", label="ToMe r", coarse=6)
    return match.x, match.final, match.runs


def print_row(row: dict) -> None:
    print(f"{row['target']} (batch {row['batch']}) at {row['fraction']:.2f} x dense, ToMe r={row['r']:g}: "
          + described(row), flush=True)
    if "at_tome_fastest" in row:
        print("  at ToMe's fastest, the searched schedule shifted to its latency: " + described(row["at_tome_fastest"]),
              flush=True)


def described(c: dict) -> str:
    mean, lo, hi = c["difference"]
    ratio = c["tome_over_hwsearch"]
    photos = ", ".join(f"{k} {v[0]:+.4f} [{v[1]:+.4f}, {v[2]:+.4f}]" for k, v in c["per_photo"].items())
    return (f"dense {c['dense_ms']:.2f} ms, hwsearch {c['hwsearch_ms']:.2f} ms, ToMe {c['tome_ms']:.2f} ms "
            f"(ToMe/hwsearch paired {ratio[0]:.3f} [{ratio[1]:.3f}, {ratio[2]:.3f}], {c['matched_rounds']} rounds); "
            f"fidelity hwsearch {c['hwsearch_fidelity']:.4f} vs ToMe {c['tome_fidelity']:.4f}: "
            f"difference {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]; per photo {photos}")


if __name__ == "__main__":
    sys.exit(main())
