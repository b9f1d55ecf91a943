"""Sum of parts vs measured whole models: the linear compression-step model, the additivity report.

A deploy-mode block costs ``attn(n) + compress(n, p, m) + mlp(m)``; the model adds ``embed`` and
``head(m_last)``. The compression step is a non-negative least-squares linear model over
:func:`compress_features` of the measured (n, p, m) samples; :mod:`hwsearch.cost` reuses it.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from hwsearch.errors import HwsearchError
from hwsearch.schedule import Counts


def _median(rows: list[dict[str, Any]], part: str, tokens: int, batch: int, column: str = "median_ms") -> float:
    for r in rows:
        if r["part"] == part and int(r["tokens"]) == tokens and int(r["batch"]) == batch:
            return float(r[column])
    raise KeyError((part, tokens, batch))


COMPRESS_PARTS = {"rank": "compress", "similarity": "compress_similarity"}  # merge operator -> profiled part


def compress_fit(rows: list[dict[str, Any]], batch: int, column: str = "median_ms",
                 merging: str = "rank") -> np.ndarray | None:
    """Non-negative least-squares linear model of one operator's compression step (features:
    :func:`compress_features`); None when the profile has no samples of it.

    Every feature is work the step does (a fixed part, a ranking, gathers, the similarity matrix), so
    no coefficient may be negative: unconstrained least squares on 24 noisy samples gave the batch-8
    similarity term -0.0012 ms per p^2/4, which priced a merge at 257 tokens at -3.3 ms (free merging
    early, dear merging late: a reason for a shape that whole models did not show). Non-negative, the whole-model
    leave-one-out error of the measured cost models fell (batch 8: 12.4 -> 10.4 ms; batch 1: 0.630 ->
    0.587 ms, the 31 models of ``fit --measure``).

    ``column`` is the measured quantity: ``median_ms`` (latency) or ``energy_mj``.
    """
    data = [r for r in rows if r["part"] == COMPRESS_PARTS[merging] and int(r["batch"]) == batch]
    if not data:
        return None
    feats = np.array([compress_features(int(r["tokens"]), int(r["prune_kept"]), int(r["merge_kept"]), merging)
                      for r in data], dtype=float)
    from sklearn.linear_model import LinearRegression

    fit = LinearRegression(positive=True, fit_intercept=False)  # the fixed part is feature 0
    return fit.fit(feats, np.array([float(r[column]) for r in data])).coef_


def _number(v: Any) -> float:
    return float(v.detach()) if hasattr(v, "detach") else float(v)


def compress_features(n: Any, p: Any, m: Any, merging: str = "rank", step_probs: Any = None) -> list[Any]:
    """Ranking (n), gather (p); when merging: a fixed part, gather/scatter (p) and similarity
    (rank merging: sources x targets, (p-m) m; similarity merging: set A x set B, p^2 / 4, and its
    ranking only when the block prunes).

    Works on numbers and on tensors (the cost model differentiates through it). ``step_probs``
    (P(prune), P(merge)) make the "prunes"/"merges" indicators straight-through: their value stays
    0/1, their gradient reaches the probabilities (so one token pruned is seen to cost a ranking).
    """
    merges = _indicator(_number(m) < _number(p), step_probs[1] if step_probs is not None else None)
    if merging == "similarity":
        prunes = _indicator(_number(p) < _number(n), step_probs[0] if step_probs is not None else None)
        return [1.0, prunes * n, p, merges, merges * p, merges * p * p / 4]
    return [1.0, n, p, merges, merges * p, merges * (p - m) * m]


def _indicator(hard: bool, prob: Any) -> Any:
    """0/1, or with a probability its straight-through form (same value, the probability's gradient)."""
    return float(hard) if prob is None else float(hard) + prob - prob.detach()


def sum_of_parts(rows: list[dict[str, Any]], counts: Counts, batch: int, coef: np.ndarray,
                 column: str = "median_ms") -> float:
    """Whole-model latency (or energy, by ``column``) predicted by adding the measured parts."""
    n_in = counts[0][0]
    total = _median(rows, "embed", n_in, batch, column)
    for p, m in counts:
        total += _median(rows, "attn", n_in, batch, column) + _median(rows, "mlp", m, batch, column)
        if m < n_in:
            total += float(np.dot(coef, compress_features(n_in, p, m)))
        n_in = m
    heads = sorted((int(r["tokens"]), float(r[column])) for r in rows
                   if r["part"] == "head" and int(r["batch"]) == batch)
    return total + float(np.interp(n_in, [t for t, _ in heads], [v for _, v in heads]))


def whole_model_pairs(rows: list[dict[str, Any]], batch: int, coef: np.ndarray,
                      column: str = "median_ms") -> list[tuple[float, float]]:
    """(sum of parts, measured) for every measured whole model at ``batch``."""
    return [(sum_of_parts(rows, [tuple(c) for c in json.loads(r["schedule"])], batch, coef, column),
             float(r[column]))
            for r in rows if r["part"] == "model" and int(r["batch"]) == batch and r.get("schedule")
            and r.get(column) not in (None, "")]


def drift_corrected(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with timings divided by the chunk's ``drift`` (reference-graph ratio) where recorded."""
    out = []
    for r in rows:
        d = float(r["drift"]) if r.get("drift") not in (None, "") else 1.0
        out.append({**r, **{k: float(r[k]) / d for k in ("median_ms", "p10_ms", "p90_ms")}})
    return out


def additivity(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum of parts vs measured whole models (raw, and drift-corrected); the position check."""
    report = _additivity(rows)
    if any(r.get("drift") not in (None, "") for r in rows):
        for key, value in _additivity(drift_corrected(rows)).items():
            report[key]["drift_corrected"] = {k: value[k] for k in
                                              ("mape", "within_5pct", "within_10pct", "block_position_cv")}
    return report


def _additivity(rows: list[dict[str, Any]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for batch in sorted({int(r["batch"]) for r in rows}):
        coef = compress_fit(rows, batch)
        if coef is None:
            raise HwsearchError(f"profile has no 'compress' rows at batch {batch}: profile again")
        pairs = whole_model_pairs(rows, batch, coef)
        errors = np.array([p / m - 1 for p, m in pairs]) if pairs else np.zeros(0)
        blocks = [float(r["median_ms"]) for r in rows if r["part"] == "block" and int(r["batch"]) == batch]
        full = max(int(r["tokens"]) for r in rows if r["part"] == "attn")
        halves = _median(rows, "attn", full, batch) + _median(rows, "mlp", full, batch)
        report[f"batch{batch}"] = {
            "whole_models": len(pairs),
            "mape": float(np.abs(errors).mean()) if len(errors) else None,
            "within_5pct": float((np.abs(errors) <= 0.05).mean()) if len(errors) else None,
            "within_10pct": float((np.abs(errors) <= 0.10).mean()) if len(errors) else None,
            "mean_error": float(errors.mean()) if len(errors) else None,
            "pairs_ms": [[round(p, 3), round(m, 3)] for p, m in pairs],
            "compress_fit": [float(c) for c in coef],
            "block_position_cv": float(np.std(blocks) / np.mean(blocks)) if blocks else None,
            "attn_plus_mlp_vs_block": halves / float(np.median(blocks)) - 1 if blocks else None,
        }
    return report


def describe_additivity(report: dict[str, Any]) -> list[str]:
    """Printable lines of the additivity report (raw, and drift-corrected where recorded)."""
    lines = []
    for batch, r in report.items():
        if r["mape"] is None:
            continue
        lines.append(f"additivity ({batch}): sum of parts vs {r['whole_models']} measured whole models: "
                     f"{_errors(r)}; block position CV {100 * r['block_position_cv']:.1f}%")
        c = r.get("drift_corrected")
        if c:
            lines.append(f"  drift-corrected (reference graph per chunk): {_errors(c)}; block position "
                         f"CV {100 * c['block_position_cv']:.1f}%")
    return lines


def _errors(r: dict[str, Any]) -> str:
    return (f"MAPE {100 * r['mape']:.1f}%, within 5% {100 * r['within_5pct']:.0f}%, "
            f"within 10% {100 * r['within_10pct']:.0f}%")
