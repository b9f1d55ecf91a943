"""profile.csv: read and validate, write (atomically, with meta.json and the additivity report),
check imported rows against the target and model they claim to be for."""
from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from torch import nn

from hwsearch.errors import HwsearchError
from hwsearch.io import atomic_path, json_object_or_none, provenance, write_json
from hwsearch.model.build import model_hash
from hwsearch.profiling.additivity import additivity
from hwsearch.targets import GRID_RULES, Target
from profilers.csvlog import COLUMNS

TIME_COLUMNS = ("median_ms", "p10_ms", "p90_ms")
COMPRESS_SAMPLES = 6  # the compression step's linear model has six coefficients (additivity.compress_features)
REQUIRED_COLUMNS = ("model", "model_hash", "target", "part", "tokens", "batch", "median_ms", "p10_ms", "p90_ms", "cv")
# target keys that change what is measured (not how carefully: the timing protocol is not among them)
MEASURED_SETTINGS = ("backend", "device", "precision", "batch_sizes", "threads", "cuda_graphs", "tensorrt",
                     "token_grid", "power_meter", "power")


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
        if None in row or None in row.values():  # fewer or more fields than the header names
            fields = reader.fieldnames or []
            raise HwsearchError(f"{path}: row {i + 2} has {sum(row.get(c) is not None for c in fields)} of "
                                f"{len(fields)} fields (a truncated or corrupt file?)")
        try:
            times = [float(row[c]) for c in TIME_COLUMNS]
            int(row["tokens"]), int(row["batch"])
        except (TypeError, ValueError):
            raise HwsearchError(f"{path}: row {i + 2} has a non-numeric {'/'.join(TIME_COLUMNS)}/tokens/batch"
                                ) from None
        if not all(math.isfinite(t) and t > 0 for t in times):
            raise HwsearchError(f"{path}: row {i + 2} ({row['part']} at {row['tokens']} tokens) has a time that "
                                f"is not a positive number: " + ", ".join(f"{c} {row[c]}" for c in TIME_COLUMNS))
    return rows


def check_complete(rows: list[dict[str, Any]], meta: dict[str, Any], where: str) -> None:
    """Imported rows are a whole profile: no duplicates; per batch embed, attn and mlp at every count
    of the token grid, head at two counts or more, and enough compression samples to fit its model."""
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(rows):
        key = (str(row.get("graph_id") or (row["part"], row["tokens"], row.get("prune_kept"), row.get("merge_kept"))),
               row["batch"])
        if key in seen:
            raise HwsearchError(f"{where}: row {i + 2} measures {row['part']} {key[0]} at batch {row['batch']} again "
                                f"(duplicate rows: merge the runs' files by hand or measure again)")
        seen.add(key)
    grid = set(meta["token_grid"]["counts"])
    for batch in sorted({int(r["batch"]) for r in rows}):
        of = [r for r in rows if int(r["batch"]) == batch]
        missing = [part for part in ("embed", "head") if not any(r["part"] == part for r in of)]
        for part in ("attn", "mlp"):
            absent = sorted(grid - {int(r["tokens"]) for r in of if r["part"] == part})
            if absent:
                missing.append(f"{part} at {', '.join(map(str, absent))} tokens")
        heads = {int(r["tokens"]) for r in of if r["part"] == "head"}
        if heads and len(heads) < 2:
            missing.append("head at a second token count")
        samples = sum(r["part"] == "compress" for r in of)
        if samples < COMPRESS_SAMPLES:
            missing.append(f"compression samples ({samples} of the {COMPRESS_SAMPLES} its fit needs at least)")
        if missing:
            raise HwsearchError(f"{where}: incomplete profile at batch {batch}: no {'; no '.join(missing)} "
                                f"(an interrupted device run? run it again: it resumes)")


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


def target_settings(target: Target) -> dict[str, Any]:
    """The target's settings that a profile depends on (a profile made with others is stale)."""
    return {k: target.raw[k] for k in MEASURED_SETTINGS if k in target.raw}


def settings_hash(target: Target) -> str:
    return hashlib.sha256(json.dumps(target_settings(target), sort_keys=True).encode()).hexdigest()[:16]


def profile_meta(target: Target, name: str, vit: nn.Module, batches: list[int]) -> dict[str, Any]:
    """meta.json of a profile: what was measured, for which model and target settings."""
    num_tokens, num_prefix = int(vit.patch_embed.num_patches) + int(vit.num_prefix_tokens), int(vit.num_prefix_tokens)
    return {"target": target.name, "model": name, "model_hash": model_hash(vit, name), "batches": batches,
            "token_grid": {"rule": target.raw["token_grid"]["rule"], "granularity": target.granularity,
                           "meaning": GRID_RULES[target.raw["token_grid"]["rule"]],
                           "counts": target.token_grid(num_tokens, num_prefix)},
            "backend": target.backend, "precision": target.precision, "power_meter": target.power_meter,
            "target_settings": target_settings(target), "target_settings_hash": settings_hash(target),
            "provenance": provenance()}


def check_rows(rows: list[dict[str, Any]], meta: dict[str, Any], where: str) -> None:
    """Imported rows must be of this model and this target."""
    hashes = {r["model_hash"] for r in rows}
    targets = {r["target"] for r in rows}
    if hashes != {meta["model_hash"]}:
        raise HwsearchError(f"{where}: measurements are from another model ({', '.join(sorted(hashes))}, "
                            f"expected {meta['model']} {meta['model_hash']})")
    if targets != {meta["target"]}:
        raise HwsearchError(f"{where}: measurements are for target {', '.join(sorted(targets))}, not {meta['target']}")
    for key in ("backend", "precision"):  # e.g. a bundle run with --backend onnxruntime is no TensorRT profile
        found = {str(r.get(key) or "") for r in rows}
        if found != {meta[key]}:
            raise HwsearchError(f"{where}: measured with {key} {', '.join(sorted(found)) or 'unknown'}; target "
                                f"{meta['target']} measures with {meta[key]}")
    batches = {int(r["batch"]) for r in rows}
    if not batches <= set(meta["batches"]):
        raise HwsearchError(f"{where}: measured at batch {', '.join(map(str, sorted(batches)))}; target "
                            f"{meta['target']} is profiled at batch {', '.join(map(str, meta['batches']))} (--batch)")


def import_profile(csv_path: str | Path, folder: Path, meta: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Ingest a device run's measurements.csv as this target's profile (checked first)."""
    rows = read_profile(csv_path)
    check_rows(rows, meta, str(csv_path))
    check_complete(rows, meta, str(csv_path))
    host = Path(csv_path).with_suffix(".host.json")  # where and how it was measured (profilers writes it)
    device = json_object_or_none(host) if host.is_file() else {}
    if device is None:
        raise HwsearchError(f"{host}: not a readable JSON object (a corrupt copy of the device run's host "
                            "description?); copy it again, or remove it to import without it")
    return write_profile(Path(csv_path), folder, {**meta, "imported_from": str(csv_path),
                                                   **({"device": device} if device else {})})
