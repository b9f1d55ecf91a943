"""``hwsearch compare``: methods in one study side by side: table, Pareto PNG, history PNG, HTML.

Per method (the sampler's trials, the gradient result, each hand baseline): trials, best quality
meeting the budget, hypervolume of its (quality, cost) points, and the evaluations and wall time it
needed to reach the gradient result's quality at no more than its cost.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from hwsearch.io import write_json
from hwsearch.report.html import html_page
from hwsearch.report.plots import history_png, method_of, pareto_png


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """2-D hypervolume of (quality up, cost down) points against ``ref = (worst quality, worst cost)``."""
    pts = sorted((c, q) for q, c in points if q > ref[0] and c < ref[1])
    volume, best_q = 0.0, ref[0]
    for i, (c, q) in enumerate(pts):  # sweep by cost; each point adds the area its quality gains
        best_q = max(best_q, q)
        next_c = pts[i + 1][0] if i + 1 < len(pts) else ref[1]
        volume += (next_c - c) * (best_q - ref[0])
    return volume


def summarize(rows: list[dict[str, Any]], limit: float) -> dict[str, dict[str, Any]]:
    """One entry per method (feasible: cost <= ``limit``); 'reach' compares with the gradient trial."""
    by_method: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_method[method_of(r["origin"])].append(r)
    ref = (min(r["quality"] for r in rows), max(r["cost"] for r in rows) * 1.0001)
    gradient = by_method.get("gradient", [None])[0]
    out = {}
    for method, trials in by_method.items():
        feasible = [r for r in trials if r["cost"] <= limit]
        best = max(feasible, key=lambda r: r["quality"]) if feasible else None
        entry: dict[str, Any] = {
            "trials": len(trials), "best_quality": best["quality"] if best else None,
            "best_cost": best["cost"] if best else None, "best_trial": best["number"] if best else None,
            "hypervolume": hypervolume([(r["quality"], r["cost"]) for r in trials], ref),
            "eval_seconds": sum(r["seconds"] for r in trials)}
        if gradient is not None and method != "gradient":
            entry.update(_reach(trials, gradient))
        if method == "gradient":
            entry["search_seconds"] = trials[0].get("search_seconds")
        out[method] = entry
    return out


def _reach(trials: list[dict[str, Any]], gradient: dict[str, Any]) -> dict[str, Any]:
    """Evaluations and wall time until a trial matched the gradient result (quality >= and cost <=)."""
    seconds = 0.0
    for i, r in enumerate(trials):
        seconds += r["seconds"]
        if r["quality"] >= gradient["quality"] and r["cost"] <= gradient["cost"]:
            return {"reached_gradient_after": i + 1, "reached_gradient_seconds": seconds}
    return {"reached_gradient_after": None, "reached_gradient_seconds": None}


def table(summary: dict[str, dict[str, Any]], unit: str) -> str:
    head = (f"{'method':18s}{'trials':>7s}{'best quality':>14s}{'cost ' + unit:>12s}{'hypervolume':>13s}"
            f"{'reach gradient':>16s}")
    lines = [head]
    for method, e in sorted(summary.items(), key=lambda kv: -(kv[1]["best_quality"] or -1)):
        quality = f"{e['best_quality']:.4f}" if e["best_quality"] is not None else "none feasible"
        cost = f"{e['best_cost']:.3f}" if e["best_cost"] is not None else "-"
        if method == "gradient":
            reach = f"{e['search_seconds'] or 0:.0f} s search" if e.get("search_seconds") is not None else "-"
        elif "reached_gradient_after" not in e:
            reach = "-"
        elif e["reached_gradient_after"] is None:
            reach = f"never ({e['trials']})"
        else:
            reach = f"{e['reached_gradient_after']} ev, {e['reached_gradient_seconds']:.0f} s"
        lines.append(f"{method:18s}{e['trials']:7d}{quality:>14s}{cost:>12s}{e['hypervolume']:13.5f}{reach:>16s}")
    return "\n".join(lines)


def pareto_front(study: Any) -> list[int]:
    """Trial numbers on the study's Pareto front (none for a single-objective study)."""
    return [t.number for t in study.best_trials] if len(study.directions) == 2 else []


def write_report(folder: Path, study: Any, rows: list[dict[str, Any]], summary: dict[str, Any],
                 importances: dict[str, float], budget: float, unit: str, quality: str,
                 links: list[tuple[str, str]] | None = None) -> list[Path]:
    """compare.json, pareto.png, history.png and index.html (linking ``links``: the trials' pages) in
    ``folder``."""
    front = pareto_front(study)
    text = table(summary, unit)
    pareto = pareto_png(rows, front, budget, unit, quality, folder / "pareto.png")
    history = history_png(study, quality, folder / "history.png")
    notes = [f"quality: {quality}; cost: predicted, {unit}; budget {budget:.3f} {unit}",
             "reach gradient: evaluations (and their wall time) a method needed for a trial at least as good as "
             "the gradient schedule at no more cost",
             "parameter importances (quality): " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                            list(importances.items())[:8])]
    page = html_page(f"hwsearch study {study.study_name}", text, [pareto, history], notes, folder / "index.html",
                     links or [])
    write_json(folder / "compare.json", {"study": study.study_name, "budget": budget, "unit": unit,
                                         "quality": quality, "summary": summary, "pareto_front": front,
                                         "importances": importances, "trials": rows})
    return [folder / "compare.json", pareto, history, page]


__all__ = ["hypervolume", "pareto_front", "summarize", "table", "write_report"]
