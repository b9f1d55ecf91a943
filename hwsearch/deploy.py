"""Deploy a schedule: static-shape ONNX (checked), then an engine or session for the target.

``export_onnx`` writes the deploy-mode model with the schedule's static token counts (opset 17,
fixed batch), checks it with ``onnx.checker`` and compares ONNX Runtime with PyTorch on real
images. The rest prepares what each target runs: an optimized ONNX Runtime graph, a TensorRT
engine (with the profilers' TensorRT code: TensorRT 10 FP16 flag / 11 strongly typed, timing
cache, DLA, workspace, the equivalent trtexec line), or, on a host without the target's
hardware, a bundle to build and measure on the device.
"""
from __future__ import annotations

import importlib.util
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwsearch.errors import HwsearchError
from hwsearch.io import atomic_path
from hwsearch.models import CompressedViT
from hwsearch.parts import example_inputs

# ops that make shapes data-dependent or add control flow: TensorRT handles them poorly
DYNAMIC_OPS = {"NonZero", "Loop", "If", "Scan", "Unique", "Compress", "NonMaxSuppression"}
PARITY_TOLERANCE = 1e-3


@dataclass
class ExportReport:
    path: str
    opset: int
    batch: int
    nodes: int
    op_types: dict[str, int]
    dynamic_ops: list[str]
    max_abs_diff: float
    parity_images: int
    output_cosine: float
    top1_agreement: float | None


def export_onnx(model: CompressedViT, path: Path, batch: int, images: torch.Tensor, opset: int = 17) -> ExportReport:
    """Export, check and compare with PyTorch on ``images`` (normalized, any count)."""
    import onnx

    example = example_inputs("model", model, batch, model.num_tokens)["images"]
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(tmp), input_names=["images"], output_names=["output"],
                          opset_version=opset, dynamo=False)
        onnx.checker.check_model(str(tmp), full_check=True)
    graph = onnx.load(str(path)).graph
    ops = Counter(n.op_type for n in graph.node)
    torch_out, onnx_out = compare_outputs(model, path, images, batch)
    diff = agreement(torch_out, onnx_out, model.vit.num_classes > 0)
    return ExportReport(str(path), opset, batch, len(graph.node), dict(sorted(ops.items())),
                        sorted(set(ops) & DYNAMIC_OPS), diff["max_abs_diff"], len(images), diff["output_cosine"],
                        diff["top1_agreement"])


def agreement(reference: np.ndarray, other: np.ndarray, classifier: bool) -> dict[str, Any]:
    """Max abs difference, mean output cosine and (classifiers) top-1 agreement of two output sets."""
    cos = torch.nn.functional.cosine_similarity(torch.from_numpy(other), torch.from_numpy(reference), dim=-1)
    top1 = float((other.argmax(-1) == reference.argmax(-1)).mean()) if classifier else None
    return {"max_abs_diff": float(np.abs(other - reference).max()), "output_cosine": float(cos.mean()),
            "top1_agreement": top1}


def batches(images: torch.Tensor, batch: int) -> list[tuple[torch.Tensor, int]]:
    """Fixed-size chunks (the last padded by repeating) and how many rows of each are real."""
    out = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        real = len(chunk)
        if real < batch:
            chunk = torch.cat([chunk, chunk[-1:].expand(batch - real, *chunk.shape[1:])])
        out.append((chunk, real))
    return out


def compare_outputs(model: CompressedViT, onnx_path: Path, images: torch.Tensor, batch: int,
                    threads: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(PyTorch outputs, ONNX Runtime outputs) of the same images."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    ours, theirs = [], []
    with torch.no_grad():
        for chunk, real in batches(images, batch):
            ours.append(model(chunk).numpy()[:real])
            theirs.append(session.run(None, {"images": chunk.numpy()})[0][:real])
    return np.concatenate(ours), np.concatenate(theirs)


def optimize_for_onnxruntime(onnx_path: Path, out: Path, threads: int | None) -> Path:
    """Save ONNX Runtime's optimized graph (what the CPU target runs), atomically."""
    import onnxruntime as ort

    with atomic_path(out) as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.optimized_model_filepath = str(tmp)
        if threads:
            opts.intra_op_num_threads = int(threads)
        ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return out


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


def check_out_dir(path: Path) -> Path:
    if path.exists() and not path.is_dir():
        raise HwsearchError(f"output path {path} is an existing file, not a folder")
    return path


__all__ = ["export_onnx", "ExportReport", "agreement", "optimize_for_onnxruntime", "build_tensorrt",
           "tensorrt_available", "check_out_dir", "PARITY_TOLERANCE"]
