"""Learned (DiffRate) schedule vs hand schedules at the same GMACs (within 2%), on held-out images.

Hand schedules (hwsearch.search.baselines), each solved for the learned schedule's GMACs, compressing
from the same first block as the search: uniform rate, EViT-style fixed-layer pruning, ToMe-style
constant merge.

    python benchmarks/schedules_vs_uniform.py [--schedule results/.../flops0.6.yaml]

Without --schedule it runs the default search (``hwsearch optimize --flops-ratio 0.6``) first.
Prints one table; writes results/benchmarks/schedules_vs_uniform.json.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hwsearch.cost import FlopsCost  # noqa: E402
from hwsearch.data import default_sets  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.model.vit import CompressedViT, apply_schedule  # noqa: E402
from hwsearch.model.zoo import load_model  # noqa: E402
from hwsearch.quality import collect, fidelity  # noqa: E402
from hwsearch.schedule import load  # noqa: E402
from hwsearch.search.baselines import solve  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedule", help="learned schedule YAML (default: run the default search)")
    parser.add_argument("--num-images", type=int, default=1000)
    args = parser.parse_args()
    if args.schedule is None:
        from hwsearch.cli import main as cli

        out = Path("results/benchmarks")
        if cli(["optimize", "--flops-ratio", "0.6", "--out", str(out), "--name", "learned"]) != 0:
            return 2
        args.schedule = str(next(out.rglob("learned.yaml")))
    learned = load(args.schedule)
    vit, name, _ = load_model(learned.model, learned.provenance.get("checkpoint"), learned.img_size)
    cost = FlopsCost.from_model(vit)
    prefix, depth = learned.num_prefix, len(learned.blocks)
    start = int(learned.provenance.get("search", {}).get("compress_from", 1))
    goal = cost.cost(learned.counts())
    schedules = {"diffrate (learned)": learned.counts()}
    for kind in ("uniform", "evit", "tome"):
        schedules[f"{kind}-style"] = solve(kind, cost, goal, depth, prefix, start)
    _, held_out = default_sets(learned.img_size, args.num_images)
    dense = CompressedViT(vit)
    ref = collect(dense, held_out)
    rows = {}
    print(f"{name}, held-out images: {len(held_out)}; budget {goal:.3f} GMACs = "
          f"{goal / cost.dense_cost(depth):.3f} x dense")
    print(f"{'schedule':20s}{'GMACs':>8s}{'vs learned':>12s}{'cls cos':>10s}{'mean cos':>10s}{'feature cos':>13s}")
    for label, counts in schedules.items():
        gm = cost.cost(counts)
        report = fidelity(ref, collect(apply_schedule(vit, counts), held_out), vit.num_classes > 0)
        rows[label] = {"counts": counts, "gmacs": gm, **report}
        print(f"{label:20s}{gm:8.3f}{100 * (gm / goal - 1):+11.2f}%{report['cls_cosine']:10.4f}"
              f"{report['patch_mean_cosine']:10.4f}{report['feature_cosine']:13.4f}")
        if abs(gm / goal - 1) > 0.02:
            print(f"  note: {label} is {100 * (gm / goal - 1):+.2f}% off the learned GMACs", file=sys.stderr)
    write_json(Path("results/benchmarks/schedules_vs_uniform.json"),
               {"schedule": args.schedule, "rows": rows, "provenance": provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
