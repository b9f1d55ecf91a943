"""How well a cost model predicts whole compressed models measured here, in one run.

Random valid schedules spanning mild to heavy compression (any integer counts, as the search
can output) are measured with the target's backend; the whole-model correction is refitted on
them and reported by leave-one-out, so every reported error is on a model the correction did
not see: MAPE, share within 5% and 10%, Spearman rank correlation, and a scatter PNG.
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from hwsearch.cost import MeasuredCost
from hwsearch.fit import affine_fit
from hwsearch.io import atomic_path
from hwsearch.measure import measure_models
from hwsearch.models import CompressedViT, apply_schedule
from hwsearch.targets import Target


def integer_schedules(num_tokens: int, num_prefix: int, depth: int, count: int, seed: int = 0,
                      compress_from: int = 1) -> list[list[tuple[int, int]]]:
    """Random valid schedules with any integer counts, from mild (first) to heavy (last)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        keep_rate = 1.0 - 0.35 * (i + 1) / count  # per-block keep fraction, 0.99 .. 0.65
        counts, cur = [(num_tokens, num_tokens)] * compress_from, num_tokens
        for _ in range(depth - compress_from):
            rate = min(1.0, max(0.3, rng.gauss(keep_rate, 0.08)))
            m = max(num_prefix + 1, round(num_prefix + (cur - num_prefix) * rate))
            p = rng.randint(m, cur)
            counts.append((p, m))
            cur = m
        out.append(counts)
    return out


def leave_one_out(parts: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Predictions of ``overhead + scale * parts`` fitted without each model in turn."""
    preds = np.empty_like(measured)
    for i in range(len(parts)):
        keep = np.arange(len(parts)) != i
        overhead, scale = affine_fit(parts[keep], measured[keep])
        preds[i] = overhead + scale * parts[i]
    return preds


def evaluate_costmodel(cost: MeasuredCost, target: Target, model: CompressedViT, count: int = 30,
                       seed: int = 0) -> dict[str, Any]:
    """Measure ``count`` schedules here and compare with the cost model's predictions."""
    from scipy.stats import spearmanr

    schedules = integer_schedules(model.num_tokens, model.num_prefix, model.depth, count, seed)
    models = {f"s{i}": apply_schedule(model.vit, s) for i, s in enumerate(schedules)}
    stats = measure_models(target, models, target.batch)
    measured = np.array([stats[f"s{i}"]["median_ms"] for i in range(count)])
    raw = np.array([cost.sum_of_parts(s) for s in schedules])
    predicted = leave_one_out(raw, measured)
    errors = predicted / measured - 1
    overhead, scale = affine_fit(raw, measured)
    within = np.abs(errors)
    return {"models": count, "mape": float(within.mean()),
            "within_5pct": float((within <= 0.05).mean()), "within_10pct": float((within <= 0.10).mean()),
            "spearman": float(spearmanr(predicted, measured).statistic),
            "correction": {"overhead": float(overhead), "scale": float(scale), "models": count},
            "pairs_ms": [[round(float(p), 3), round(float(m), 3)] for p, m in zip(predicted, measured, strict=True)],
            "schedules": [[list(c) for c in s] for s in schedules]}


def scatter_png(report: dict[str, Any], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred, meas = np.array(report["pairs_ms"]).T
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(meas, pred, s=14)
    lo, hi = float(min(pred.min(), meas.min())), float(max(pred.max(), meas.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.fill_between([lo, hi], [lo * 0.95, hi * 0.95], [lo * 1.05, hi * 1.05], alpha=0.15, label="±5%")
    ax.set(xlabel="measured, ms", ylabel="predicted (leave-one-out), ms",
           title=f"{title}\nMAPE {100 * report['mape']:.1f}%, within 5% {100 * report['within_5pct']:.0f}%, "
                 f"Spearman {report['spearman']:.3f}")
    ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
