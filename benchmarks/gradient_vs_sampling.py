"""Gradient (DiffRate) search vs Optuna TPE vs random sampling at equal wall time, on this machine.

The gradient search runs first and its wall time T (dense reference included) becomes every
sampler's time budget. The samplers search schedule shapes scaled onto the budget (every trial
costs what the gradient result costs), maximizing quality. The samplers select on images from the
search photos (the gradient search trains on those photos too); every method's pick is then
judged by the same quality (feature cosine / top-1 agreement with the dense model) on held-out
photos, with the same cost model; a schedule counts only when its predicted cost meets the
budget (+2%).

    python benchmarks/gradient_vs_sampling.py [--target cpu_onnxruntime] [--fraction 0.7]

Uses the target's latency cost model when results/<target>/<model>/costmodel.json exists, else GMACs.
Prints one table; writes results/benchmarks/gradient_vs_sampling.json.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import bench  # noqa: E402 - benchmarks/bench.py: the shared set-up (sets HF_HUB_OFFLINE)
import optuna  # noqa: E402
import torch  # noqa: E402

from hwsearch.cost import Budget, FlopsCost  # noqa: E402
from hwsearch.data import ImageSet  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.model.vit import CompressedViT, apply_schedule  # noqa: E402
from hwsearch.quality import collect, feature_cosines  # noqa: E402
from hwsearch.search import sampled  # noqa: E402
from hwsearch.search.gradient import SearchConfig, gradient_search  # noqa: E402
from hwsearch.search.sample import make_quality  # noqa: E402


def main() -> int:
    parser = bench.parser(__doc__, num_images=500)
    parser.add_argument("--fraction", type=float, default=0.7, help="budget as a fraction of the dense cost")
    parser.add_argument("--eval-images", type=int, default=64, help="search-photo images the samplers select on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    b = bench.setup(args)
    target, vit, name, search_set, held_out = b.target, b.vit, b.name, b.search_set, b.held_out
    config = SearchConfig(seed=args.seed)  # optimize's defaults: similarity merging, from block 0
    model = CompressedViT(vit, merging=config.merging)
    cost = (b.latency_cost(config.merging) if b.workspace.costmodel_json.is_file()
            else FlopsCost.from_model(vit, config.merging))
    goal = args.fraction * cost.dense_cost(model.depth)
    # samplers select on search-photo images (what the gradient search trains on); every method's
    # result is reported on held-out photos none of them saw
    pick = torch.randperm(len(search_set), generator=torch.Generator().manual_seed(args.seed))[:args.eval_images]
    select_set = ImageSet(search_set.images[pick], None, "search photos (selection)")
    test_set = ImageSet(held_out.images, None, held_out.source)
    quality, key = make_quality(model, select_set)
    test_quality, _ = make_quality(model, test_set)
    limit = goal * (1 + sampled.Evaluator.tolerance)  # the feasibility rule of hwsearch sample

    started = time.perf_counter()
    result = gradient_search(model, [Budget(cost, goal)], search_set, config, progress=False)
    seconds = time.perf_counter() - started
    meets = cost.cost(result.counts) <= limit
    rows = {"gradient": {"evals": 1, "seconds": seconds, "feasible": int(meets), "cost": cost.cost(result.counts),
                         "selection_quality": quality(result.counts) if meets else None,
                         "quality": test_quality(result.counts) if meets else None, "counts": result.counts}}
    print(f"gradient search: {seconds:.0f} s on {len(search_set)} images; each sampler gets the same time",
          flush=True)
    # samplers search schedule shapes scaled onto the budget (BudgetSpace), maximizing quality,
    # so every trial has the gradient result's cost: a like-for-like comparison
    space = sampled.BudgetSpace(model.num_tokens, model.num_prefix, model.depth, config.compress_from, cost, goal,
                                config.merging)
    for method in ("tpe", "random"):
        study = optuna.create_study(direction="maximize", sampler=sampled.make_sampler(method, args.seed, 1))
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        evaluator = sampled.Evaluator(quality, cost, goal)
        run = sampled.objective(space, evaluator, cap=10 ** 6, objectives=1, origin=f"sampler:{method}")
        study.optimize(run, timeout=seconds)
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        feasible = [t for t in done if t.user_attrs["cost"] <= limit]
        best = max(feasible, key=lambda t: t.user_attrs["quality"]) if feasible else None
        counts = [tuple(c) for c in json.loads(best.user_attrs["counts"])] if best else None
        rows[method] = {"evals": len(done), "seconds": seconds, "feasible": len(feasible),
                        "selection_quality": best.user_attrs["quality"] if best else None,
                        "quality": test_quality(counts) if counts else None,
                        "cost": best.user_attrs["cost"] if best else None, "counts": counts}
    print(f"{name} on {target.name}: budget {goal:.3f} {cost.unit} ({args.fraction:g} x dense, feasible up to "
          f"+2%); quality = {key}: selection on {len(select_set)} search-photo images, reported on "
          f"{len(test_set)} held-out images")
    print(f"{'method':10s}{'evals':>7s}{'feasible':>9s}{'seconds':>9s}{'selection q':>13s}{'held-out q':>12s}"
          f"{'cost':>10s}")
    for method, r in rows.items():
        sel = f"{r['selection_quality']:.4f}" if r["selection_quality"] is not None else "none"
        q = f"{r['quality']:.4f}" if r["quality"] is not None else "none"
        c = f"{r['cost']:.3f}" if r["cost"] is not None else "-"
        print(f"{method:10s}{r['evals']:7d}{r['feasible']:9d}{r['seconds']:9.0f}{sel:>13s}{q:>12s}{c:>10s}")
    ref = collect(model, test_set)
    per_image = {m: feature_cosines(ref, collect(apply_schedule(vit, r["counts"], config.merging), test_set))
                 for m, r in rows.items() if r["counts"] is not None and r["quality"] is not None}
    for method in per_image:
        if method != "gradient" and "gradient" in per_image:
            rows[method]["gradient_minus"] = bench.paired_interval(per_image["gradient"], per_image[method])
            mean, lo, hi = rows[method]["gradient_minus"]
            print(f"held-out feature cosine, gradient - {method}: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] "
                  f"(paired bootstrap 95% over {len(test_set)} images)")
    write_json(Path(args.out) / "benchmarks" / "gradient_vs_sampling.json",
               {"model": name, "target": target.name, "budget": goal, "unit": cost.unit, "quality": key,
                "rows": rows, "provenance": provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
