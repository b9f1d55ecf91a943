"""Measure every graph of a bundle, appending a CSV row per graph (resume skips done rows)."""
from __future__ import annotations

import json
import platform
import random
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from profilers.backends import BackendUnavailable, create_backend
from profilers.bundle import Bundle, load_bundle
from profilers.csvlog import append_row, done_keys, row_key
from profilers.meters import MeterUnavailable, create_meter
from profilers.timing import measure_interleaved

PROTOCOL_KEYS = ("warmup_s", "repeat_s", "repeats", "max_cv", "max_attempts")
NOISE_FLOORS = {"repeats": 3, "max_attempts": 1}  # fewer repeats give no spread to check the CV against


def run_bundle(root: str | Path, out_csv: str | Path | None = None, backend: str | None = None,
               progress: Callable[[int, int, str], None] | None = None,
               timing: dict[str, float] | None = None, chunk: int = 12, seed: int = 0) -> Path:
    """Measure a bundle on this host; returns the CSV path. ``backend`` overrides the target's.

    Graphs are measured in shuffled chunks whose repeats alternate between the chunk's graphs, so
    slow drift of the host (other load, clocks, temperature) becomes noise spread over all token
    counts instead of a bias on neighbouring ones. Every chunk also times one reference graph (the
    first of the bundle); ``drift`` = its median in this chunk / in the first chunk, recorded
    beside the raw numbers so that analysis can correct slow drift. Rows are appended per chunk.
    """
    bundle = load_bundle(root)
    target = dict(bundle.target)
    name = backend or target["backend"]
    out = Path(out_csv) if out_csv else bundle.root / "measurements.csv"
    engine = create_backend(name, target, bundle.root)
    meter = _meter(target)
    done = done_keys(out)
    protocol = timing_protocol(target.get("timing", {}), timing)
    _write_host(bundle, out.with_suffix(".host.json"), engine.versions(), name, protocol)
    todo = [g for g in bundle.graphs if row_key(_base_row(bundle, target, name, g)) not in done]
    random.Random(seed).shuffle(todo)
    finished = len(bundle.graphs) - len(todo)
    reference, ref_first = bundle.graphs[0], _reference_median(out)
    for start in range(0, len(todo), chunk):
        group = todo[start:start + chunk]
        if progress:
            progress(finished, len(bundle.graphs), group[0].id)
        runners = {g.id: engine.prepare(g) for g in group}
        ref_key = reference.id if reference.id in runners else "__reference__"
        runners.setdefault(ref_key, engine.prepare(reference))
        stats = measure_interleaved({k: r for k, (r, _) in runners.items()},
                                    syncs={k: s for k, (_, s) in runners.items()}, **protocol)
        ref_first = ref_first or stats[ref_key].median_ms
        drift = stats[ref_key].median_ms / ref_first
        for graph in group:
            row = {**_base_row(bundle, target, name, graph), **stats[graph.id].as_dict(), "drift": drift,
                   "reference_ms": stats[ref_key].median_ms}
            if meter is not None:
                run, sync = runners[graph.id]
                window = float(target.get("power", {}).get("window_s", 1.0))
                row.update(meter.energy(run, sync, window).as_row())
                row["energy_method"] = row.pop("method")
            append_row(out, row)
        engine.release()
        finished += len(group)
    if meter is not None:
        meter.close()
    if progress:
        progress(len(bundle.graphs), len(bundle.graphs), "done")
    return out


def timing_protocol(timing: dict[str, Any], overrides: dict[str, float] | None = None) -> dict[str, Any]:
    """The measure_interleaved keyword arguments from a target's timing block (+ overrides)."""
    protocol = {k: v for k, v in {**timing, **(overrides or {})}.items() if k in PROTOCOL_KEYS}
    for key in ("repeats", "max_attempts"):
        if key in protocol:
            protocol[key] = int(protocol[key])
    for key, least in NOISE_FLOORS.items():  # the noise bounds cannot be switched off
        if key in protocol and protocol[key] < least:
            raise ValueError(f"timing {key} must be at least {least} (got {protocol[key]})")
    return protocol


def _reference_median(out: Path) -> float | None:
    """The reference graph's first-chunk median, from an interrupted run's rows (for ``drift``)."""
    import csv

    if not out.is_file():
        return None
    with out.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("reference_ms") and row.get("drift"):
                return float(row["reference_ms"]) / float(row["drift"])
    return None


def _meter(target: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The target's power meter, or None with a printed reason (energy columns stay empty)."""
    try:
        return create_meter(target.get("power_meter", "none"), target.get("power") or {})
    except MeterUnavailable as exc:
        print(f"profilers: energy not measured: {exc}", file=sys.stderr)
        return None


def _base_row(bundle: Bundle, target: dict[str, Any], backend: str, graph: Any) -> dict[str, Any]:
    return {"model": bundle.model, "model_hash": bundle.model_hash, "target": target["name"], "backend": backend,
            "precision": target.get("precision", "fp32"), "part": graph.part, "tokens": graph.tokens,
            "prune_kept": graph.prune_kept, "merge_kept": graph.merge_kept, "batch": graph.batch,
            "graph_id": graph.id, "schedule": json.dumps(graph.schedule) if graph.schedule else None}


def _write_host(bundle: Bundle, path: Path, versions: dict[str, str], backend: str,
                protocol: dict[str, Any]) -> None:
    """Where and how the measurement ran (the device side of meta.json): host, versions, and the
    timing protocol actually used (the target's, with any ``--timing`` overrides)."""
    info = {"host": socket.gethostname(), "platform": platform.platform(), "python": sys.version.split()[0],
            "backend": backend, "versions": versions, "target": bundle.target.get("name"), "timing": protocol}
    nvp = Path("/etc/nvpmodel.conf")
    if nvp.exists():
        info["jetson"] = True
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info, indent=1))
    tmp.replace(path)


__all__ = ["run_bundle", "BackendUnavailable"]
