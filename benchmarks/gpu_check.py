"""GPU check: hwsearch's torch-CUDA path on one CUDA machine in a few minutes, one summary table.

On a CUDA machine with torch, numpy and nvidia-ml-py (no network; the rest from the wheel folder
that ``benchmarks/gpu_wheels.sh`` builds), from the repository root::

    python3 -m pip install -q --no-index --find-links .whl -r benchmarks/gpu_requirements.txt
    PYTHONPATH=. python3 benchmarks/gpu_check.py            # see "Timings" below
    PYTHONPATH=. python3 benchmarks/gpu_check.py --dry-run  # the same path on the CPU, tiny sizes (a test)

Stages (each timed; a failing stage is reported and the next one runs):

1. ``profile``: the torch backend's profile of deit_small (random weights: latency depends only on
   the architecture) at batch 64, fp16, CUDA graphs (the ``h100_torch`` target measured here,
   with a short timing protocol), through the same bundle -> ``profilers`` -> profile.csv path
   as a device run, with its additivity check (whole deploy-mode models vs the sum of parts).
2. ``energy``: NVML energy per inference of the dense block at a few token counts.
3. ``optimize`` (needs scikit-learn for the fit, scikit-image and matplotlib for the default photos;
   otherwise import profile.csv on a CPU host and fit there): ``hwsearch optimize --latency-ms X``
   with X = 0.6 x the fitted dense latency, and its measured check (dense and compressed in one run;
   measured local search when out of band). The search itself runs on the CPU, as everywhere.
4. ``sweep``: one block's latency at every count from 64 to 197; prints where latency jumps by
   more than 3% between neighbouring counts (tile and wave quantization: the counts a token grid
   of step 4 can straddle).

Timings seen on an H200 (2026-11-27, warmup 0.2 s, repeats 5 x 0.05 s): the sweep's 134 graphs took
142 s (about 0.35 s of export and 0.7 s of timing each); energy 11 s; the profile (~170 graphs) did
not finish in 200 s, so the timing protocol is now shorter (0.1 s, 5 x 0.03 s). With it (2026-11-28,
all stages in one call): profile 209 s, energy 9 s, optimize 32 s, sweep 106 s, 386 s in all. Give a
first run 10 minutes, or run ``--stages profile,optimize`` and ``--stages energy,sweep`` in two calls.

Everything is written under ``--out`` (default results/gpu_check): the workspace of the check target,
block_sweep.csv, energy.csv, gpu_check.json and the table as gpu_check.txt.
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from hwsearch.io import write_json  # noqa: E402
from hwsearch.model.build import model_hash  # noqa: E402
from hwsearch.model.parts import DenseBlock  # noqa: E402
from hwsearch.model.vit import CompressedViT  # noqa: E402
from hwsearch.model.zoo import load_model  # noqa: E402
from hwsearch.profiling.export import Exporter  # noqa: E402
from hwsearch.targets import Target, load_target, validate  # noqa: E402
from hwsearch.workspace import Workspace  # noqa: E402
from profilers.bundle import Bundle  # noqa: E402
from profilers.runner import run_bundle  # noqa: E402

JUMP = 0.03  # a latency step between neighbouring counts worth printing


@dataclass(frozen=True)
class Plan:
    """Sizes of one check."""

    base_target: str
    model: str
    img_size: int
    batch: int
    timing: dict[str, float]
    sweep_from: int
    energy_counts: int
    whole_models: int
    num_images: int
    search_batch: int
    budget_ratio: float
    refine: int
    power: dict[str, float] = field(default_factory=lambda: {"window_s": 1.0, "idle_s": 2.0})


GPU = Plan("h100_torch", "deit_small_patch16_224", 224, 64,
           {"warmup_s": 0.1, "repeat_s": 0.03, "repeats": 5, "max_cv": 0.05, "max_attempts": 2},
           sweep_from=64, energy_counts=4, whole_models=4, num_images=96, search_batch=16, budget_ratio=0.6, refine=4)
DRY = Plan("cpu_torch", "deit_tiny_patch16_224", 96, 4,
           {"warmup_s": 0.02, "repeat_s": 0.01, "repeats": 3, "max_cv": 1.0, "max_attempts": 1},
           sweep_from=29, energy_counts=2, whole_models=2, num_images=8, search_batch=4, budget_ratio=0.8, refine=1,
           power={"window_s": 0.05, "idle_s": 0.05})


def check_target(plan: Plan, device_name: str, meter: str, cuda_graphs: bool = True) -> Target:
    """The plan's base target measured on this host, with the plan's timing protocol and meter."""
    base = load_target(plan.base_target)
    raw = {**base.raw, "name": "gpu_check", "host": "local", "batch_sizes": [plan.batch], "timing": plan.timing,
           "power_meter": meter, "power": plan.power, "cuda_graphs": cuda_graphs and base.raw.get("cuda_graphs", False),
           "description": f"{device_name}: {base.raw.get('description', base.name)} (gpu_check timing)"}
    raw = validate(raw, "gpu_check target")
    return Target(raw["name"], raw["backend"], raw["precision"], raw["batch_sizes"], raw["power_meter"],
                  raw.get("threads"), raw["timing"], raw, None)


def block_rows(model: CompressedViT, name: str, target: Target, counts: list[int], csv_path: Path) -> list[dict]:
    """The dense block (position 0) at each count, measured as a bundle by ``profilers`` (shuffled,
    interleaved chunks; energy too when the target has a meter); the CSV rows."""
    root = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    try:
        exporter = Exporter(root, model, target)
        for n in counts:
            exporter.add(f"block_n{n}_b{target.batch}", "block", DenseBlock(model, 0), n, target.batch, prune_kept=0)
        Bundle(root, name, model_hash(model.vit, name), dict(target.raw), exporter.graphs).save()
        if csv_path.exists():
            csv_path.unlink()
        run_bundle(root, csv_path)
        with csv_path.open(newline="") as f:
            return sorted(csv.DictReader(f), key=lambda r: int(r["tokens"]))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def jumps(rows: list[dict], threshold: float = JUMP) -> list[tuple[int, int, float]]:
    """(count, next count, latency ratio) where one more token step costs more than ``threshold``."""
    out = []
    for lo, hi in zip(rows, rows[1:], strict=False):
        ratio = float(hi["median_ms"]) / float(lo["median_ms"])
        if ratio > 1 + threshold:
            out.append((int(lo["tokens"]), int(hi["tokens"]), ratio))
    return out


def stage_profile(plan: Plan, ctx: dict[str, Any]) -> str:
    from hwsearch.profiling.measure import profile_here

    ws: Workspace = ctx["workspace"]
    _, report = profile_here(ctx["target"], ctx["model"], ctx["name"], [plan.batch], ws.folder, plan.whole_models,
                             progress_bar=True)  # a log that shows how far it got
    rows = sum(1 for _ in ws.profile_csv.open()) - 1
    ctx["results"]["profile"] = {"rows": rows, "additivity": report}
    r = report[f"batch{plan.batch}"]
    return (f"{rows} rows; sum of parts vs {r['whole_models']} whole models: MAPE {_pct(r['mape'])}, mean error "
            f"{_pct(r['mean_error'])}; attn+mlp vs block {_pct(r['attn_plus_mlp_vs_block'])}")


def stage_energy(plan: Plan, ctx: dict[str, Any]) -> str:
    from profilers.meters import create_meter

    model: CompressedViT = ctx["model"]
    create_meter("nvml", plan.power).close()  # MeterUnavailable names why this host has no NVML energy
    target = check_target(plan, ctx["device"], "nvml", ctx["target"].raw["cuda_graphs"])
    step = max(1, (model.num_tokens - plan.sweep_from) // max(1, plan.energy_counts - 1))
    counts = sorted({max(plan.sweep_from, model.num_tokens - i * step) for i in range(plan.energy_counts)})
    rows = block_rows(model, ctx["name"], target, counts, ctx["out"] / "energy.csv")
    table = [{"tokens": int(r["tokens"]), "median_ms": float(r["median_ms"]),
              "energy_mj": float(r["energy_mj"]) if r.get("energy_mj") else None,
              "avg_power_w": float(r["avg_power_w"]) if r.get("avg_power_w") else None} for r in rows]
    ctx["results"]["energy"] = table
    return "; ".join(f"n={t['tokens']}: {t['energy_mj']:.3f} mJ at {t['avg_power_w']:.0f} W" for t in table)


def stage_sweep(plan: Plan, ctx: dict[str, Any]) -> str:
    model: CompressedViT = ctx["model"]
    counts = list(range(plan.sweep_from, model.num_tokens + 1))
    rows = block_rows(model, ctx["name"], ctx["target"], counts, ctx["out"] / "block_sweep.csv")
    found = jumps(rows)
    ctx["results"]["sweep"] = {"counts": [int(r["tokens"]) for r in rows],
                               "median_ms": [float(r["median_ms"]) for r in rows],
                               "jumps": [{"from": a, "to": b, "ratio": r} for a, b, r in found]}
    first, last = float(rows[0]["median_ms"]), float(rows[-1]["median_ms"])
    where = ", ".join(f"{a}->{b} +{100 * (r - 1):.1f}%" for a, b, r in found) or "none"
    return (f"{len(rows)} counts, {first:.3f} ms at {rows[0]['tokens']} .. {last:.3f} ms at {rows[-1]['tokens']}; "
            f"jumps > {100 * JUMP:.0f}%: {where}")


def stage_optimize(plan: Plan, ctx: dict[str, Any]) -> str:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise RuntimeError("scikit-learn missing: import profile.csv on a CPU host "
                           "(hwsearch profile --import), fit and optimize there") from None
    from hwsearch.cost.measured import MeasuredCost
    from hwsearch.schedule import load_schedule
    from hwsearch.search.budgets import BudgetSpec
    from hwsearch.search.gradient import SearchConfig
    from hwsearch.search.optimize import OptimizeRequest, optimize

    ws: Workspace = ctx["workspace"]
    model: CompressedViT = ctx["model"]
    dense = MeasuredCost(ws.ensure_costmodel(model, True, False)).dense_cost(model.depth)
    budget = plan.budget_ratio * dense
    request = OptimizeRequest([BudgetSpec("latency_ms", budget, ctx["target"])], plan.model, None, plan.img_size,
                              None, plan.num_images, SearchConfig(batch_size=plan.search_batch), refine=plan.refine,
                              progress=False)
    path = optimize(ctx["out"], request)
    schedule = load_schedule(path)
    measured = schedule.provenance.get("measured") or {}
    c, d = measured.get("compressed", {}), measured.get("dense", {})
    ctx["results"]["optimize"] = {"budget_ms": budget, "predicted_dense_ms": dense, "schedule": str(path),
                                  "counts": [list(x) for x in schedule.counts()],
                                  "predicted_ms": schedule.predicted.get("value"), "measured": measured}
    if not c:
        return f"budget {budget:.3f} ms; not measured"
    return (f"budget {budget:.3f} ms (= {plan.budget_ratio} x fitted dense {dense:.3f}); predicted "
            f"{schedule.predicted.get('value', float('nan')):.3f}; measured {c['median_ms']:.3f} ms = "
            f"{c['median_ms'] / budget:.3f} x budget, dense {d['median_ms']:.3f} ms, speedup "
            f"{d['median_ms'] / c['median_ms']:.2f}x")


STAGES: dict[str, Callable[[Plan, dict[str, Any]], str]] = {
    "profile": stage_profile, "energy": stage_energy, "optimize": stage_optimize, "sweep": stage_sweep}


def _pct(value: Any) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, (int, float)) else "n/a"


def device_line(plan: Plan) -> str:
    import torch

    if plan is DRY:
        return f"CPU dry run (torch {torch.__version__})"
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device (torch.cuda.is_available() is False); --dry-run runs on the CPU")
    return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", action="store_true", help="the same path on the CPU with tiny sizes")
    p.add_argument("--out", default="results/gpu_check")
    p.add_argument("--no-cuda-graphs", action="store_true", help="eager CUDA (the target uses CUDA graphs)")
    p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " + ", ".join(STAGES))
    args = p.parse_args(argv)
    plan = DRY if args.dry_run else GPU
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        p.error(f"unknown stage {unknown[0]!r} (known: {', '.join(STAGES)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = device_line(plan)
    vit, name, _ = load_model(plan.model, None, plan.img_size)
    target = check_target(plan, device, "none", not args.no_cuda_graphs)
    ctx: dict[str, Any] = {"device": device, "name": name, "model": CompressedViT(vit), "target": target, "out": out,
                           "workspace": Workspace(out, target, name), "results": {}}
    print(f"gpu_check on {device}: {name} at {plan.img_size} px, batch {plan.batch}, {target.precision}, "
          f"cuda_graphs {target.raw.get('cuda_graphs', False)}, timing {plan.timing}", flush=True)
    table: list[tuple[str, float, str, str]] = []
    for stage in stages:
        start = time.perf_counter()
        try:
            status, line = "ok", STAGES[stage](plan, ctx)
        except Exception as exc:  # noqa: BLE001 - one stage failing must not cost the others their device time
            traceback.print_exc()
            status, line = "FAILED", f"{type(exc).__name__}: {exc}".splitlines()[0]
        table.append((stage, time.perf_counter() - start, status, line))
        print(f"[{stage}] {status} in {table[-1][1]:.0f} s: {line}", flush=True)
    text = "\n".join([f"gpu_check: {device}; {name} {plan.img_size} px, batch {plan.batch}",
                      "| stage | seconds | status | result |", "|---|---|---|---|",
                      *(f"| {s} | {t:.0f} | {st} | {line} |" for s, t, st, line in table)])
    print(text)
    (out / "gpu_check.txt").write_text(text + "\n")
    write_json(out / "gpu_check.json", {"device": device, "plan": plan.__dict__, "results": ctx["results"],
                                        "stages": [{"stage": s, "seconds": t, "status": st, "result": line}
                                                   for s, t, st, line in table]})
    return 0 if all(st == "ok" for _, _, st, _ in table) else 1


if __name__ == "__main__":
    sys.exit(main())
