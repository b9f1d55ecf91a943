"""Learned (DiffRate) schedule vs hand schedules at the same GMACs (within 2%), on held-out images.

Hand schedules, each solved for the learned schedule's GMACs:
  uniform   every block from block 1 keeps the same fraction of its tokens (half pruned, half merged)
  evit      EViT-style: prune only, at blocks 4, 7, 10 (of 12), the same keep rate each time
  tome      ToMe-style: merge a constant r tokens in every block (r or r+1 to hit the budget)

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
from hwsearch.models import CompressedViT, apply_schedule  # noqa: E402
from hwsearch.quality import collect, fidelity  # noqa: E402
from hwsearch.schedule import load  # noqa: E402
from hwsearch.zoo import load_model  # noqa: E402

Counts = list[tuple[int, int]]


def uniform(n: int, prefix: int, depth: int, rate: float) -> Counts:
    counts, cur = [(n, n)], n
    for _ in range(depth - 1):
        out = max(prefix + 1, prefix + round((cur - prefix) * rate))
        pruned = cur - (cur - out) // 2
        counts.append((pruned, out))
        cur = out
    return counts


def evit(n: int, prefix: int, depth: int, rate: float, layers: tuple[int, ...] = (4, 7, 10)) -> Counts:
    counts, cur = [], n
    for i in range(depth):
        if i in layers:
            cur = max(prefix + 1, prefix + round((cur - prefix) * rate))
        counts.append((cur, cur))
    return counts


def tome(n: int, prefix: int, depth: int, r: float) -> Counts:
    """Merge r per block; fractional r spreads the extra token over the first blocks."""
    base, extra = int(r), round((r - int(r)) * depth)
    counts, cur = [], n
    for i in range(depth):
        cur = max(prefix + 1, cur - base - (1 if i < extra else 0))
        counts.append((counts[-1][1] if counts else n, cur))
    return [(p, m) for p, m in counts]


def solve(make, cost: FlopsCost, goal: float, lo: float, hi: float, decreasing: bool) -> Counts:
    """Bisection on the schedule's parameter for the goal GMACs."""
    for _ in range(60):
        mid = (lo + hi) / 2
        too_costly = cost.cost(make(mid)) > goal
        if too_costly == decreasing:
            lo = mid
        else:
            hi = mid
    return make((lo + hi) / 2)


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
    n, prefix, depth = learned.num_tokens, learned.num_prefix, len(learned.blocks)
    goal = cost.cost(learned.counts())
    schedules = {
        "diffrate (learned)": learned.counts(),
        "uniform": solve(lambda r: uniform(n, prefix, depth, r), cost, goal, 0.0, 1.0, decreasing=False),
        "evit-style": solve(lambda r: evit(n, prefix, depth, r), cost, goal, 0.0, 1.0, decreasing=False),
        "tome-style": solve(lambda r: tome(n, prefix, depth, r), cost, goal, 0.0, (n - prefix) / depth,
                            decreasing=True),
    }
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
