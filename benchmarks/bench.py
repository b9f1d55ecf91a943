"""The set-up every benchmark shares: arguments, target, model, results folder, image sets."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hwsearch.cost.fit import load_costmodel  # noqa: E402
from hwsearch.cost.measured import MeasuredCost  # noqa: E402
from hwsearch.data import ImageSet, default_sets  # noqa: E402
from hwsearch.model.vit import CompressedViT  # noqa: E402
from hwsearch.model.zoo import load_model  # noqa: E402
from hwsearch.profiling.measure import measure_models  # noqa: E402
from hwsearch.quality import group_indices  # noqa: E402
from hwsearch.schedule import Counts  # noqa: E402
from hwsearch.search.optimize import check_latency, measure_pair  # noqa: E402
from hwsearch.targets import Target, load_target  # noqa: E402
from hwsearch.workspace import Workspace  # noqa: E402
from profilers.timing import paired_ratio  # noqa: E402


@dataclass
class Bench:
    target: Target
    vit: Any
    name: str
    checkpoint: str | None
    model: CompressedViT
    workspace: Workspace
    search_set: ImageSet
    held_out: ImageSet

    def latency_cost(self, merging: str = "similarity") -> MeasuredCost:
        """The target's fitted latency model (hwsearch profile + hwsearch fit first) for ``merging``."""
        return MeasuredCost(load_costmodel(self.workspace.costmodel_json), "latency", merging)


def paired_interval(a: Any, b: Any, resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over images and its paired bootstrap 95% interval (images resampled together)."""
    import numpy as np

    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_by_photo(a: Any, b: Any, groups: list[str] | None) -> dict[str, tuple[float, float, float]]:
    """:func:`paired_interval` within each held-out photo (so one photo cannot carry a result)."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return {g: paired_interval(a[idx], b[idx]) for g, idx in group_indices(groups).items()}


def on_measured_budget(target: Target, model: CompressedViT, counts: Counts, fraction: float, refine: int,
                       config: Any) -> Counts:
    """As ``optimize --latency-ms``: the searched schedule measured beside dense, and the measured local
    search when it misses the band around ``fraction`` x the dense latency measured in that run."""
    first = measure_pair(target, model, counts)
    budget_ms = fraction * first["dense"].median_ms
    print(f"  budget {fraction:.2f} x dense measured = {budget_ms:.2f} ms", flush=True)
    pending = {tuple(counts): first}
    measure_fn = lambda t, c: pending.pop(tuple(c), None) or measure_pair(t, model, c)  # noqa: E731
    return check_latency([(target, budget_ms)], model, counts, refine, config.compress_from, measure_fn)[0]


def matching_run(target: Target, models: dict[str, CompressedViT], ours: str, theirs: str, repeats: int
                 ) -> dict[str, Any]:
    """Dense and the compared models measured in one run of ``repeats`` interleaved rounds: each
    model's median, and ``theirs / ours`` as their paired ratio (``ratio``) with its 95% interval."""
    stats = measure_models(target, models, target.batch, {"repeats": repeats})
    value, low, high = paired_ratio(stats[theirs], stats[ours])
    return {**{k: m.median_ms for k, m in stats.items()}, "ratio": value, "ratio_95": [low, high]}


def parser(doc: str | None, num_images: int) -> argparse.ArgumentParser:
    """A benchmark's argument parser with the shared options."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="cpu_onnxruntime")
    p.add_argument("--model", help="default: the embedded DINOv2 ViT-S/14")
    p.add_argument("--img-size", type=int)
    p.add_argument("--num-images", type=int, default=num_images, help="search + held-out images")
    p.add_argument("--out", default="results")
    return p


def setup(args: argparse.Namespace) -> Bench:
    target = load_target(args.target)
    vit, name, checkpoint = load_model(args.model, None, args.img_size)
    search_set, held_out = default_sets(int(vit.patch_embed.img_size[0]), args.num_images)
    return Bench(target, vit, name, checkpoint, CompressedViT(vit), Workspace(Path(args.out), target, name),
                 search_set, held_out)
