"""Fit measured cost models from profile.csv and save them as plain JSON (no pickle).

Per part (attn(n), mlp(n), head(n)): a regressor chosen by k-fold cross-validation among
piecewise-linear interpolation, isotonic regression, monotone gradient boosting (keeps
staircases) and a quadratic — the smooth quadratic unless another is better by more than one
standard error of the CV error in ms (the search follows the table's slopes, and a staircase
fitted to noise gives it noise for prices) — then evaluated at EVERY integer count in the profiled range, so the
search may output any count (the STE ceil gives integers) and the model covers it. Outside the
profiled range the model refuses to predict. The compression step is the linear model of
:func:`hwsearch.profiling.additivity.compress_fit`; embed is its measured median. A whole-model correction
``overhead + scale * sum_of_parts`` is fitted on the measured whole models.

Latency is always fitted; energy (mJ per inference, idle subtracted) only when every part row of
the profile carries a meter reading, so an energy model exists only for a device that measured it.
costmodel.json keeps one block per quantity under ``quantities``, and the batch size and target
settings it was fitted for (a cost model of other settings is stale). Format 3: the compression
features' label moved with the restructure, and ``head`` pools size-weighted like the whole model.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hwsearch.errors import HwsearchError
from hwsearch.io import write_json
from hwsearch.profiling.additivity import COMPRESS_PARTS, compress_fit, whole_model_pairs
from hwsearch.profiling.table import read_profile

FORMAT = 3
COMPRESS_FEATURES = "hwsearch.profiling.additivity.compress_features"
TABLE_PARTS = ("attn", "mlp", "head")
# quantity -> (profile.csv column, unit); energy is fitted only from real meter readings
QUANTITIES = {"latency": ("median_ms", "ms"), "energy": ("energy_mj", "mJ")}
Regressor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _interp(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> np.ndarray:
    order = np.argsort(x)
    return np.interp(q, x[order], y[order])


def _isotonic(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> np.ndarray:
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(increasing=True, out_of_bounds="clip").fit(x, y).predict(q)


def _boosting(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> np.ndarray:
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(monotonic_cst=[1], max_iter=200, learning_rate=0.1, min_samples_leaf=2,
                                          random_state=0)
    return model.fit(x.reshape(-1, 1), y).predict(q.reshape(-1, 1))


def _quadratic(x: np.ndarray, y: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.polyval(np.polyfit(x, y, 2), q)


REGRESSORS: dict[str, Regressor] = {"interp": _interp, "isotonic": _isotonic, "boosting": _boosting,
                                    "quadratic": _quadratic}


def cv_predictions(reg: Regressor, x: np.ndarray, y: np.ndarray, folds: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """k-fold (held-out prediction, measurement) on the interior points (the end points stay in
    every training fold)."""
    interior = np.argsort(x)[1:-1]
    predicted, measured = [np.zeros(0)], [np.zeros(0)]
    for k in range(folds):
        held = interior[k::folds]
        if len(held) == 0:
            continue
        train = np.setdiff1d(np.arange(len(x)), held)
        predicted.append(reg(x[train], y[train], x[held]))
        measured.append(y[held])
    return np.concatenate(predicted), np.concatenate(measured)


SMOOTH = "quadratic"  # preferred within one standard error of the best: its slopes are not noise


def choose_regressor(x: np.ndarray, y: np.ndarray) -> tuple[str, dict[str, float], dict[str, float]]:
    """(name, CV mean absolute error per regressor, CV MAPE per regressor). The lowest absolute error
    (ms add up over blocks; a relative error at two tokens does not), except that the quadratic is
    taken when it is within one standard error of it and non-decreasing over the range (the
    one-standard-error rule: a staircase must beat the noise to be kept)."""
    held = {name: cv_predictions(reg, x, y) for name, reg in REGRESSORS.items()}
    errors = {name: np.abs(pred - meas) for name, (pred, meas) in held.items()}
    mae = {name: float(e.mean()) for name, e in errors.items()}
    mape = {name: float(np.abs(pred / meas - 1).mean()) for name, (pred, meas) in held.items()}
    best = min(mae, key=mae.__getitem__)
    standard_error = float(errors[best].std(ddof=1) / np.sqrt(len(errors[best])))
    grid = np.arange(x.min(), x.max() + 1)
    rises = bool(np.all(np.diff(REGRESSORS[SMOOTH](x, y, grid)) >= 0))
    if rises and mae[SMOOTH] <= mae[best] + standard_error:
        best = SMOOTH
    return best, mae, mape


def fit_part(x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Choose the regressor (:func:`choose_regressor`); tabulate it at every integer count."""
    if len(x) >= 4:
        best, mae, mape = choose_regressor(x, y)
        scores: dict[str, Any] = {"cv_mae": mae, "cv_mape": mape}
    else:  # too few points to cross-validate (head: 3 counts): interpolate
        best, scores = "interp", {"cv_mae": {"interp": None}, "cv_mape": {"interp": None}}
    counts = np.arange(int(x.min()), int(x.max()) + 1)
    table = np.maximum(REGRESSORS[best](x, y, counts.astype(float)), 0.0)
    return {"regressor": best, **scores, "low": int(counts[0]), "high": int(counts[-1]),
            "table": [round(float(v), 6) for v in table]}


def _measured(rows: list[dict[str, Any]], column: str) -> bool:
    """Every part row carries a value of ``column`` (energy only where a meter ran)."""
    parts = [r for r in rows if r["part"] in (*TABLE_PARTS, "embed", *COMPRESS_PARTS.values())]
    return bool(parts) and all(r.get(column) not in (None, "") for r in parts)


def fit_quantity(rows: list[dict[str, Any]], batch: int, quantity: str, where: Path) -> dict[str, Any]:
    """Tables, compression model and whole-model correction of one measured quantity."""
    column, unit = QUANTITIES[quantity]
    parts: dict[str, Any] = {}
    for part in TABLE_PARTS:
        sel = [r for r in rows if r["part"] == part]
        if not sel:
            raise HwsearchError(f"{where}: no {part!r} rows: profile again")
        parts[part] = fit_part(np.array([float(r["tokens"]) for r in sel]), np.array([float(r[column]) for r in sel]))
    embed = [float(r[column]) for r in rows if r["part"] == "embed"]
    coef, similarity = compress_fit(rows, batch, column), compress_fit(rows, batch, column, "similarity")
    if coef is None:
        raise HwsearchError(f"{where}: no 'compress' rows: profile again")
    compress = {"features": COMPRESS_FEATURES, "coef": [float(c) for c in coef],
                **({"similarity_coef": [float(c) for c in similarity]} if similarity is not None else {})}
    return {"unit": unit, "column": column, "parts": parts, "embed": float(np.median(embed)) if embed else 0.0,
            "compress": compress, "correction": _whole_model_correction(rows, batch, coef, column)}


def fit_costmodel(profile_csv: str | Path, batch: int | None = None,
                  settings_hash: str | None = None) -> dict[str, Any]:
    """Fit every part for one batch size: latency always, energy where every part row has it.

    ``settings_hash`` records the target settings the profile was measured with (meta.json).
    """
    path = Path(profile_csv)
    rows = read_profile(path)
    batches = sorted({int(r["batch"]) for r in rows})
    batch = batch or batches[0]
    if batch not in batches:
        raise HwsearchError(f"{path}: no measurements at batch {batch} (have {batches})")
    rows = [r for r in rows if int(r["batch"]) == batch]
    quantities = {q: fit_quantity(rows, batch, q, path) for q, (column, _) in QUANTITIES.items()
                  if q == "latency" or _measured(rows, column)}
    first = rows[0]
    return {"format": FORMAT, "target": first["target"], "model": first["model"], "model_hash": first["model_hash"],
            "batch": batch, "num_tokens": quantities["latency"]["parts"]["attn"]["high"],
            "rows_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "target_settings_hash": settings_hash,
            "quantities": quantities}


def affine_fit(parts: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """Least squares ``measured = overhead + scale * parts``; scale only when the parts barely differ."""
    if np.ptp(parts) < 0.05 * parts.mean():  # too little spread to separate overhead from scale
        return 0.0, float(np.mean(measured / parts))
    overhead, scale = np.linalg.lstsq(np.stack([np.ones_like(parts), parts], 1), measured, rcond=None)[0]
    return float(overhead), float(scale)


def _whole_model_correction(rows: list[dict[str, Any]], batch: int, coef: np.ndarray, column: str) -> dict[str, Any]:
    """``measured = overhead + scale * sum_of_parts`` on the measured whole models."""
    pairs = whole_model_pairs(rows, batch, coef, column)
    if len(pairs) < 2:
        return {"overhead": 0.0, "scale": 1.0, "models": len(pairs)}
    parts, measured = np.array(pairs).T
    overhead, scale = affine_fit(parts, measured)
    before = np.abs(parts / measured - 1)
    after = np.abs((overhead + scale * parts) / measured - 1)
    return {"overhead": float(overhead), "scale": float(scale), "models": len(pairs),
            "in_sample_mape_before": float(before.mean()), "in_sample_mape_after": float(after.mean())}


def save_costmodel(model: dict[str, Any], path: Path) -> Path:
    write_json(path, model)
    return path


def load_costmodel(path: str | Path) -> dict[str, Any]:
    """Read and check a costmodel.json (plain JSON; a corrupt file is one clear error)."""
    path = Path(path)
    if not path.is_file():
        raise HwsearchError(f"cost model not found: {path} (run hwsearch fit)")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise HwsearchError(f"{path}: cost model format {data.get('format')!r}, expected {FORMAT} "
                                f"(run hwsearch fit)")
        if "latency" not in data["quantities"]:
            raise KeyError("quantities.latency")
        for q in data["quantities"].values():
            for part in TABLE_PARTS:
                p = q["parts"][part]
                if len(p["table"]) != p["high"] - p["low"] + 1:
                    raise HwsearchError(f"{path}: table of {part!r} does not cover {p['low']}..{p['high']}")
            float(q["embed"]), list(q["compress"]["coef"]), float(q["correction"]["scale"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise HwsearchError(f"{path}: corrupt cost model ({type(exc).__name__}: {exc})") from None
    return data


def describe_reach(data: dict[str, Any], depth: int, num_prefix: int, rows: list[dict[str, Any]],
                   meta: dict[str, Any]) -> list[str]:
    """The rows the profile flagged; per quantity and merge operator the cheapest schedule's predicted
    cost vs dense; a warning with the profile's noise figures (CV, additivity) when no schedule is
    predicted cheaper than dense."""
    from hwsearch.cost.base import reachable_range
    from hwsearch.cost.measured import MeasuredCost

    lines = describe_flags(rows)
    for quantity, q in data["quantities"].items():
        for merging in ("rank", "similarity"):
            if merging == "similarity" and q["compress"].get("similarity_coef") is None:
                continue
            cheapest, dense = reachable_range(MeasuredCost(data, quantity, merging), depth, 1, num_prefix + 1)
            lines.append(f"{quantity} ({merging} merging): cheapest schedule {cheapest:.3f} {q['unit']} = "
                         f"{cheapest / dense:.3f} x dense ({dense:.3f})")
            if cheapest >= dense:
                lines.append(f"warning: no schedule is predicted cheaper than dense, the profile is too noisy "
                             f"({noise_figures(rows, meta, int(data['batch']))}); profile again on a quiet host")
    return lines


def describe_flags(rows: list[dict[str, Any]]) -> list[str]:
    """The rows the profile flagged (``cv_ok`` false: still above the target's CV bound after its
    re-measurements; ``throttle``: the device lowered its clocks), counted per part."""
    lines = []
    for what, flagged in (("stayed above the target's CV bound after re-measuring",
                           [r for r in rows if str(r.get("cv_ok", "")).strip().lower() == "false"]),
                          ("were measured while the device throttled", [r for r in rows if r.get("throttle")])):
        if flagged:
            parts = Counter(r["part"] for r in flagged)
            lines.append(f"note: {len(flagged)} of {len(rows)} profile rows {what} ("
                         + ", ".join(f"{k} {v}" for k, v in sorted(parts.items())) + "); kept, their noise is in "
                         "the CV errors above")
    return lines


def noise_figures(rows: list[dict[str, Any]], meta: dict[str, Any], batch: int) -> str:
    """The profile's noise: median and largest CV of its rows, sum-of-parts error on whole models."""
    cvs = sorted(float(r["cv"]) for r in rows if r.get("cv") not in (None, ""))
    figures = [f"row CV median {100 * cvs[len(cvs) // 2]:.1f}%, max {100 * cvs[-1]:.1f}%"] if cvs else []
    additivity = meta.get("additivity", {}).get(f"batch{batch}", {})
    if "mape" in additivity:
        figures.append(f"sum of parts vs whole models: {100 * additivity['mape']:.1f}% error")
    return "; ".join(figures) or "no noise figures recorded"


def _cv_summary(part: dict[str, Any], unit: str) -> str:
    """The CV errors of every regressor tried (mean absolute error, MAPE), or why none was tried."""
    if None in part["cv_mape"].values():
        return "interpolated: too few points to cross-validate"
    mae = part.get("cv_mae", {})  # a cost model fitted before the absolute-error rule has MAPE only
    return "CV error: " + ", ".join(f"{k} " + (f"{mae[k]:.3f} {unit} / " if k in mae else "") + f"{100 * v:.1f}%"
                                    for k, v in part["cv_mape"].items())


def describe_fit(data: dict[str, Any]) -> list[str]:
    """Printable lines: regressor and CV error per part, the whole-model correction."""
    lines = []
    for quantity, q in data["quantities"].items():
        for part, p in q["parts"].items():
            lines.append(f"{quantity} {part}: {p['regressor']} ({_cv_summary(p, q['unit'])}); table "
                         f"{p['low']}..{p['high']} tokens")
        c = q["correction"]
        if c["models"] >= 2:
            steps = f" + {c['step_scale']:.3f} x compression steps" if "step_scale" in c else ""
            mape = (f"; in-sample MAPE {100 * c['in_sample_mape_before']:.1f}% -> "
                    f"{100 * c['in_sample_mape_after']:.1f}%" if "in_sample_mape_before" in c else "")
            lines.append(f"{quantity} whole-model correction on {c['models']} measured models: {c['overhead']:.2f} "
                         f"{q['unit']} + {c['scale']:.3f} x parts{' (blocks)' if steps else ''}{steps}{mape}")
    if "energy" not in data["quantities"]:
        lines.append("energy: not in this profile (no power meter readings); latency only")
    return lines
