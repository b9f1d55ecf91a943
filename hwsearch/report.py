"""Plots as PNG: latency (and energy) vs token count per part, with the p10-p90 band."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from hwsearch.io import atomic_path  # noqa: E402

PARTS = ("attn", "mlp", "block")


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
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return out
