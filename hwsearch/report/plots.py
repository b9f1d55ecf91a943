"""Every PNG hwsearch draws, through one :func:`save_png` (a file) or :func:`figure_png` (bytes for
an HTML page): profile curves, cost-model scatter, study Pareto front and history, a schedule's
kept tokens, per-block costs and predicted vs measured latency."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hwsearch.io import atomic_path  # noqa: E402

PARTS = ("attn", "mlp", "block")


def save_png(fig: Any, out: Path, **savefig: Any) -> Path:
    """Save a figure as PNG atomically (temp + rename) and close it."""
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, **savefig)
    plt.close(fig)
    return out


def figure_png(fig: Any) -> bytes:
    """A figure as PNG bytes (for pages that carry their images inline), closed."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def kept_tokens_figure(counts: list[tuple[int, int]], num_tokens: int, title: str) -> Any:
    """Per block: tokens entering, kept after pruning, kept after merging; dense as a line."""
    blocks = np.arange(len(counts))
    entering = [num_tokens] + [m for _, m in counts[:-1]]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.axhline(num_tokens, c="gray", ls="--", lw=1, label=f"dense ({num_tokens})")
    ax.bar(blocks - 0.2, [p for p, _ in counts], width=0.4, label="after prune", color="tab:orange")
    ax.bar(blocks + 0.2, [m for _, m in counts], width=0.4, label="after merge", color="tab:blue")
    ax.step(blocks, entering, where="mid", c="k", lw=1, label="entering")
    ax.set(xlabel="block", ylabel="tokens (prefix included)", title=title, xticks=blocks)
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(alpha=0.3, axis="y")
    return fig


def block_costs_figure(parts: list[dict[str, float]], dense: list[dict[str, float]], unit: str, title: str) -> Any:
    """Per block, stacked attention / MLP / compression step of the schedule beside dense's."""
    blocks = np.arange(len(parts))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for offset, rows, alpha, who in ((-0.2, dense, 0.35, "dense "), (0.2, parts, 1.0, "")):
        bottom = np.zeros(len(rows))
        for key, color in (("attn", "tab:green"), ("mlp", "tab:purple"), ("compress", "tab:red")):
            values = np.array([r[key] for r in rows])
            ax.bar(blocks + offset, values, width=0.4, bottom=bottom, color=color, alpha=alpha,
                   label=f"{who}{key}" if (who == "" or key != "compress") else None)
            bottom += values
    ax.set(xlabel="block", ylabel=unit, title=title, xticks=blocks)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, axis="y")
    return fig


def latency_figure(rows: list[tuple[str, float, float | None, float | None]], budget: float | None, unit: str,
                   title: str) -> Any:
    """One bar per (label, value, p10, p90): predicted and measured, p10-p90 as error bars."""
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(rows)))
    y = np.arange(len(rows))
    colors = [("tab:gray" if "dense" in r[0] else "tab:blue") if r[2] is not None else  # measured
              ("lightgray" if "dense" in r[0] else "lightsteelblue") for r in rows]  # predicted
    ax.barh(y, [r[1] for r in rows], color=colors)
    spread = [(i, r) for i, r in enumerate(rows) if r[2] is not None and r[3] is not None]
    if spread:  # measured rows: p10-p90
        ax.errorbar([r[1] for _, r in spread], [i for i, _ in spread], fmt="none", ecolor="k", capsize=3,
                    xerr=[[r[1] - r[2] for _, r in spread], [r[3] - r[1] for _, r in spread]])
    if budget:
        ax.axvline(budget, c="tab:red", ls="--", lw=1, label=f"budget {budget:g} {unit}")
        ax.legend(fontsize=8)
    ax.set(yticks=y, yticklabels=[r[0] for r in rows], xlabel=unit, title=title)
    ax.invert_yaxis()
    ax.grid(alpha=0.3, axis="x")
    return fig


def plot_profile(rows: list[dict[str, Any]], out: Path) -> Path:
    """One panel for latency, one for energy where measured; one line per (part, batch)."""
    has_energy = any(r.get("energy_mj") not in (None, "") for r in rows)
    fig, axes = plt.subplots(1, 2 if has_energy else 1, figsize=(12 if has_energy else 7, 4.5), squeeze=False)
    for part in PARTS:
        for batch in sorted({int(r["batch"]) for r in rows}):
            sel = sorted((r for r in rows if r["part"] == part and int(r["batch"]) == batch),
                         key=lambda r: int(r["tokens"]))
            if not sel or (part == "block" and len({int(r["tokens"]) for r in sel}) == 1):
                continue
            n = [int(r["tokens"]) for r in sel]
            ax = axes[0][0]
            ax.plot(n, [float(r["median_ms"]) for r in sel], label=f"{part} (batch {batch})")
            ax.fill_between(n, [float(r["p10_ms"]) for r in sel], [float(r["p90_ms"]) for r in sel], alpha=0.25)
            if has_energy:
                axes[0][1].plot(n, [float(r["energy_mj"] or "nan") for r in sel], label=f"{part} (batch {batch})")
    target, model = rows[0]["target"], rows[0]["model"]
    axes[0][0].set(xlabel="tokens", ylabel="latency, ms (median; band p10-p90)", title=f"{model} on {target}")
    axes[0][0].legend()
    axes[0][0].grid(alpha=0.3)
    if has_energy:
        axes[0][1].set(xlabel="tokens", ylabel="energy per inference, mJ (idle subtracted)")
        axes[0][1].grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, out)


def scatter_png(report: dict[str, Any], out: Path, title: str) -> Path:
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
    return save_png(fig, out)


def method_of(origin: str) -> str:
    """The method a trial's origin names (``sampler:tpe`` -> ``tpe``)."""
    return origin.split(":", 1)[1] if origin.startswith("sampler:") else origin


MARKERS = {"gradient": ("*", 260, "black"), "baseline:tome": ("D", 90, "tab:red"),
           "baseline:evit": ("s", 90, "tab:purple"), "baseline:uniform": ("^", 90, "tab:brown")}


def pareto_png(rows: list[dict[str, Any]], front: list[int], budget: float, unit: str, quality: str,
               out: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    samplers = sorted({r["origin"] for r in rows if r["origin"].startswith("sampler:")})
    for origin in samplers:
        sel = [r for r in rows if r["origin"] == origin]
        ax.scatter([r["cost"] for r in sel], [r["quality"] for r in sel], s=16, alpha=0.6, label=method_of(origin))
    for rank, (origin, (marker, size, color)) in enumerate(MARKERS.items()):
        sel = [r for r in rows if r["origin"] == origin]
        if sel:  # the gradient result on top: hand baselines often land on the same point
            ax.scatter([r["cost"] for r in sel], [r["quality"] for r in sel], marker=marker, s=size, c=color,
                       edgecolors="white", zorder=10 - rank, label=origin)
    pts = sorted((r["cost"], r["quality"]) for r in rows if r["number"] in front)
    if pts:
        ax.step([c for c, _ in pts], [q for _, q in pts], where="post", c="gray", lw=1, label="Pareto front")
    ax.axvline(budget, ls="--", c="k", lw=1, label="budget")
    ax.set(xlabel=f"predicted cost, {unit}", ylabel=quality, title="quality vs cost (all trials in the study)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, out)


def history_png(study: Any, quality: str, out: Path) -> Path:
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.visualization.matplotlib import plot_optimization_history

    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    ax = plot_optimization_history(study, target=lambda t: t.values[0], target_name=quality)
    return save_png(ax.figure, out, bbox_inches="tight")
