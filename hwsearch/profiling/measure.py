"""Measure on this host with the target's own backend and protocol: whole deploy-mode models
(interleaved, one run), and a whole profile (the bundle measured here, resumable).

Whole models are exported exactly as ``hwsearch profile`` exports its graphs (static-shape ONNX,
TorchScript for the torch backend) and timed in one process with interleaved repeats.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsearch.errors import HwsearchError
from hwsearch.locks import timing_lock
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.profiling.export import Exporter, reuse_or_build
from hwsearch.profiling.table import profile_meta, write_profile
from hwsearch.schedule import Counts
from hwsearch.targets import Target
from profilers.timing import TimingStats, paired_ratio, summarize


@dataclass
class Measurement(TimingStats):
    """Per-inference latency of one model over the repeats of one run (units in the field names:
    ``median_ms``, ``p10_ms``, ``p90_ms``, ``mean_ms``; ``cv``, counts) and the backend that ran it."""

    backend: str = ""

    def pooled(self, other: "Measurement") -> "Measurement":
        """This run's rounds and ``other``'s as one measurement (each run's rounds stay in order, so two
        models measured in the same runs stay paired round by round)."""
        stats = summarize(self.samples_ms + other.samples_ms, self.iterations + other.iterations,
                          max(self.attempts, other.attempts), float("inf"))
        return Measurement(**{**stats.as_dict(), "cv_ok": self.cv_ok and other.cv_ok},
                           samples_ms=stats.samples_ms, backend=self.backend)


def measure_models(target: Target, models: dict[str, CompressedViT], batch: int,
                   protocol: dict[str, Any] | None = None, here: bool = False) -> dict[str, Measurement]:
    """Latency per named model, measured here on ``target``'s backend, repeats interleaved and
    kept paired (one attempt for all: :func:`profilers.timing.paired_ratio` compares two of them).

    ``here``: run although the target is not local (hwsearch runs on the device itself).
    """
    from profilers.backends import BackendUnavailable, create_backend
    from profilers.runner import timing_protocol
    from profilers.timing import measure_interleaved

    if not (target.is_local or here):
        raise HwsearchError(f"target {target.name} is not this host: its latency can only be predicted here")
    root = Path(tempfile.mkdtemp(prefix="hwsearch-measure-"))
    try:
        exporter = Exporter(root, next(iter(models.values())), target)
        for name, model in models.items():
            exporter.add(name, "model", model, model.num_tokens, batch)
        try:
            backend = create_backend(target.backend, dict(target.raw), root)
        except BackendUnavailable as exc:
            raise HwsearchError(str(exc)) from None
        runners = {g.id: backend.prepare(g) for g in exporter.graphs}
        with timing_lock():
            stats = measure_interleaved({k: r for k, (r, _) in runners.items()},
                                        syncs={k: s for k, (_, s) in runners.items()}, together=True,
                                        **timing_protocol(target.timing, protocol))
        backend.release()
        return {k: Measurement(**v.as_dict(), samples_ms=v.samples_ms, backend=target.backend)
                for k, v in stats.items()}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure_with_dense(target: Target, model: CompressedViT, schedules: dict[str, Counts], batch: int | None = None,
                       here: bool = False) -> dict[str, Measurement]:
    """Dense (``"dense"``) and each named schedule's deploy-mode model measured here in one run (repeats
    interleaved: measured alone, a small model runs with warmer caches and reads up to ~25% faster on this CPU)."""
    models = {"dense": CompressedViT(model.vit)}
    models |= {name: apply_schedule(model.vit, counts, model.merging) for name, counts in schedules.items()}
    return measure_models(target, models, batch or target.batch, here=here)


def measure_pair(target: Target, model: CompressedViT, counts: Counts, batch: int | None = None,
                 here: bool = False) -> dict[str, Measurement]:
    """Dense and ``counts`` (``"compressed"``) measured here in one run (:func:`measure_with_dense`)."""
    return measure_with_dense(target, model, {"compressed": counts}, batch, here)


def describe_measurement(target: Target, stats: dict[str, Measurement], batch: int, budget_ms: float | None) -> str:
    d, c = stats["dense"], stats["compressed"]
    versus = f"; budget {budget_ms:.2f} ms -> {c.median_ms / budget_ms:.3f} x budget" if budget_ms else ""
    speedup = f"speedup {d.median_ms / c.median_ms:.2f}x"
    if c.samples_ms:  # one run's rounds: the paired speedup and its interval
        value, low, high = paired_ratio(d, c)
        speedup = f"speedup {value:.2f}x (paired over {c.repeats} rounds, 95% {low:.2f}-{high:.2f})"
    return (f"measured on {target.name} ({target.backend}, batch {batch}, same run): compressed "
            f"{c.median_ms:.2f} ms (p10-p90 {c.p10_ms:.2f}-{c.p90_ms:.2f}, cv {100 * c.cv:.1f}%), "
            f"dense {d.median_ms:.2f} ms; {speedup}{versus}")


def profile_here(target: Target, model: CompressedViT, name: str, batches: list[int], folder: Path,
                 whole_models: int, progress_bar: bool) -> tuple[Path, dict[str, Any]]:
    """Measure the profile on this host (resumable in ``folder/.profile-work``); write profile.csv
    and meta.json into ``folder``. Returns the CSV path and the additivity report."""
    from tqdm import tqdm

    from profilers.backends import BackendUnavailable
    from profilers.runner import run_bundle

    work = reuse_or_build(folder / ".profile-work", model, name, target, batches, whole_models)
    bar = tqdm(desc=f"profiling {name} on {target.name}", unit="graph", disable=not progress_bar)
    try:
        with timing_lock():
            csv_path = run_bundle(work, work / "measurements.csv", progress=_progress(bar))
    except BackendUnavailable as exc:
        raise HwsearchError(str(exc)) from None
    bar.close()
    host = json.loads(csv_path.with_suffix(".host.json").read_text())
    path, report = write_profile(csv_path, folder, {**profile_meta(target, name, model.vit, batches), "device": host})
    shutil.rmtree(work, ignore_errors=True)
    return path, report


def _progress(bar: Any) -> Callable[[int, int, str], None]:
    def update(i: int, total: int, graph: str) -> None:
        bar.total, bar.n = total, i
        bar.set_postfix_str(graph)
        bar.refresh()

    return update
