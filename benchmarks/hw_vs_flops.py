"""Hardware-aware vs FLOPs-aware schedules at the same MEASURED latency, on this host.

For each latency budget (fractions of the cost model's dense latency) the gradient search runs
twice with the same settings: once with the measured latency cost model (hardware-aware), and
with FLOPs (GMACs) budgets adjusted until the FLOPs-aware schedule's measured latency matches
the hardware-aware one's (secant steps on the GMACs ratio, each checked by a real measurement
interleaved with the hardware-aware model). At the end dense and every final schedule are
measured together in one run and compared on held-out images.

    python benchmarks/hw_vs_flops.py [--target cpu_onnxruntime] [--fractions 0.6,0.7,0.8]

Needs results/<target>/<model>/costmodel.json (hwsearch profile + hwsearch fit). Prints one table;
writes results/benchmarks/hw_vs_flops.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

import bench  # noqa: E402 - benchmarks/bench.py: the shared set-up (sets HF_HUB_OFFLINE)

from hwsearch.cost import Budget, FlopsCost  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.model.vit import apply_schedule  # noqa: E402
from hwsearch.profiling.measure import measure_models  # noqa: E402
from hwsearch.quality import collect, fidelity  # noqa: E402
from hwsearch.search.gradient import SearchConfig, gradient_search  # noqa: E402


def main() -> int:
    parser = bench.parser(__doc__, num_images=400)
    parser.add_argument("--fractions", default="0.6,0.7,0.8", help="latency budgets as fractions of dense")
    parser.add_argument("--match-steps", type=int, default=3, help="FLOPs budgets tried per latency budget")
    args = parser.parse_args()
    b = bench.setup(args)
    target, vit, name, checkpoint, model = b.target, b.vit, b.name, b.checkpoint, b.model
    search_set, held_out = b.search_set, b.held_out
    latency = b.latency_cost()
    flops = FlopsCost.from_model(vit)
    config = SearchConfig(epochs=1, batch_size=16)
    dense_flops, dense_pred = flops.dense_cost(model.depth), latency.dense_cost(model.depth)

    def search(budget: Budget) -> list[tuple[int, int]]:
        return gradient_search(model, [budget], search_set, config, progress=False).counts

    def measure(named: dict[str, list[tuple[int, int]]]) -> dict[str, float]:
        models = {"dense": model, **{k: apply_schedule(vit, c) for k, c in named.items()}}
        return {k: v.median_ms for k, v in measure_models(target, models, target.batch).items()}

    finals: dict[str, list[tuple[int, int]]] = {}
    for fraction in (float(f) for f in args.fractions.split(",")):
        hw = search(Budget(latency, fraction * dense_pred))
        ratio = flops.cost(hw) / dense_flops  # first FLOPs budget: the hardware-aware schedule's GMACs
        tried: list[tuple[float, float, list[tuple[int, int]]]] = []  # (ratio, measured / hw measured, counts)
        for step in range(args.match_steps):
            fl = search(Budget(flops, ratio * dense_flops))
            ms = measure({"hw": hw, "flops": fl})
            tried.append((ratio, ms["flops"] / ms["hw"], fl))
            print(f"budget {fraction:.2f}: FLOPs ratio {ratio:.3f} -> measured {ms['flops']:.1f} ms vs "
                  f"hardware-aware {ms['hw']:.1f} ms ({100 * (ms['flops'] / ms['hw'] - 1):+.1f}%)", flush=True)
            if abs(tried[-1][1] - 1) <= 0.02 or step == args.match_steps - 1:
                break
            ratio = _next_ratio(tried)
        finals[f"hw@{fraction:.2f}"] = hw
        finals[f"flops@{fraction:.2f}"] = min(tried, key=lambda t: abs(t[1] - 1))[2]
    print("final measurement: dense and all schedules interleaved in one run ...", flush=True)
    ms = measure(finals)
    ref = collect(model, held_out)
    rows = {}
    print(f"{name} on {target.name} ({target.backend}, batch {target.batch}); held-out images: {len(held_out)}")
    print(f"{'schedule':14s}{'pred ms':>9s}{'measured ms':>13s}{'x dense':>9s}{'GMACs':>8s}{'feature cos':>13s}")
    print(f"{'dense':14s}{dense_pred:9.1f}{ms['dense']:13.1f}{1.0:9.3f}{dense_flops:8.3f}{1.0:13.4f}")
    for label, counts in finals.items():
        report = fidelity(ref, collect(apply_schedule(vit, counts), held_out), vit.num_classes > 0)
        rows[label] = {"counts": counts, "predicted_ms": latency.cost(counts), "measured_ms": ms[label],
                       "gmacs": flops.cost(counts), **report}
        print(f"{label:14s}{rows[label]['predicted_ms']:9.1f}{ms[label]:13.1f}{ms[label] / ms['dense']:9.3f}"
              f"{rows[label]['gmacs']:8.3f}{report['feature_cosine']:13.4f}")
    for fraction in args.fractions.split(","):
        hw, fl = rows[f"hw@{float(fraction):.2f}"], rows[f"flops@{float(fraction):.2f}"]
        print(f"budget {float(fraction):.2f}: hardware-aware {hw['feature_cosine']:.4f} at {hw['measured_ms']:.1f} ms, "
              f"FLOPs-aware {fl['feature_cosine']:.4f} at {fl['measured_ms']:.1f} ms -> "
              f"{_winner(hw['feature_cosine'] - fl['feature_cosine'])}")
    write_json(Path(args.out) / "benchmarks" / "hw_vs_flops.json",
               {"target": target.name, "model": name, "checkpoint": checkpoint, "dense_measured_ms": ms["dense"],
                "rows": rows, "provenance": provenance()})
    return 0


def _winner(difference: float) -> str:
    if abs(difference) < 5e-4:
        return "tie (within 0.0005)"
    return "hardware-aware better" if difference > 0 else "FLOPs-aware better"


def _next_ratio(tried: list[tuple[float, float, list[tuple[int, int]]]]) -> float:
    """Secant on (FLOPs ratio -> measured latency relative to the hardware-aware schedule)."""
    if len(tried) == 1:
        r, rel, _ = tried[0]
        return min(1.0, r / rel)  # latency roughly proportional to FLOPs
    (r0, y0, _), (r1, y1, _) = tried[-2], tried[-1]
    return min(1.0, r1 + (1 - y1) * (r1 - r0) / (y1 - y0)) if y1 != y0 else r1


if __name__ == "__main__":
    sys.exit(main())
