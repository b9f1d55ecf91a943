"""Measurement rows appended to a CSV as they are made; a rerun skips rows already there."""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

COLUMNS = [
    "model", "model_hash", "target", "backend", "precision", "part", "tokens", "prune_kept", "merge_kept",
    "batch", "graph_id", "median_ms", "p10_ms", "p90_ms", "mean_ms", "cv", "iterations", "repeats", "cv_ok",
    "energy_mj", "avg_power_w", "idle_power_w", "energy_method", "throttle", "temperature_c", "schedule",
    "drift", "reference_ms",
]
KEY = ("target", "backend", "precision", "graph_id")


def row_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(k, "")) for k in KEY)


def done_keys(path: Path) -> set[tuple[str, ...]]:
    """Keys of rows already measured (complete lines only)."""
    if not path.is_file():
        return set()
    with path.open(newline="") as f:
        return {row_key(r) for r in csv.DictReader(f) if r.get("median_ms")}


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append one row and flush it to disk, so an interruption loses at most the current graph."""
    new = not path.is_file() or path.stat().st_size == 0
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
        f.flush()
        os.fsync(f.fileno())
