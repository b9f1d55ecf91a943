"""What each CLI command does (argument parsing lives in :mod:`hwsearch.cli`)."""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from hwsearch.cost import FlopsCost
from hwsearch.data import ImageSet, default_sets, folder_sets
from hwsearch.errors import HwsearchError
from hwsearch.io import provenance, write_json
from hwsearch.models import CompressedViT, apply_schedule
from hwsearch.quality import collect, fidelity
from hwsearch.schedule import Schedule
from hwsearch.schedule import load as load_schedule
from hwsearch.search.gradient import SearchConfig, gradient_search, save_history
from hwsearch.targets import load_target, resolve_target
from hwsearch.zoo import DEFAULT_MODEL, load_model


def _target(args: argparse.Namespace, fallback: str | None = None):  # type: ignore[no-untyped-def]
    name, why = (args.target, "--target") if args.target else (
        (fallback, "schedule") if fallback else resolve_target(None, Path(getattr(args, "out", "results"))))
    target = load_target(name)
    print(f"target: {target.name} ({why})", flush=True)
    return target


def _data(args: argparse.Namespace, vit: torch.nn.Module) -> tuple[ImageSet, ImageSet]:
    size = int(vit.patch_embed.img_size[0])
    if args.data:
        crop_pct = float(vit.pretrained_cfg.get("crop_pct", 0.875))
        return folder_sets(args.data, size, crop_pct, args.num_images)
    if args.num_images < 2:
        raise HwsearchError("--num-images must be at least 2")
    return default_sets(size, args.num_images)


BUDGETS = {"flops_ratio": "--flops-ratio", "gflops": "--gflops", "latency_ms": "--latency-ms",
           "energy_mj": "--energy-mj"}


def _costmodel_data(args: argparse.Namespace, target, model: CompressedViT, name: str) -> dict:  # type: ignore[no-untyped-def]
    """This target's fitted cost model (fitted now when only the profile exists or it changed)."""
    import hashlib

    from hwsearch.fit import FORMAT, fit_costmodel, load_costmodel, save_costmodel
    from hwsearch.profile import model_hash

    folder = Path(args.out) / target.name / name
    path, profile_csv = folder / "costmodel.json", folder / "profile.csv"
    if not path.is_file() and not profile_csv.is_file():
        if not target.is_local:
            raise HwsearchError(f"no profile of {name} on {target.name}: make a bundle with hwsearch profile "
                                f"--target {target.name}" + (f" --model {name}" if args.model else "")
                                + " --bundle OUT.tar.gz, run it on the device, then --import its measurements.csv")
        print(f"no profile of {name} on {target.name} yet: profiling it here first (hwsearch profile)", flush=True)
        _print_profile(*_profile_here(target, model, name, list(target.batch_sizes), folder, 8,
                                      not getattr(args, "no_progress", False)))
    fmt = _json_format(path) if path.is_file() else None
    old_format = profile_csv.is_file() and isinstance(fmt, int) and fmt < FORMAT  # refit; corrupt files are errors
    data = load_costmodel(path) if path.is_file() and not old_format else None
    if profile_csv.is_file() and (data is None or data["rows_sha256"] != hashlib.sha256(
            profile_csv.read_bytes()).hexdigest()):
        why = "older format" if old_format else "missing" if data is None else "profile changed"
        print(f"fitting {path} from {profile_csv} ({why}) ...", flush=True)
        save_costmodel(fit_costmodel(profile_csv, target.batch), path)
        data = load_costmodel(path)
    assert data is not None
    if data["model_hash"] != model_hash(model, name):
        raise HwsearchError(f"{path} is stale: it was fitted for another architecture; profile and fit again")
    return data


def _json_format(path: Path) -> object:
    try:
        return json.loads(path.read_text()).get("format")
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return None


def _budgets(args: argparse.Namespace, target, model: CompressedViT, name: str, min_count: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    """(Budget, YAML record) per budget given; each refused outside the reachable range."""
    from hwsearch.cost import Budget, MeasuredCost

    given = [k for k in BUDGETS if getattr(args, k) is not None]
    if not given:
        raise HwsearchError("give a budget: --flops-ratio, --gflops, --latency-ms and/or --energy-mj")
    if len(given) > 1 and not set(given) <= {"latency_ms", "energy_mj"}:
        raise HwsearchError(f"{' and '.join(BUDGETS[k] for k in given)} cannot be combined: two budgets at once "
                            f"are --latency-ms and --energy-mj")
    if args.energy_weight <= 0:
        raise HwsearchError("--energy-weight must be positive")
    data = _costmodel_data(args, target, model, name) if set(given) & {"latency_ms", "energy_mj"} else None
    out = []
    for kind in given:
        if kind in ("flops_ratio", "gflops"):
            cost = FlopsCost.from_model(model.vit)
        else:
            cost = MeasuredCost(data, "latency" if kind == "latency_ms" else "energy")  # type: ignore[arg-type]
        dense = cost.dense_cost(model.depth)
        goal = getattr(args, kind) * dense if kind == "flops_ratio" else getattr(args, kind)
        _check_reachable(cost, goal, dense, model.depth, args.compress_from, min_count)
        weight = args.energy_weight if kind == "energy_mj" else 1.0
        out.append((Budget(cost, goal, weight, kind),
                    {"kind": kind, "value": getattr(args, kind), "target": goal, "dense": dense, "unit": cost.unit,
                     **({"weight": weight} if len(given) > 1 else {})}))
    return out


def _check_reachable(cost, goal: float, dense: float, depth: int, compress_from: int, min_count: int) -> None:  # type: ignore[no-untyped-def]
    cheapest = cost.cost([(cost.num_tokens, cost.num_tokens)] * compress_from
                         + [(min_count, min_count)] * (depth - compress_from))
    if not cheapest <= goal <= dense * (1 + 1e-9):
        raise HwsearchError(
            f"budget {goal:.3f} {cost.unit} ({goal / dense:.3f} of dense) is not reachable: "
            f"reachable range is [{cheapest:.3f}, {dense:.3f}] {cost.unit} = [{cheapest / dense:.3f}, 1.0] of dense")


def optimize(args: argparse.Namespace) -> int:
    """Gradient search under the budget(s); under torchrun, data-parallel with rank 0 reporting."""
    import contextlib
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _optimize(args, rank=0)
    import torch.distributed as dist

    dist.init_process_group("gloo")  # the search runs on the CPU (gloo); nccl would need it on the GPU
    try:
        rank = dist.get_rank()
        with open(os.devnull, "w") as quiet, (contextlib.redirect_stdout(quiet) if rank else contextlib.nullcontext()):
            return _optimize(args, rank)
    finally:
        dist.destroy_process_group()


def _optimize(args: argparse.Namespace, rank: int) -> int:
    target = _target(args)
    ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
    if not ops or set(ops) - {"prune", "merge"}:
        raise HwsearchError(f"--ops must be prune, merge or prune,merge (got {args.ops!r})")
    if args.granularity < 1 or args.epochs < 1 or args.batch_size < 1:
        raise HwsearchError("--granularity, --epochs and --batch-size must be positive")
    vit, name, checkpoint = load_model(args.model, args.checkpoint, args.img_size)
    model = CompressedViT(vit)
    if not 0 <= args.compress_from < model.depth:
        raise HwsearchError(f"--compress-from must be in [0, {model.depth - 1}]")
    patches = model.num_tokens - model.num_prefix
    min_count = model.num_prefix + (patches % args.granularity or args.granularity)
    budgets = _budgets(args, target, model, name, min_count)
    search_set, held_out = _data(args, vit)
    config = SearchConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lam=args.lam,
                          granularity=args.granularity, compress_from=args.compress_from, ops=ops, seed=args.seed,
                          init=args.init)
    label = args.name or "-".join(f"{_LABELS[r['kind']]}{r['value']:g}" for _, r in budgets)
    out_dir = Path(args.out) / target.name / name / "schedules"
    resume = out_dir / f".{label}.search.json" if args.resume else None
    print(f"model: {name} ({checkpoint or 'random weights'}), {model.num_tokens} tokens, {model.depth} blocks; "
          f"search images: {len(search_set)} ({search_set.source})", flush=True)
    for budget, record in budgets:
        print(f"budget: {budget.target:.3f} {budget.cost.unit} = {budget.target / record['dense']:.3f} x dense "
              f"({record['dense']:.3f} {budget.cost.unit})" + (f", weight {budget.weight:g}" if len(budgets) > 1
                                                               else ""), flush=True)
    result = gradient_search(model, [b for b, _ in budgets], search_set, config, resume=resume,
                             progress=not args.no_progress)
    if rank != 0:
        return 0  # rank 0 measures, evaluates and writes
    print(f"schedule: {[list(c) for c in result.counts]}")
    _print_predicted(budgets, result)
    print(f"search took {result.seconds:.0f} s")
    measured = _check_latency(args, target, model, budgets, result) if args.latency_ms is not None else None
    agreement = fidelity(collect(model, held_out), collect(apply_schedule(vit, result.counts), held_out),
                         vit.num_classes > 0, held_out.labels)
    print("agreement with the dense model on " f"{len(held_out)} held-out images: "
          + ", ".join(f"{k} {v:.4f}" for k, v in agreement.items()))
    schedule = Schedule.from_counts(
        name, int(vit.patch_embed.img_size[0]), model.num_tokens, model.num_prefix, result.counts,
        budget={**budgets[0][1], **({"also": [r for _, r in budgets[1:]]} if len(budgets) > 1 else {})},
        predicted=_predicted_record(budgets, result),
        provenance={**provenance(), **model_provenance(name, checkpoint, search_set), "target": target.name,
                    "search_seconds": round(result.seconds, 1), "search_steps": result.steps,
                    "search": {k: v for k, v in vars(config).items()}, "fidelity": agreement,
                    **({"measured": measured} if measured else {})})
    path = schedule.save(out_dir / f"{label}.yaml")
    save_history(out_dir / f"{label}.history.json", result, config, {"schedule": str(path)})
    if resume is not None and resume.exists():
        resume.unlink()
    print(f"wrote {path}\nnext: hwsearch evaluate {path}")
    return 0


_LABELS = {"flops_ratio": "flops", "gflops": "gmacs", "latency_ms": "latency", "energy_mj": "energy"}


def _print_predicted(budgets: list[tuple], result) -> None:  # type: ignore[no-untyped-def]
    for budget, record in budgets:
        value = result.predicted_by[budget.name]
        print(f"predicted {budget.name}: {value:.3f} {budget.cost.unit} = {value / record['dense']:.3f} x dense "
              f"({100 * (value / budget.target - 1):+.2f}% vs budget)")


def _predicted_record(budgets: list[tuple], result) -> dict:  # type: ignore[no-untyped-def]
    """The schedule's predicted cost: the primary budget's at the top level, others under ``also``."""
    out: dict = {}
    for i, (budget, record) in enumerate(budgets):
        value = result.predicted_by[budget.name]
        entry = {"value": value, "unit": budget.cost.unit, "ratio_of_dense": value / record["dense"],
                 "error_vs_target": value / budget.target - 1.0}
        if isinstance(budget.cost, FlopsCost):
            entry.update({"gmacs": value, "flops_ratio": value / record["dense"],
                          **budget.cost.breakdown(result.counts)})
        if i == 0:
            out.update(entry)
        else:
            out.setdefault("also", {})[budget.name] = entry
    return out


def _check_latency(args: argparse.Namespace, target, model: CompressedViT, budgets: list[tuple], result) -> dict | None:  # type: ignore[no-untyped-def]
    """Measure the searched schedule here (local targets); local search when it misses the band.

    Updates ``result.counts`` and its predictions when the local search moves the schedule. The
    final figures are the real measurement (dense and compressed, one run) of the schedule kept.
    """
    if not target.is_local:
        print(f"predicted only: {target.name} is not this host, nothing was measured")
        return None
    measured = _measure_and_report(target, model, result.counts, args.latency_ms)
    ratio = measured["compressed"]["median_ms"] / args.latency_ms
    if not 0.90 <= ratio <= 1.03 and args.refine > 0:
        print(f"measured {ratio:.3f} x budget, outside [0.90, 1.03]: measured local search around the "
              f"schedule (at most {args.refine} measurements)", flush=True)
        result.counts, measured = _local_search(target, model, result.counts, args, measured)
        result.predicted_by = {b.name: b.cost.cost(result.counts) for b, _ in budgets}
        result.predicted = result.predicted_by[budgets[0][0].name]
        print(f"schedule: {[list(c) for c in result.counts]}")
        _print_predicted(budgets, result)
        print("its measurement from the local search (dense and compressed in one run):")
        _print_measurement(target, measured, target.batch, args.latency_ms)
    return measured


def _local_search(target, model: CompressedViT, counts, args: argparse.Namespace, first: dict):  # type: ignore[no-untyped-def]
    """Bisection along the dense<->minimal axis, one real measurement (with dense) per step;
    returns the schedule closest to the band's middle and that measurement."""
    from hwsearch.search.local import measured_search

    seen = {tuple(counts): first}

    def measure(candidate) -> float:  # type: ignore[no-untyped-def]
        # interleaved with the dense model, exactly like the first check: measured alone, the small
        # model runs with warmer caches and reads up to ~25% faster on this CPU
        seen[tuple(candidate)] = _measure(target, model, candidate)
        return float(seen[tuple(candidate)]["compressed"]["median_ms"])

    low = model.num_prefix + 1
    best, _ = measured_search(counts, measure, args.latency_ms, model.num_tokens, low, args.compress_from,
                              steps=args.refine, first=first["compressed"]["median_ms"],
                              log=lambda m: print(m, flush=True))
    return best, seen[tuple(best)]


def _measure(target, model: CompressedViT, counts, batch: int | None = None, here: bool = False) -> dict:  # type: ignore[no-untyped-def]
    """Dense and compressed deploy-mode models measured here, in one run (``here``: the target's
    hardware is this host although the target file says remote, i.e. deploy on the device)."""
    from hwsearch.measure import measure_models

    models = {"dense": CompressedViT(model.vit), "compressed": apply_schedule(model.vit, counts)}
    return measure_models(target, models, batch or target.batch, here=here)


def _print_measurement(target, stats: dict, batch: int, budget_ms: float | None) -> None:  # type: ignore[no-untyped-def]
    d, c = stats["dense"], stats["compressed"]
    versus = f"; budget {budget_ms:.2f} ms -> {c['median_ms'] / budget_ms:.3f} x budget" if budget_ms else ""
    print(f"measured on {target.name} ({target.backend}, batch {batch}, same run): compressed "
          f"{c['median_ms']:.2f} ms (p10-p90 {c['p10_ms']:.2f}-{c['p90_ms']:.2f}, cv {100 * c['cv']:.1f}%), "
          f"dense {d['median_ms']:.2f} ms; speedup {d['median_ms'] / c['median_ms']:.2f}x{versus}", flush=True)


def _measure_and_report(target, model: CompressedViT, counts, budget_ms: float | None,  # type: ignore[no-untyped-def]
                        batch: int | None = None, here: bool = False) -> dict:
    stats = _measure(target, model, counts, batch, here)
    _print_measurement(target, stats, batch or target.batch, budget_ms)
    return stats


def model_provenance(name: str, checkpoint: str | None, data: ImageSet) -> dict[str, object]:
    return {"model": name, "checkpoint": checkpoint, "data": data.source, "num_search_images": len(data)}


def evaluate(args: argparse.Namespace) -> int:
    schedule = load_schedule(args.schedule)
    target = _target(args, schedule.provenance.get("target") or None)
    checkpoint = args.checkpoint or schedule.provenance.get("checkpoint")
    vit, name, checkpoint = load_model(schedule.model, checkpoint, schedule.img_size)
    dense = CompressedViT(vit)
    compressed = apply_schedule(vit, schedule)
    args.num_images = max(args.num_images, 2)
    _, held_out = _data(args, vit)
    classifier = vit.num_classes > 0
    ref = collect(dense, held_out)
    report = fidelity(ref, collect(compressed, held_out), classifier, held_out.labels)
    cost = FlopsCost.from_model(vit)
    gmacs = {"dense": cost.dense_cost(dense.depth), "compressed": cost.cost(schedule.counts())}
    batch = args.batch or target.batch
    host = target if target.is_local else load_target("cpu_torch")
    if args.threads:
        host.raw["threads"] = args.threads
    from hwsearch.measure import measure_models

    timing = measure_models(host, {"dense": dense, "compressed": compressed}, batch)
    speedup = timing["dense"]["median_ms"] / timing["compressed"]["median_ms"]
    threads = host.raw.get("threads")
    print(f"model: {name} ({checkpoint or 'random weights'}); held-out images: {len(held_out)} ({held_out.source})")
    print(f"{'':12s}{'GMACs':>10s}{'latency ms (median, p10-p90)':>34s}")
    for key in ("dense", "compressed"):
        t = timing[key]
        print(f"{key:12s}{gmacs[key]:10.3f}{t['median_ms']:14.2f} ({t['p10_ms']:.2f}-{t['p90_ms']:.2f}) "
              f"cv {100 * t['cv']:.1f}%")
    print(f"speedup: {speedup:.2f}x measured on this host ({host.name}: {host.backend}, batch {batch}, "
          f"{threads} threads, same run{'' if host is target else f'; {target.name} is not this host'}); "
          f"GMACs ratio {gmacs['compressed'] / gmacs['dense']:.3f}")
    for key, value in report.items():
        print(f"{key}: {value:.4f}")
    out = Path(args.schedule).with_suffix(".eval.json")
    write_json(out, {"schedule": str(args.schedule), "gmacs": gmacs, "latency": timing, "speedup": speedup,
                     "batch": batch, "threads": threads, "measured_on": host.name, "backend": host.backend,
                     "fidelity": report,
                     "held_out": {"source": held_out.source, "images": len(held_out)},
                     "provenance": provenance()})
    print(f"wrote {out}")
    return 0


__all__ = ["optimize", "evaluate"]


def profile(args: argparse.Namespace) -> int:
    """Measure the parts of a model on a target (locally), or make/import a device bundle."""
    from hwsearch.profile import make_tarball, meta_for, read_profile, reuse_or_build, temp_bundle_dir, write_profile

    target = _target(args)
    vit, name, _ = load_model(args.model, args.checkpoint, args.img_size)
    model = CompressedViT(vit)
    batches = [args.batch] if args.batch else list(target.batch_sizes)
    out_dir = Path(args.out) / target.name / name
    meta = meta_for(target, name, model, batches)
    if args.import_csv:
        rows = read_profile(args.import_csv)
        _check_rows(rows, meta, args.import_csv)
        path, report = write_profile(Path(args.import_csv), out_dir, {**meta, "imported_from": args.import_csv})
        return _print_profile(path, report)
    if args.bundle:
        work = temp_bundle_dir()
        try:
            reuse_or_build(work, model, name, target, batches, args.whole_models)
            tar = make_tarball(work, Path(args.bundle))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"wrote {tar}: copy it to the device, then there:\n  tar xzf {tar.name} && python3 -m profilers run "
              f"bundle/\nand here: hwsearch profile --target {target.name} --import measurements.csv")
        return 0
    if not target.is_local:
        raise HwsearchError(f"target {target.name} is not this host: use --bundle OUT.tar.gz, run "
                            f"'python3 -m profilers run bundle/' on the device, then --import measurements.csv")
    _setup(target, args.apply_setup)
    return _print_profile(*_profile_here(target, model, name, batches, out_dir, args.whole_models,
                                         not args.no_progress))


def _profile_here(target, model: CompressedViT, name: str, batches: list[int], out_dir: Path,  # type: ignore[no-untyped-def]
                  whole_models: int, progress_bar: bool) -> tuple[Path, dict]:
    """Measure the profile on this host (resumable) and write profile.csv + meta.json."""
    from tqdm import tqdm

    from hwsearch.profile import meta_for, reuse_or_build, write_profile
    from profilers.backends import BackendUnavailable
    from profilers.runner import run_bundle

    meta = meta_for(target, name, model, batches)
    work = reuse_or_build(out_dir / ".profile-work", model, name, target, batches, whole_models)
    bar = tqdm(desc=f"profiling {name} on {target.name}", unit="graph", disable=not progress_bar)

    def progress(i: int, total: int, graph: str) -> None:
        bar.total = total
        bar.n = i
        bar.set_postfix_str(graph)
        bar.refresh()

    try:
        csv_path = run_bundle(work, work / "measurements.csv", progress=progress)
    except BackendUnavailable as exc:
        raise HwsearchError(str(exc)) from None
    bar.close()
    host = json.loads(csv_path.with_suffix(".host.json").read_text())
    path, report = write_profile(csv_path, out_dir, {**meta, "device": host})
    shutil.rmtree(work, ignore_errors=True)
    return path, report


def _check_rows(rows: list[dict], meta: dict, where: str) -> None:
    hashes = {r["model_hash"] for r in rows}
    targets = {r["target"] for r in rows}
    if hashes != {meta["model_hash"]}:
        raise HwsearchError(f"{where}: measurements are from another model ({', '.join(sorted(hashes))}, "
                            f"expected {meta['model']} {meta['model_hash']})")
    if targets != {meta["target"]}:
        raise HwsearchError(f"{where}: measurements are for target {', '.join(sorted(targets))}, not {meta['target']}")


def _setup(target, apply: bool) -> None:  # type: ignore[no-untyped-def]
    """Run the target's setup steps only when asked (they change clocks/power modes)."""
    import subprocess

    steps = target.raw.get("setup") or []
    if steps and not apply:
        print(f"note: setup steps not applied (use --apply-setup): {'; '.join(steps)}")
    for step in steps if apply else []:
        print(f"setup: {step}")
        if subprocess.run(step, shell=True).returncode != 0:
            raise HwsearchError(f"setup step failed: {step}")


def _print_profile(path: Path, report: dict) -> int:
    print(f"wrote {path} and {path.with_name('meta.json')}")
    for batch, r in report.items():
        if r["mape"] is not None:
            print(f"additivity ({batch}): sum of parts vs {r['whole_models']} measured whole models: "
                  f"MAPE {100 * r['mape']:.1f}%, within 5% {100 * r['within_5pct']:.0f}%, "
                  f"within 10% {100 * r['within_10pct']:.0f}%; block position CV {100 * r['block_position_cv']:.1f}%")
            c = r.get("drift_corrected")
            if c:
                print(f"  drift-corrected (reference graph per chunk): MAPE {100 * c['mape']:.1f}%, within 5% "
                      f"{100 * c['within_5pct']:.0f}%, within 10% {100 * c['within_10pct']:.0f}%; block position "
                      f"CV {100 * c['block_position_cv']:.1f}%")
    return 0


def report(args: argparse.Namespace) -> int:
    """Plots: latency (and energy) vs token count per part, with the p10-p90 band."""
    from hwsearch.profile import read_profile
    from hwsearch.report import plot_profile

    rows = read_profile(args.profile)
    out = Path(args.out_png) if args.out_png else Path(args.profile).with_name("report") / "profile.png"
    plot_profile(rows, out)
    print(f"wrote {out}")
    return 0


def fit(args: argparse.Namespace) -> int:
    """Fit costmodel.json from results/<target>/<model>/profile.csv."""
    from hwsearch.fit import fit_costmodel, save_costmodel

    target = _target(args)
    name = args.model or DEFAULT_MODEL
    folder = Path(args.out) / target.name / name
    model = fit_costmodel(folder / "profile.csv", args.batch)
    path = save_costmodel(model, folder / "costmodel.json")
    for quantity, q in model["quantities"].items():
        for part, p in q["parts"].items():
            errors = ", ".join(f"{k} {100 * v:.1f}%" if v is not None else f"{k} n/a (too few points)"
                               for k, v in p["cv_mape"].items())
            print(f"{quantity} {part}: {p['regressor']} (CV MAPE: {errors}); table {p['low']}..{p['high']} tokens")
        c = q["correction"]
        if c["models"] >= 2:
            print(f"{quantity} whole-model correction on {c['models']} measured models: {c['overhead']:.2f} "
                  f"{q['unit']} + {c['scale']:.3f} x parts; in-sample MAPE {100 * c['in_sample_mape_before']:.1f}% "
                  f"-> {100 * c['in_sample_mape_after']:.1f}%")
    if "energy" not in model["quantities"]:
        print("energy: not in this profile (no power meter readings); latency only")
    if args.measure:
        _accuracy(args, target, name, folder, model, path)
    print(f"wrote {path}")
    return 0


def _accuracy(args: argparse.Namespace, target, name: str, folder: Path, data: dict, path: Path) -> None:  # type: ignore[no-untyped-def]
    """Measure whole models here; report leave-one-out accuracy; keep the correction fitted on them."""
    from hwsearch.accuracy import evaluate_costmodel, scatter_png
    from hwsearch.cost import MeasuredCost
    from hwsearch.fit import save_costmodel

    vit, _, _ = load_model(args.model, None, args.img_size)  # weights do not change latency
    report = evaluate_costmodel(MeasuredCost(data), target, CompressedViT(vit), args.measure)
    print(f"accuracy on {report['models']} whole models measured now (leave-one-out correction): MAPE "
          f"{100 * report['mape']:.1f}%, within 5% {100 * report['within_5pct']:.0f}%, within 10% "
          f"{100 * report['within_10pct']:.0f}%, Spearman {report['spearman']:.3f}")
    latency = data["quantities"]["latency"]
    latency["correction"] = {**report["correction"], "source": "whole models measured by hwsearch fit --measure"}
    latency["accuracy"] = {k: v for k, v in report.items() if k != "correction"}
    save_costmodel(data, path)
    print(f"wrote {scatter_png(report, folder / 'report' / 'costmodel_scatter.png', f'{name} on {target.name}')}")



def sample(args: argparse.Namespace) -> int:
    """Optuna study of sampled schedules with the gradient result and hand baselines in it."""
    from hwsearch.studies import print_importances, run_sample

    target = _target(args)
    vit, name, _ = load_model(args.model, args.checkpoint, args.img_size)
    model = CompressedViT(vit)
    if not 0 <= args.compress_from < model.depth:
        raise HwsearchError(f"--compress-from must be in [0, {model.depth - 1}]")
    if args.eval_images < 1:
        raise HwsearchError("--eval-images must be positive")
    min_count = model.num_prefix + 1
    if all(getattr(args, k) is None for k in BUDGETS):
        _default_sample_budget(args, target, model, name)
    budgets = _budgets(args, target, model, name, min_count)
    if len(budgets) > 1:
        raise HwsearchError("sample takes one budget (its cost is the second objective)")
    search_set, _ = _data(args, vit)
    # trials are judged on images of the search photos (what the gradient search trains on), spread
    # over the whole set; held-out photos stay for hwsearch evaluate on the schedule picked
    pick = torch.linspace(0, len(search_set) - 1, min(args.eval_images, len(search_set))).long()
    eval_set = ImageSet(search_set.images[pick], search_set.labels[pick] if search_set.labels is not None else None,
                        f"{search_set.source} (selection subset)")
    study = run_sample(args, target, model, name, budgets[0][0], search_set, eval_set)
    print_importances(study)
    print(f"next: hwsearch compare --target {target.name} --study {study.study_name}"
          + (f" --storage {args.storage}" if args.storage else ""))
    return 0


def _default_sample_budget(args: argparse.Namespace, target, model: CompressedViT, name: str) -> None:  # type: ignore[no-untyped-def]
    """No budget given: the newest latency schedule's budget (and that schedule as the gradient
    result), else 0.7 x the predicted dense latency."""
    from hwsearch.cost import MeasuredCost

    schedules = sorted((Path(args.out) / target.name / name / "schedules").glob("latency*.yaml"),
                       key=lambda p: p.stat().st_mtime)
    for path in reversed(schedules):
        schedule = load_schedule(path)
        if schedule.budget.get("kind") == "latency_ms" and not schedule.budget.get("also"):
            args.latency_ms = float(schedule.budget["value"])
            if args.gradient == "auto":
                args.gradient = str(path)
            print(f"budget: --latency-ms {args.latency_ms:g} and gradient result from {path}")
            return
    cost = MeasuredCost(_costmodel_data(args, target, model, name))
    args.latency_ms = round(0.7 * cost.dense_cost(model.depth), 3)
    print(f"budget: --latency-ms {args.latency_ms:g} (0.7 x predicted dense; no latency schedule found)")


def compare(args: argparse.Namespace) -> int:
    """Table, Pareto and history plots, HTML page from a study."""
    from hwsearch.compare import summarize, table, write_report
    from hwsearch.studies import open_study, print_importances, question, study_dir, trial_rows

    target = _target(args)
    name = args.model or DEFAULT_MODEL
    folder = study_dir(args.out, target.name, name)
    if not args.study:
        journals = sorted(folder.glob("*.journal"), key=lambda p: p.stat().st_mtime)
        if args.storage or not journals:
            raise HwsearchError(f"give --study NAME (no study journal under {folder})")
        args.study = journals[-1].stem
    study = open_study(args, folder, args.study, None)
    rows = trial_rows(study)
    if not rows:
        raise HwsearchError(f"study {args.study!r} has no complete trials")
    attrs = question(study)
    limit = float(attrs["budget"]) * (1 + float(attrs.get("tolerance", 0.0)))
    summary = summarize(rows, limit)
    print(f"study {args.study}: {len(rows)} complete trials; quality = {attrs['quality']}; cost = predicted "
          f"{attrs['cost']} ({attrs['unit']}); budget {float(attrs['budget']):.3f}")
    print(table(summary, attrs["unit"]))
    importances = print_importances(study)
    paths = write_report(folder / args.study, study, rows, summary, importances, float(attrs["budget"]),
                         attrs["unit"], attrs["quality"])
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"dashboard: optuna-dashboard {args.storage or folder / (args.study + '.journal')}")
    return 0


def _deploy_inputs(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """Schedule, target, its model (refused when the schedule does not fit it) and the output folder."""
    from hwsearch.deploy import check_out_dir

    schedule = load_schedule(args.schedule)
    target = _target(args, schedule.provenance.get("target") or None)
    if args.model and args.model != schedule.model:
        raise HwsearchError(f"{args.schedule} is a schedule for {schedule.model}, not {args.model}")
    vit, name, checkpoint = load_model(schedule.model, args.checkpoint or schedule.provenance.get("checkpoint"),
                                       schedule.img_size)
    schedule.check_model(CompressedViT(vit))
    out_dir = check_out_dir(Path(args.out_dir) if args.out_dir else Path(args.out) / target.name / name / "engines")
    return schedule, target, vit, name, out_dir


def _parity_images(args: argparse.Namespace, vit) -> torch.Tensor:  # type: ignore[no-untyped-def]
    from hwsearch.data import normalize

    args.data, args.num_images = getattr(args, "data", None), max(2, 5 * args.parity_images)
    _, held_out = _data(args, vit)
    return normalize(held_out.images[:args.parity_images], vit.pretrained_cfg)


def _print_export(report) -> None:  # type: ignore[no-untyped-def]
    from hwsearch.deploy import PARITY_TOLERANCE as PARITY

    ops = ", ".join(f"{k} {v}" for k, v in sorted(report.op_types.items(), key=lambda kv: -kv[1]))
    print(f"wrote {report.path}: opset {report.opset}, batch {report.batch}, {report.nodes} nodes ({ops})")
    print(f"ONNX Runtime vs PyTorch on {report.parity_images} held-out images: max abs diff "
          f"{report.max_abs_diff:.2e} (bound {PARITY:g}), output cosine {report.output_cosine:.6f}"
          + (f", top-1 agreement {report.top1_agreement:.4f}" if report.top1_agreement is not None else ""))
    if report.dynamic_ops:
        print(f"note: data-dependent ops in the graph: {', '.join(report.dynamic_ops)}")
    if report.max_abs_diff > PARITY:
        raise HwsearchError(f"ONNX export differs from PyTorch by {report.max_abs_diff:.2e} > {PARITY:g}")


def export(args: argparse.Namespace) -> int:
    """Static-shape ONNX of a schedule's deploy-mode model, checked against PyTorch."""
    from hwsearch.deploy import export_onnx

    schedule, target, vit, name, out_dir = _deploy_inputs(args)
    report = export_onnx(apply_schedule(vit, schedule), out_dir / f"{Path(args.schedule).stem}.onnx",
                         args.batch or target.batch, _parity_images(args, vit), args.opset)
    _print_export(report)
    return 0


def deploy(args: argparse.Namespace) -> int:
    """Export, then build/measure for the target (or a device bundle when its hardware is absent)."""
    from hwsearch.deploy import export_onnx, optimize_for_onnxruntime, tensorrt_available

    schedule, target, vit, name, out_dir = _deploy_inputs(args)
    stem, batch = Path(args.schedule).stem, args.batch or target.batch
    model = apply_schedule(vit, schedule)
    images = _parity_images(args, vit)
    report = export_onnx(model, out_dir / f"{stem}.onnx", batch, images, args.opset)
    _print_export(report)
    info: dict = {"schedule": str(args.schedule), "model": name, "target": target.name, "backend": target.backend,
                  "precision": target.precision, "batch": batch, "export": vars(report),
                  "budget": schedule.budget, "predicted": schedule.predicted}
    if target.backend == "tensorrt" and tensorrt_available():  # on the device itself
        info.update(_deploy_tensorrt(target, model, out_dir, stem, report, images))
        info["measured"] = _measure_deployed(target, vit, schedule, batch)
    elif target.is_local:
        if target.backend == "onnxruntime":
            optimized = optimize_for_onnxruntime(out_dir / f"{stem}.onnx", out_dir / f"{stem}.ort.onnx",
                                                 target.raw.get("threads"))
            info["optimized_onnx"] = str(optimized)
            print(f"wrote {optimized} (ONNX Runtime's optimized graph)")
        info["measured"] = _measure_deployed(target, vit, schedule, batch)
    else:
        info.update(_device_bundle(target, vit, name, model, out_dir, stem, batch, schedule))
    path = out_dir / f"{stem}.deploy.json"
    write_json(path, {**info, "provenance": provenance()})
    print(f"wrote {path}")
    return 0


def _measure_deployed(target, vit, schedule: Schedule, batch: int) -> dict:  # type: ignore[no-untyped-def]
    """Dense and deployed model measured here in one run; measured vs predicted vs budget."""
    budget = schedule.budget.get("target") if schedule.budget.get("kind") == "latency_ms" else None
    stats = _measure_and_report(target, CompressedViT(vit), schedule.counts(), budget, batch,
                                here=not target.is_local)
    predicted = schedule.predicted.get("value") if schedule.predicted.get("unit") == "ms" else None
    if predicted is not None:
        print(f"predicted {predicted:.2f} ms (cost model) -> measured / predicted "
              f"{stats['compressed']['median_ms'] / predicted:.3f}")
    return {**stats, "budget_ms": budget, "predicted_ms": predicted}


def _deploy_tensorrt(target, model: CompressedViT, out_dir: Path, stem: str, report,  # type: ignore[no-untyped-def]
                     images: torch.Tensor) -> dict:
    """Engine build + accuracy of the engine vs PyTorch (runs where TensorRT is installed)."""
    import copy

    from hwsearch.deploy import build_tensorrt

    fp16 = None
    if target.precision == "fp16":
        fp16 = out_dir / f"{stem}.fp16.onnx"
        example = torch.zeros(report.batch, 3, *model.vit.patch_embed.img_size).half()
        torch.onnx.export(copy.deepcopy(model).half(), (example,), str(fp16), input_names=["images"],
                          output_names=["output"], opset_version=report.opset, dynamo=False)
    built = build_tensorrt(Path(report.path), out_dir / f"{stem}.engine", target, fp16)
    print(f"wrote {built['engine']} (TensorRT {built['tensorrt']}, {built['gpu']}, {target.precision}, "
          f"built in {built['build_seconds']:.0f} s); trtexec line in {stem}.trtexec.txt")
    built["engine_vs_pytorch"] = _engine_agreement(Path(built["engine"]), model, images, report.batch)
    return built


def _engine_agreement(engine: Path, model: CompressedViT, images: torch.Tensor, batch: int) -> dict:
    """The engine's outputs vs PyTorch fp32 deploy mode on the held-out images (fp16 drift)."""
    import numpy as np

    from hwsearch.deploy import agreement, batches
    from profilers.backends.tensorrt_backend import run_engine

    ours, theirs = [], []
    with torch.no_grad():
        for chunk, real in batches(images, batch):
            ours.append(model(chunk).numpy()[:real])
            theirs.append(run_engine(engine, {"images": chunk.numpy()})["output"][:real])
    result = {**agreement(np.concatenate(ours), np.concatenate(theirs), model.vit.num_classes > 0),
              "images": len(images)}
    top1 = result["top1_agreement"]
    print(f"engine vs PyTorch fp32 on {len(images)} held-out images: max abs diff {result['max_abs_diff']:.2e}, "
          f"cosine {result['output_cosine']:.5f}" + (f", top-1 agreement {top1:.4f}" if top1 is not None else ""))
    return result


def _device_bundle(target, vit, name: str, model: CompressedViT, out_dir: Path, stem: str, batch: int,  # type: ignore[no-untyped-def]
                   schedule: Schedule) -> dict:
    """Export only on this host, plus a bundle that builds and measures the engine on the device."""
    from hwsearch.profile import Exporter, make_tarball, model_hash, temp_bundle_dir
    from profilers.bundle import Bundle

    work = temp_bundle_dir()
    try:
        exporter = Exporter(work, CompressedViT(vit), target)
        exporter.add("dense", "model", CompressedViT(vit), model.num_tokens, batch)
        exporter.add(stem, "model", model, model.num_tokens, batch, schedule=[list(c) for c in schedule.counts()])
        Bundle(work, name, model_hash(CompressedViT(vit), name), dict(target.raw), exporter.graphs).save()
        readme = (f"# hwsearch deploy bundle: {name}, schedule {stem}, target {target.name}\n"
                  "On the device:\n"
                  "    python3 -m profilers build-engine bundle/   # TensorRT engines in bundle/engines/ "
                  "(+ trtexec lines)\n"
                  "    python3 -m profilers run bundle/            # dense and compressed timed, "
                  "bundle/measurements.csv\n")
        tar = make_tarball(work, out_dir / f"{stem}.{target.name}.bundle.tar.gz", readme)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    why = ("TensorRT is not installed on this host" if target.backend == "tensorrt"
           else f"{target.name} is not this host")
    print(f"{why}: exported ONNX only, plus {tar} to build and measure on the device "
          f"(python3 -m profilers build-engine bundle/ && python3 -m profilers run bundle/)")
    return {"engine": None, "status": f"exported only: {why}", "device_bundle": str(tar)}
