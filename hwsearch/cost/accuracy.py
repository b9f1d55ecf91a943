"""How well a cost model predicts whole compressed models measured here, in one run.

Random valid schedules spanning mild to heavy compression (any integer counts, as the search
can output, from block 0, with the cost model's merge operator) and dense are measured with the
target's backend; the whole-model correction is refitted on them and reported by leave-one-out, so
every reported error is on a model the correction did not see: MAPE, share within 5% and 10%,
Spearman rank correlation, and a scatter PNG.

The correction is ``overhead + scale * blocks``, or ``overhead + scale * blocks + step_scale *
steps`` when the compression steps cost a different multiple of their profiled time in whole
models than the blocks do (measured at batch 1 here: 3x in one run, 1x in another; at batch 8 on the
session-34 VM nothing measurable: step_scale 0, "steps free") — chosen by
leave-one-out absolute error with the one-standard-error rule, as :func:`hwsearch.cost.fit.choose_regressor`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hwsearch.cost.fit import affine_fit
from hwsearch.cost.measured import MeasuredCost
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.profiling.measure import measure_models
from hwsearch.schedule import Counts, as_lists, random_schedules
from hwsearch.targets import Target


def leave_one_out(fit: Callable[[np.ndarray, np.ndarray], np.ndarray], features: np.ndarray,
                  measured: np.ndarray) -> np.ndarray:
    """Predictions of ``features @ fit(features, measured)`` fitted without each model in turn."""
    preds = np.empty_like(measured)
    for i in range(len(measured)):
        keep = np.arange(len(measured)) != i
        preds[i] = features[i] @ fit(features[keep], measured[keep])
    return preds


def _affine(features: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """[overhead, scale, scale] of :func:`affine_fit` on blocks + steps (one scale for both)."""
    overhead, scale = affine_fit(features[:, 1] + features[:, 2], measured)
    return np.array([overhead, scale, scale])


def _split(features: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """[overhead, scale, step_scale] by least squares (steps scaled on their own)."""
    return np.linalg.lstsq(features, measured, rcond=None)[0]


def _steps_free(features: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """[overhead, scale, 0]: the blocks alone (the steps' own scale at its bound, 0)."""
    overhead, scale = affine_fit(features[:, 1], measured)
    return np.array([overhead, scale, 0.0])


FORMS = {"one scale": _affine, "step scale": _split, "steps free": _steps_free}


def choose_correction(blocks: np.ndarray, steps: np.ndarray, measured: np.ndarray
                      ) -> tuple[dict[str, float], np.ndarray, dict[str, float]]:
    """(correction, its leave-one-out predictions, leave-one-out mean absolute error per form).

    One scale for blocks and steps, unless the steps scaled on their own lower the leave-one-out
    absolute error by more than one standard error: with a positive scale of their own, or free (scale 0,
    the bound of a non-negative scale: at batch 8 here the standalone steps cost far more than they add
    inside whole models, where the unbounded fit gave them a negative scale)."""
    features = np.stack([np.ones_like(blocks), blocks, steps], 1)
    held = {name: leave_one_out(form, features, measured) for name, form in FORMS.items()}
    errors = {k: np.abs(v - measured) for k, v in held.items()}
    mae = {k: float(e.mean()) for k, e in errors.items()}
    fitted = {name: form(features, measured) for name, form in FORMS.items()}
    valid = [name for name in ("step scale", "steps free") if fitted[name][1] > 0 and fitted[name][2] >= 0]
    best = min(valid, key=lambda name: mae[name], default=None)
    if best is not None and mae[best] + float(errors[best].std(ddof=1) / np.sqrt(len(measured))) < mae["one scale"]:
        overhead, scale, step_scale = fitted[best]
        return {"overhead": float(overhead), "scale": float(scale), "step_scale": float(step_scale)}, held[best], mae
    overhead, scale, _ = fitted["one scale"]
    return {"overhead": float(overhead), "scale": float(scale)}, held["one scale"], mae


def evaluate_costmodel(cost: MeasuredCost, target: Target, model: CompressedViT, count: int = 30,
                       seed: int = 0) -> dict[str, Any]:
    """Measure ``count`` schedules and dense here (``count`` + 1 models, one run) and compare with
    the cost model's predictions."""
    schedules = random_schedules(model.num_tokens, model.num_prefix, model.depth, count, seed, start=0,
                                 merging=cost.merging)
    schedules.append([(model.num_tokens, model.num_tokens)] * model.depth)  # dense: budgets are fractions of it
    models = {f"s{i}": apply_schedule(model.vit, s, cost.merging) for i, s in enumerate(schedules)}
    stats = measure_models(target, models, target.batch)
    return accuracy_report(cost, schedules, np.array([stats[f"s{i}"].median_ms for i in range(len(schedules))]))


def accuracy_report(cost: MeasuredCost, schedules: list[Counts], measured: np.ndarray) -> dict[str, Any]:
    """The correction chosen on ``schedules`` measured at ``measured`` ms, and its leave-one-out errors."""
    from scipy.stats import spearmanr

    blocks, steps = np.array([cost.split_parts(s) for s in schedules]).T
    correction, predicted, loo_mae = choose_correction(blocks, steps, measured)
    within = np.abs(predicted / measured - 1)
    return {"models": len(schedules), "merging": cost.merging, "mape": float(within.mean()),
            "within_5pct": float((within <= 0.05).mean()), "within_10pct": float((within <= 0.10).mean()),
            "spearman": float(spearmanr(predicted, measured).statistic), "loo_mae_ms": loo_mae,
            "correction": {**correction, "models": len(schedules)},
            "pairs_ms": [[round(float(p), 3), round(float(m), 3)] for p, m in zip(predicted, measured, strict=True)],
            "schedules": [as_lists(s) for s in schedules]}


def remeasured_report(data: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any] | None:
    """The accuracy report of the new fit ``data`` on the whole models that a previous ``fit --measure``
    measured (``previous``: the cost model it wrote) — a refit keeps them rather than dropping the
    correction they gave. None when there are none, or they are of another model, batch or target
    settings."""
    same = all(previous.get(k) == data.get(k) for k in ("model_hash", "batch", "target_settings_hash"))
    accuracy = previous.get("quantities", {}).get("latency", {}).get("accuracy", {})
    if not same or not accuracy.get("schedules") or len(accuracy.get("pairs_ms", [])) != len(accuracy["schedules"]):
        return None
    schedules = [[(int(p), int(m)) for p, m in s] for s in accuracy["schedules"]]
    measured = np.array([float(m) for _, m in accuracy["pairs_ms"]])
    return accuracy_report(MeasuredCost(data, merging=accuracy.get("merging", "rank")), schedules, measured)


def keep_accuracy(data: dict[str, Any], report: dict[str, Any]) -> str:
    """Store the report in the cost model's latency block and keep the correction fitted on the
    measured models; returns the printable summary."""
    latency = data["quantities"]["latency"]
    latency["correction"] = {**report["correction"], "source": f"whole models measured by hwsearch fit --measure "
                             f"({report['merging']} merging, and dense)"}
    latency["accuracy"] = {k: v for k, v in report.items() if k != "correction"}
    c = report["correction"]
    if "step_scale" not in c:
        form = f"one scale ({c['scale']:.3f} x)"
    elif c["step_scale"] == 0:
        form = f"steps free (0 x; blocks {c['scale']:.3f} x)"
    else:
        form = f"steps scaled on their own ({c['step_scale']:.3f} x vs {c['scale']:.3f} x the blocks)"
    errors = ", ".join(f"{k} {v:.3f} ms" for k, v in report["loo_mae_ms"].items())
    return (f"whole-model correction: {form}; leave-one-out mean absolute error {errors}\n"
            f"accuracy on {report['models']} whole models measured here (leave-one-out correction): MAPE "
            f"{100 * report['mape']:.1f}%, within 5% {100 * report['within_5pct']:.0f}%, within 10% "
            f"{100 * report['within_10pct']:.0f}%, Spearman {report['spearman']:.3f}")
