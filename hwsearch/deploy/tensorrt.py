"""TensorRT engines for a schedule (runs where TensorRT is installed: a GPU or Jetson): build with
the profilers' TensorRT code (TensorRT 10 FP16 flag / 11 strongly typed from an fp16 ONNX, timing
cache, DLA, workspace, the equivalent trtexec line) and compare the engine with PyTorch fp32."""
from __future__ import annotations

import importlib.util
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwsearch.deploy.onnx import ExportReport, agreement, paired_outputs
from hwsearch.io import atomic_path
from hwsearch.model.parts import example_inputs
from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.export import export_onnx_graph


def tensorrt_available() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def build_tensorrt(onnx_path: Path, engine: Path, target: Any, onnx_fp16: Path | None) -> dict[str, Any]:
    """Build the engine with the TensorRT Python API; the trtexec equivalent is written beside it.

    Runs only where TensorRT is installed (a GPU or Jetson); not exercised in this project's CI.
    """
    import tensorrt as trt

    from profilers.backends.tensorrt_backend import build_engine, build_plan, trtexec_command

    plan = build_plan(trt.__version__, target.precision, target.raw.get("tensorrt") or {})
    source = onnx_fp16 if plan.onnx_field == "onnx_fp16" and onnx_fp16 is not None else onnx_path
    cache = engine.parent / "timing.cache"
    started = time.perf_counter()
    blob = build_engine(source, plan, cache if plan.timing_cache else None)
    seconds = time.perf_counter() - started
    with atomic_path(engine) as tmp:
        tmp.write_bytes(blob)
    command = trtexec_command(plan, source.name, engine.name, cache.name if plan.timing_cache else None)
    engine.with_suffix(".trtexec.txt").write_text(
        command + "\n# cross-check the timing:\ntrtexec --loadEngine=" + engine.name + " --useCudaGraph "
        "--noDataTransfers --useSpinWait\n")
    return {"engine": str(engine), "tensorrt": trt.__version__, "plan": asdict(plan), "build_seconds": seconds,
            "onnx_built": str(source), "trtexec": command, "gpu": _gpu_name()}


def _gpu_name() -> str | None:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def deploy_tensorrt(target: Any, model: CompressedViT, out_dir: Path, stem: str, report: ExportReport,
                    images: torch.Tensor) -> dict[str, Any]:
    """Engine build + agreement of the engine with PyTorch (runs where TensorRT is installed)."""
    fp16 = None
    if target.precision == "fp16":
        fp16 = out_dir / f"{stem}.fp16.onnx"
        example = example_inputs("model", model, report.batch, model.num_tokens)["images"]
        export_onnx_graph(model, (example,), fp16, ["images"], ["output"], report.opset, fp16=True)
    built = build_tensorrt(Path(report.path), out_dir / f"{stem}.engine", target, fp16)
    print(f"wrote {built['engine']} (TensorRT {built['tensorrt']}, {built['gpu']}, {target.precision}, "
          f"built in {built['build_seconds']:.0f} s); trtexec line in {stem}.trtexec.txt")
    built["engine_vs_pytorch"] = engine_agreement(Path(built["engine"]), model, images, report.batch)
    return built


def engine_agreement(engine: Path, model: CompressedViT, images: torch.Tensor, batch: int) -> dict[str, Any]:
    """The engine's outputs vs PyTorch fp32 deploy mode on the held-out images (fp16 drift)."""
    from profilers.backends.tensorrt_backend import run_engine

    ours, theirs = paired_outputs(model, lambda x: np.asarray(run_engine(engine, {"images": x})["output"]),
                                  images, batch)
    result = {**agreement(ours, theirs, model.vit.num_classes > 0), "images": len(images)}
    top1 = result["top1_agreement"]
    print(f"engine vs PyTorch fp32 on {len(images)} held-out images: max abs diff {result['max_abs_diff']:.2e}, "
          f"cosine {result['output_cosine']:.5f}" + (f", top-1 agreement {top1:.4f}" if top1 is not None else ""))
    return result
