"""How well a cost model predicts whole compressed models measured here, in one run.

Random valid schedules spanning mild to heavy compression (any integer counts, as the search
can output) are measured with the target's backend; the whole-model correction is refitted on
them and reported by leave-one-out, so every reported error is on a model the correction did
not see: MAPE, share within 5% and 10%, Spearman rank correlation, and a scatter PNG.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from hwsearch.cost.fit import affine_fit
from hwsearch.cost.measured import MeasuredCost
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.profiling.measure import measure_models
from hwsearch.schedule import as_lists, random_schedules
from hwsearch.targets import Target


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

    schedules = random_schedules(model.num_tokens, model.num_prefix, model.depth, count, seed)
    models = {f"s{i}": apply_schedule(model.vit, s) for i, s in enumerate(schedules)}
    stats = measure_models(target, models, target.batch)
    measured = np.array([stats[f"s{i}"].median_ms for i in range(count)])
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
            "schedules": [as_lists(s) for s in schedules]}


def keep_accuracy(data: dict[str, Any], report: dict[str, Any]) -> str:
    """Store the report in the cost model's latency block and keep the correction fitted on the
    measured models; returns the printable summary."""
    latency = data["quantities"]["latency"]
    latency["correction"] = {**report["correction"], "source": "whole models measured by hwsearch fit --measure"}
    latency["accuracy"] = {k: v for k, v in report.items() if k != "correction"}
    return (f"accuracy on {report['models']} whole models measured now (leave-one-out correction): MAPE "
            f"{100 * report['mape']:.1f}%, within 5% {100 * report['within_5pct']:.0f}%, within 10% "
            f"{100 * report['within_10pct']:.0f}%, Spearman {report['spearman']:.3f}")
