"""Learned schedules vs every hand method at the same GMACs (within 1%), on held-out photos.

Per budget (fractions of the dense GMACs): the gradient search (FLOPs cost, ``--merging``, default
similarity); then each hand method of hwsearch.search.baselines.METHODS solved for the learned
schedule's GMACs on its own operator's FLOPs: uniform, EViT-style, ToMe-style (rank and similarity
merging, from the search's first compressing block) and ToMe itself (tome-paper: similarity, r from
block 0). Fidelity = feature cosine per image (mean of class-token and patch-mean cosines); learned
minus each method with a paired bootstrap 95% interval over the held-out images.

    python benchmarks/schedules_vs_uniform.py [--fractions 0.5,0.6,0.7] [--merging similarity]

Prints one table per budget; writes results/benchmarks/schedules_vs_uniform_from<K>.json
(K: ``--compress-from``, the first block the search and the ToMe-style schedules may compress).
"""
from __future__ import annotations

import sys
from pathlib import Path

import bench  # noqa: E402 - benchmarks/bench.py: the shared set-up (sets HF_HUB_OFFLINE)

from hwsearch.cost import Budget, FlopsCost  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.model.vit import CompressedViT  # noqa: E402
from hwsearch.schedule import as_lists  # noqa: E402
from hwsearch.search.baselines import METHODS, solve_method  # noqa: E402
from hwsearch.search.gradient import SearchConfig, gradient_search  # noqa: E402


def main() -> int:
    parser = bench.parser(__doc__, num_images=1000)
    parser.add_argument("--fractions", default="0.5,0.6,0.7", help="GMACs budgets as fractions of dense")
    parser.add_argument("--merging", default="similarity", choices=["rank", "similarity"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--compress-from", type=int, default=SearchConfig.compress_from,
                        help="first block the search (and the ToMe-style hand schedules) may compress")
    args = parser.parse_args()
    b = bench.setup(args)
    vit, depth, prefix = b.vit, b.model.depth, b.model.num_prefix

    def cost_of(merging: str) -> FlopsCost:
        return FlopsCost.from_model(vit, merging)

    def quality(counts, merging):  # type: ignore[no-untyped-def]
        return b.held_out_cosines(counts, merging)

    results = []
    for fraction in (float(f) for f in args.fractions.split(",")):
        cost = cost_of(args.merging)
        config = SearchConfig(epochs=args.epochs, merging=args.merging, compress_from=args.compress_from)
        learned = gradient_search(CompressedViT(vit, merging=args.merging),
                                  [Budget(cost, fraction * cost.dense_cost(depth), name="gmacs")], b.search_set,
                                  config, progress=False).counts
        goal = cost.cost(learned)
        ours = quality(learned, args.merging)
        rows = {"learned": {"gmacs": goal, "fidelity": float(ours.mean()), "counts": as_lists(learned)}}
        for method in METHODS:
            counts, merging = solve_method(method, cost_of, goal, depth, prefix, config.compress_from)
            theirs = quality(counts, merging)
            rows[method] = {"gmacs": cost_of(merging).cost(counts), "fidelity": float(theirs.mean()),
                            "learned_minus": bench.paired_interval(ours, theirs), "counts": as_lists(counts)}
        best = max(METHODS, key=lambda m: rows[m]["fidelity"])
        results.append({"fraction": fraction, "dense_gmacs": cost.dense_cost(depth), "best_hand": best, "rows": rows})
        print_table(results[-1])
        write_json(Path(args.out) / "benchmarks" / output_name(args.compress_from),  # after every budget
                   {"merging": args.merging, "compress_from": args.compress_from, "held_out": b.held_out.source,
                    "images": len(b.held_out),
                    "results": results, "provenance": provenance()})
    return 0


def output_name(compress_from: int) -> str:
    """The JSON's file name, by the first compressing block (the default changed from 1 to 0)."""
    return f"schedules_vs_uniform_from{compress_from}.json"


def print_table(result: dict) -> None:
    rows, goal = result["rows"], result["rows"]["learned"]["gmacs"]
    print(f"\n{result['fraction']:.2f} x dense GMACs ({goal:.3f} GMACs learned); best hand: {result['best_hand']}")
    print(f"{'method':24s}{'GMACs vs learned':>18s}{'feature cos':>13s}{'learned - method [95% CI]':>32s}")
    for name, row in rows.items():
        ci = row.get("learned_minus")
        text = f"{ci[0]:+.4f} [{ci[1]:+.4f}, {ci[2]:+.4f}]" if ci else ""
        print(f"{name:24s}{100 * (row['gmacs'] / goal - 1):+17.2f}%{row['fidelity']:13.4f}{text:>32s}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
