"""``hwsearch evaluate``: dense vs deploy-mode compressed on held-out images: GMACs, latency
measured here (one run, repeats interleaved), speedup and fidelity; written beside the schedule.

A top-level module (not in DESIGN's tree) because it joins the model, FLOPs cost, measurement and
quality, and belongs to none of their packages alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hwsearch.cost.flops import FlopsCost
from hwsearch.data import image_sets
from hwsearch.io import provenance, write_json
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.model.zoo import load_schedule_model
from hwsearch.pages import write_page
from hwsearch.profiling.measure import measure_models
from hwsearch.quality import by_group, collect, feature_cosines, fidelity
from hwsearch.schedule import load_schedule
from hwsearch.targets import Target, load_target


def evaluate_schedule(path: str, target: Target, checkpoint: str | None, data: str | None, num_images: int,
                      batch: int | None, threads: int | None) -> dict[str, Any]:
    """Measure and compare; prints the table and writes ``<schedule>.eval.json``."""
    schedule = load_schedule(path)
    vit, name, checkpoint = load_schedule_model(schedule, checkpoint)
    dense, compressed = CompressedViT(vit), apply_schedule(vit, schedule)
    _, held_out = image_sets(vit, data, max(num_images, 2))
    ref, out = collect(dense, held_out), collect(compressed, held_out)
    report = fidelity(ref, out, vit.num_classes > 0, held_out.labels)
    per_photo = by_group(feature_cosines(ref, out), held_out.groups)
    cost = FlopsCost.from_model(vit, schedule.merging)
    gmacs = {"dense": cost.dense_cost(dense.depth), "compressed": cost.cost(schedule.counts())}
    batch = batch or target.batch
    host = target if target.is_local else load_target("cpu_torch")
    if threads:
        host.raw["threads"] = threads
    timing = measure_models(host, {"dense": dense, "compressed": compressed}, batch)
    speedup = timing["dense"].median_ms / timing["compressed"].median_ms
    print(f"model: {name} ({checkpoint or 'random weights'}); held-out images: {len(held_out)} ({held_out.source})")
    print(f"{'':12s}{'GMACs':>10s}{'latency ms (median, p10-p90)':>34s}")
    for key in ("dense", "compressed"):
        t = timing[key]
        print(f"{key:12s}{gmacs[key]:10.3f}{t.median_ms:14.2f} ({t.p10_ms:.2f}-{t.p90_ms:.2f}) cv {100 * t.cv:.1f}%")
    print(f"speedup: {speedup:.2f}x measured on this host ({host.name}: {host.backend}, batch {batch}, "
          f"{host.raw.get('threads')} threads, same run{'' if host is target else f'; {target.name} is not this host'}"
          f"); GMACs ratio {gmacs['compressed'] / gmacs['dense']:.3f}")
    for key, value in report.items():
        print(f"{key}: {value:.4f}")
    if per_photo:
        print("feature_cosine per held-out photo: " + ", ".join(f"{k} {v:.4f}" for k, v in per_photo.items()))
    result = {"schedule": str(path), "gmacs": gmacs, "latency": {k: v.as_dict() for k, v in timing.items()},
              "speedup": speedup, "batch": batch, "threads": host.raw.get("threads"), "measured_on": host.name,
              "backend": host.backend, "fidelity": report,
              "feature_cosine_per_photo": per_photo,
              "held_out": {"source": held_out.source, "images": len(held_out)}, "provenance": provenance()}
    out = Path(path).with_suffix(".eval.json")
    write_json(out, result)
    print(f"wrote {out}\nwrote {write_page(path, compressed)}")
    return result
