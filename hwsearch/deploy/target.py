"""``hwsearch export`` / ``deploy``: the schedule's checked ONNX, then what its target runs (ONNX
Runtime's optimized graph, a TensorRT engine, or a device bundle), measured where possible."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hwsearch.cost.base import latency_budget
from hwsearch.data import image_sets, normalize
from hwsearch.deploy.bundle import device_bundle
from hwsearch.deploy.device import may_measure, this_device
from hwsearch.deploy.onnx import check_out_dir, describe_export, export_onnx, optimize_for_onnxruntime
from hwsearch.deploy.tensorrt import deploy_tensorrt, tensorrt_available
from hwsearch.errors import HwsearchError
from hwsearch.io import provenance, write_json
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.model.zoo import load_schedule_model
from hwsearch.profiling.measure import describe_measurement, measure_pair
from hwsearch.schedule import Schedule, load_schedule
from hwsearch.targets import Target
from hwsearch.workspace import Workspace


def deploy_inputs(path: str, target: Target, model: str | None, checkpoint: str | None,
                  out: Path, out_dir: str | None) -> tuple[Schedule, Any, str, Path]:
    """The schedule, its model (refused when the schedule does not fit it) and the output folder."""
    schedule = load_schedule(path)
    if model and model != schedule.model:
        raise HwsearchError(f"{path} is a schedule for {schedule.model}, not {model}")
    vit, name, _ = load_schedule_model(schedule, checkpoint)
    schedule.check_model(CompressedViT(vit))
    folder = Path(out_dir) if out_dir else Workspace(out, target, name).engines
    return schedule, vit, name, check_out_dir(folder)


def parity_images(vit: Any, count: int) -> torch.Tensor:
    """Normalized held-out images for the parity checks."""
    _, held_out = image_sets(vit, None, max(2, 5 * count))
    return normalize(held_out.images[:count], vit.pretrained_cfg)


def export_schedule(path: str, target: Target, model: str | None, checkpoint: str | None, out: Path,
                    out_dir: str | None, batch: int | None, opset: int, parity: int) -> Path:
    schedule, vit, _, folder = deploy_inputs(path, target, model, checkpoint, out, out_dir)
    report = export_onnx(apply_schedule(vit, schedule), folder / f"{Path(path).stem}.onnx", batch or target.batch,
                         parity_images(vit, parity), opset)
    describe_export(report)
    return Path(report.path)


def deploy_schedule(path: str, target: Target, model: str | None, checkpoint: str | None, out: Path,
                    out_dir: str | None, batch: int | None, opset: int, parity: int, here: bool = False) -> Path:
    """Export, then build/measure for the target on its own device (or ``here``: on this one, said so);
    elsewhere a device bundle."""
    schedule, vit, name, folder = deploy_inputs(path, target, model, checkpoint, out, out_dir)
    stem, batch = Path(path).stem, batch or target.batch
    compressed = apply_schedule(vit, schedule)
    images = parity_images(vit, parity)
    report = export_onnx(compressed, folder / f"{stem}.onnx", batch, images, opset)
    describe_export(report)
    info: dict = {"schedule": str(path), "model": name, "target": target.name, "backend": target.backend,
                  "precision": target.precision, "batch": batch, "export": vars(report),
                  "budget": schedule.budget, "predicted": schedule.predicted}
    device = this_device(target.device)
    measure, why = may_measure(target, device, here)
    print(why, flush=True)
    if measure and target.backend == "tensorrt" and tensorrt_available():
        info.update(deploy_tensorrt(target, compressed, folder, stem, report, images))
        info.update(measured=measure_deployed(target, compressed, schedule, batch, device), measured_on=device)
    elif measure and target.backend != "tensorrt":
        if target.backend == "onnxruntime":
            optimized = optimize_for_onnxruntime(folder / f"{stem}.onnx", folder / f"{stem}.ort.onnx",
                                                 target.raw.get("threads"))
            info["optimized_onnx"] = str(optimized)
            print(f"wrote {optimized} (ONNX Runtime's optimized graph)")
        info.update(measured=measure_deployed(target, compressed, schedule, batch, device), measured_on=device)
    else:
        info.update(device_bundle(target, vit, name, compressed, folder, stem, batch, schedule))
    out_json = folder / f"{stem}.deploy.json"
    write_json(out_json, {**info, "provenance": provenance()})
    print(f"wrote {out_json}")
    return out_json


def measure_deployed(target: Target, model: CompressedViT, schedule: Schedule, batch: int,
                     device: str) -> dict[str, Any]:
    """Dense and deployed model measured here (on ``device``) in one run; measured vs predicted vs budget."""
    stats = measure_pair(target, CompressedViT(model.vit, merging=schedule.merging), schedule.counts(), batch,
                         here=not target.is_local)
    given = latency_budget(target, str(schedule.budget.get("kind")), float(schedule.budget.get("value", 0.0)))
    budget = given.at(stats["dense"].median_ms) if given else None  # a speedup: dense measured in this run / S
    print(describe_measurement(target, stats, batch, budget) + f" [measured on {device}]",
          flush=True)
    predicted = schedule.predicted.get("value") if schedule.predicted.get("unit") == "ms" else None
    if predicted is not None:
        print(f"predicted {predicted:.2f} ms (cost model) -> measured / predicted "
              f"{stats['compressed'].median_ms / predicted:.3f}")
    return {**{k: m.as_dict() for k, m in stats.items()}, "budget_ms": budget, "predicted_ms": predicted}
