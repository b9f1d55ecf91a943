"""``hwsearch profile``: export the parts of a model as a bundle, measure it, write profile.csv.

Graphs per batch size B (static shapes): ``attn`` and ``mlp`` at every count of the target's token
grid; ``block`` (dense) at full length for every block position (position-effect check);
``compress`` at ~20 sampled (n, prune_kept, merge_kept) triples; ``embed``; ``head`` at a few
counts; ``model``: whole deploy-mode models for random valid schedules (additivity check).
"""
from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import random
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hwsearch.errors import HwsearchError
from hwsearch.io import atomic_path, provenance, write_json
from hwsearch.models import CompressedViT
from hwsearch.parts import AttnPart, CompressPart, DenseBlock, Embed, Head, MlpPart, example_inputs
from hwsearch.targets import GRID_RULES, Target
from profilers.bundle import Bundle, Graph
from profilers.csvlog import COLUMNS

REQUIRED_COLUMNS = ("model", "model_hash", "target", "part", "tokens", "batch", "median_ms", "p10_ms", "p90_ms", "cv")


def model_hash(model: CompressedViT, name: str) -> str:
    """Architecture fingerprint (latency depends on shapes only, not on weights)."""
    vit = model.vit
    arch = {"name": name, "tokens": model.num_tokens, "prefix": model.num_prefix, "depth": model.depth,
            "params": sorted((k, list(v.shape)) for k, v in vit.state_dict().items())}
    return hashlib.sha256(json.dumps(arch).encode()).hexdigest()[:16]


def random_schedules(num_tokens: int, num_prefix: int, depth: int, grid: list[int], count: int, seed: int = 0,
                     compress_from: int = 1) -> list[list[tuple[int, int]]]:
    """Valid schedules whose counts lie on the grid, spanning mild to heavy compression."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        strength = (i + 1) / (count + 1)  # spread from mild to strong
        counts, cur = [(num_tokens, num_tokens)] * compress_from, num_tokens
        for _ in range(depth - compress_from):
            options = [g for g in grid if g <= cur]
            drop = rng.random() < strength
            p = rng.choice(options[: max(1, len(options) // 4)]) if drop else cur
            m = rng.choice([g for g in options if g <= p][: max(1, len(options) // 4)]) if drop else p
            counts.append((p, m))
            cur = m
        out.append(counts)
    return out


def compress_triples(grid: list[int], count: int, seed: int = 0) -> list[tuple[int, int, int]]:
    """Sampled (n, prune_kept, merge_kept) for the compression-step cost model; a quarter prune only."""
    rng = random.Random(seed)
    possible = [(n, p, m) for n in grid for p in grid if p <= n for m in grid if m <= p and m < n]
    if len(possible) <= count:
        return sorted(possible, reverse=True)
    triples: set[tuple[int, int, int]] = set()
    while len(triples) < count:
        n = rng.choice(grid)
        lower = [g for g in grid if g <= n]
        p = rng.choice(lower)
        m = p if len(triples) % 4 == 0 else rng.choice([g for g in lower if g <= p])
        if m < n:
            triples.add((n, p, m))
    return sorted(triples, reverse=True)


class Exporter:
    """Writes ONNX (+ TorchScript for the torch backend, + fp16 ONNX for strongly-typed TensorRT)."""

    def __init__(self, root: Path, model: CompressedViT, target: Target) -> None:
        self.root, self.model, self.target = root, model, target
        (root / "graphs").mkdir(parents=True, exist_ok=True)
        self.graphs: list[Graph] = []

    def add(self, gid: str, part: str, module: nn.Module, tokens: int, batch: int, **meta: Any) -> None:
        inputs = example_inputs(part, self.model, batch, tokens)
        args = tuple(inputs.values())
        onnx = f"graphs/{gid}.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(self.root / onnx), input_names=list(inputs), opset_version=17,
                              dynamo=False)
            graph = Graph(gid, part, tokens, batch, onnx, {k: list(v.shape) for k, v in inputs.items()}, **meta)
            if self.target.backend == "torch":
                graph.torchscript = f"graphs/{gid}.pt"
                torch.jit.trace(module, args, check_trace=False).save(str(self.root / graph.torchscript))
            if self.target.backend == "tensorrt" and self.target.precision == "fp16":
                half = copy.deepcopy(module).half()
                graph_fp16 = f"graphs/{gid}.fp16.onnx"
                torch.onnx.export(half, tuple(a.half() for a in args), str(self.root / graph_fp16),
                                  input_names=list(inputs), opset_version=17, dynamo=False)
                graph.onnx_fp16 = graph_fp16
        self.graphs.append(graph)


def build_bundle(root: Path, model: CompressedViT, name: str, target: Target, batches: list[int],
                 whole_models: int = 8, compress_samples: int = 24, seed: int = 0) -> Bundle:
    """Export every graph of the profile into ``root`` and write the manifest."""
    from hwsearch.models import apply_schedule

    grid = target.token_grid(model.num_tokens, model.num_prefix)
    ex = Exporter(root, model, target)
    n_full = model.num_tokens
    for b in batches:
        ex.add(f"embed_b{b}", "embed", Embed(model), n_full, b)
        for n in grid:
            ex.add(f"attn_n{n}_b{b}", "attn", AttnPart(model), n, b)
            ex.add(f"mlp_n{n}_b{b}", "mlp", MlpPart(model), n, b)
        for i in range(model.depth):
            ex.add(f"block{i}_n{n_full}_b{b}", "block", DenseBlock(model, i), n_full, b, prune_kept=i)
        for n, p, m in compress_triples(grid, compress_samples, seed):
            ex.add(f"compress_n{n}_p{p}_m{m}_b{b}", "compress", CompressPart(model, p, m), n, b,
                   prune_kept=p, merge_kept=m)
        for n in sorted({grid[0], grid[len(grid) // 2], grid[-1]}, reverse=True):
            ex.add(f"head_n{n}_b{b}", "head", Head(model), n, b)
        for j, counts in enumerate(random_schedules(n_full, model.num_prefix, model.depth, grid, whole_models, seed)):
            ex.add(f"model{j}_b{b}", "model", apply_schedule(model.vit, counts), n_full, b,
                   schedule=[list(c) for c in counts])
    bundle = Bundle(root, name, model_hash(model, name), dict(target.raw), ex.graphs)
    bundle.save()
    return bundle


def read_profile(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a profile CSV, checked for the columns the cost model needs."""
    path = Path(path)
    if not path.is_file():
        raise HwsearchError(f"profile not found: {path}")
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise HwsearchError(f"{path}: missing columns {', '.join(missing)}")
            rows = list(reader)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise HwsearchError(f"{path}: corrupt CSV ({exc})") from None
    if not rows:
        raise HwsearchError(f"{path}: no measurements")
    for i, row in enumerate(rows):
        try:
            float(row["median_ms"]), int(row["tokens"]), int(row["batch"])
        except (TypeError, ValueError):
            raise HwsearchError(f"{path}: row {i + 2} has a non-numeric median_ms/tokens/batch") from None
    return rows


def _median(rows: list[dict[str, Any]], part: str, tokens: int, batch: int, column: str = "median_ms") -> float:
    for r in rows:
        if r["part"] == part and int(r["tokens"]) == tokens and int(r["batch"]) == batch:
            return float(r[column])
    raise KeyError((part, tokens, batch))


def compress_fit(rows: list[dict[str, Any]], batch: int, column: str = "median_ms") -> np.ndarray:
    """Least-squares linear model of the compression step (features: :func:`compress_features`).

    ``column`` is the measured quantity: ``median_ms`` (latency) or ``energy_mj``.
    """
    data = [r for r in rows if r["part"] == "compress" and int(r["batch"]) == batch]
    feats = np.array([compress_features(int(r["tokens"]), int(r["prune_kept"]), int(r["merge_kept"]))
                      for r in data], dtype=float)
    return np.linalg.lstsq(feats, np.array([float(r[column]) for r in data]), rcond=None)[0]


def _number(v: Any) -> float:
    return float(v.detach()) if hasattr(v, "detach") else float(v)


def compress_features(n: Any, p: Any, m: Any) -> list[Any]:
    """Ranking (n), gather (p); when merging: a fixed part, gather/scatter (p) and similarity ((p-m) m).

    Works on numbers and on tensors (the cost model differentiates through it).
    """
    merging = float(_number(m) < _number(p))
    return [1.0, n, p, merging, merging * p, merging * (p - m) * m]


def sum_of_parts(rows: list[dict[str, Any]], counts: list[tuple[int, int]], batch: int, coef: np.ndarray,
                 column: str = "median_ms") -> float:
    """Whole-model latency (or energy, by ``column``) predicted by adding the measured parts."""
    n_in = counts[0][0]
    total = _median(rows, "embed", n_in, batch, column)
    for p, m in counts:
        total += _median(rows, "attn", n_in, batch, column) + _median(rows, "mlp", m, batch, column)
        if m < n_in:
            total += float(np.dot(coef, compress_features(n_in, p, m)))
        n_in = m
    heads = sorted((int(r["tokens"]), float(r[column])) for r in rows
                   if r["part"] == "head" and int(r["batch"]) == batch)
    return total + float(np.interp(n_in, [t for t, _ in heads], [v for _, v in heads]))


def whole_model_pairs(rows: list[dict[str, Any]], batch: int, coef: np.ndarray,
                      column: str = "median_ms") -> list[tuple[float, float]]:
    """(sum of parts, measured) for every measured whole model at ``batch``."""
    return [(sum_of_parts(rows, [tuple(c) for c in json.loads(r["schedule"])], batch, coef, column),
             float(r[column]))
            for r in rows if r["part"] == "model" and int(r["batch"]) == batch and r.get("schedule")
            and r.get(column) not in (None, "")]


def drift_corrected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with timings divided by the chunk's ``drift`` (reference-graph ratio) where recorded."""
    out = []
    for r in rows:
        d = float(r["drift"]) if r.get("drift") not in (None, "") else 1.0
        out.append({**r, **{k: float(r[k]) / d for k in ("median_ms", "p10_ms", "p90_ms")}})
    return out


def additivity(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum of parts vs measured whole models (raw, and drift-corrected); the position check."""
    report = _additivity(rows)
    if any(r.get("drift") not in (None, "") for r in rows):
        for key, value in _additivity(drift_corrected(rows)).items():
            report[key]["drift_corrected"] = {k: value[k] for k in
                                              ("mape", "within_5pct", "within_10pct", "block_position_cv")}
    return report


def _additivity(rows: list[dict[str, Any]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for batch in sorted({int(r["batch"]) for r in rows}):
        coef = compress_fit(rows, batch)
        pairs = whole_model_pairs(rows, batch, coef)
        errors = np.array([p / m - 1 for p, m in pairs]) if pairs else np.zeros(0)
        blocks = [float(r["median_ms"]) for r in rows if r["part"] == "block" and int(r["batch"]) == batch]
        full = max(int(r["tokens"]) for r in rows if r["part"] == "attn")
        halves = _median(rows, "attn", full, batch) + _median(rows, "mlp", full, batch)
        report[f"batch{batch}"] = {
            "whole_models": len(pairs),
            "mape": float(np.abs(errors).mean()) if len(errors) else None,
            "within_5pct": float((np.abs(errors) <= 0.05).mean()) if len(errors) else None,
            "within_10pct": float((np.abs(errors) <= 0.10).mean()) if len(errors) else None,
            "mean_error": float(errors.mean()) if len(errors) else None,
            "pairs_ms": [[round(p, 3), round(m, 3)] for p, m in pairs],
            "compress_fit": [float(c) for c in coef],
            "block_position_cv": float(np.std(blocks) / np.mean(blocks)) if blocks else None,
            "attn_plus_mlp_vs_block": halves / float(np.median(blocks)) - 1 if blocks else None,
        }
    return report


def write_profile(rows_csv: Path, out_dir: Path, meta: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Copy measured rows to ``profile.csv`` (atomically) with ``meta.json`` and the additivity report."""
    rows = read_profile(rows_csv)
    report = additivity(rows)
    with atomic_path(out_dir / "profile.csv") as tmp:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    write_json(out_dir / "meta.json", {**meta, "additivity": report, "rows": len(rows)})
    return out_dir / "profile.csv", report


def make_tarball(bundle_dir: Path, out: Path, readme: str | None = None) -> Path:
    """A self-contained bundle: graphs + manifest + the ``profilers`` package + a README."""
    import profilers

    pkg = Path(profilers.__file__).parent
    readme = readme or (
        f"# hwsearch profiling bundle for {json.loads((bundle_dir / 'manifest.json').read_text())['model']}\n"
        "On the device (needs numpy, pyyaml and the backend library only):\n"
        "    python3 -m profilers run bundle/      # appends bundle/measurements.csv (resumable)\n"
        "Bring measurements.csv back and run: hwsearch profile --import measurements.csv --target T\n")
    with atomic_path(out) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(bundle_dir, arcname="bundle")
            tar.add(pkg, arcname="profilers", filter=lambda t: None if "__pycache__" in t.name else t)
            data = readme.encode()
            info = tarfile.TarInfo("README.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def temp_bundle_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hwsearch-bundle-"))


def meta_for(target: Target, name: str, model: CompressedViT, batches: list[int]) -> dict[str, Any]:
    return {"target": target.name, "model": name, "model_hash": model_hash(model, name), "batches": batches,
            "token_grid": {"rule": target.raw["token_grid"]["rule"], "granularity": target.granularity,
                           "meaning": GRID_RULES[target.raw["token_grid"]["rule"]],
                           "counts": target.token_grid(model.num_tokens, model.num_prefix)},
            "backend": target.backend, "precision": target.precision, "power_meter": target.power_meter,
            "provenance": provenance()}


def reuse_or_build(work: Path, model: CompressedViT, name: str, target: Target, batches: list[int],
                   whole_models: int) -> Path:
    """Reuse an interrupted run's bundle (same model and settings) so measurements resume."""
    from profilers.bundle import BundleError, load_bundle

    want = {"hash": model_hash(model, name), "batches": batches, "whole": whole_models, "target": target.raw}
    stamp = work / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        try:
            load_bundle(work)
            return work
        except BundleError:
            pass
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    build_bundle(work, model, name, target, batches, whole_models)
    stamp.write_text(json.dumps(want))
    return work
