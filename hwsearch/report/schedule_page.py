"""One schedule's HTML page: target(s) and budget(s), predicted vs measured latency (p10-p90), kept
tokens per block against dense, the cost model's per-block breakdown, fidelity, token maps and the
commands that reproduce it. Everything comes from the schedule YAML, its ``.eval.json`` (when
evaluated), the fitted cost models and the deploy-mode model; the page carries its images inline."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsearch.cost.flops import FlopsCost
from hwsearch.cost.measured import QUANTITIES, MeasuredCost
from hwsearch.data import ImageSet
from hwsearch.model.vit import CompressedViT
from hwsearch.report.html import escape, note, png_img, table_html, write_page
from hwsearch.report.plots import block_costs_figure, figure_png, kept_tokens_figure, latency_figure
from hwsearch.report.tokenmap import default_blocks, token_map_figures
from hwsearch.schedule import Schedule


@dataclass
class PageData:
    """What a schedule's page is made of (``costmodels``: fitted cost-model JSON by target name)."""

    path: Path
    schedule: Schedule
    model: CompressedViT
    costmodels: dict[str, dict[str, Any]]
    evaluation: dict[str, Any] | None
    images: ImageSet
    png_dir: Path | None = None  # also write every picture of the page there, as ``<schedule>.<picture>.png``

    def image(self, png: bytes, alt: str) -> str:
        """The page's ``<img>`` of ``png``; saved under ``png_dir`` too when one is given."""
        if self.png_dir is not None:
            self.png_dir.mkdir(parents=True, exist_ok=True)
            slug = "_".join("".join(c if c.isalnum() else " " for c in alt).split())
            (self.png_dir / f"{self.path.stem}.{slug}.png").write_bytes(png)
        return png_img(png, alt)


def budget_records(schedule: Schedule) -> list[dict[str, Any]]:
    """The primary budget, then the others (several targets or latency + energy)."""
    first = {k: v for k, v in schedule.budget.items() if k != "also"}
    return ([first] if first else []) + list(schedule.budget.get("also", []))


def predicted_of(schedule: Schedule, index: int, record: dict[str, Any]) -> dict[str, Any]:
    if index == 0:
        return schedule.predicted
    key = f"{record.get('on')}:{record['kind']}"
    return schedule.predicted.get("also", {}).get(key, {})


def budgets_section(schedule: Schedule) -> str:
    rows = []
    for i, r in enumerate(budget_records(schedule)):
        pred = predicted_of(schedule, i, r)
        value = pred.get("value")
        rows.append([r.get("on", "(FLOPs: any device)"), r["kind"], f"{r['target']:.3f} {r['unit']}",
                     f"{r['dense']:.3f}", f"{value:.3f}" if value is not None else "-",
                     f"{100 * pred['error_vs_target']:+.2f}%" if "error_vs_target" in pred else "-"])
    if not rows:
        return note("this schedule records no budget")
    return table_html(["target", "budget", "value", "dense (predicted)", "schedule (predicted)", "vs budget"], rows)


def measured_runs(data: PageData) -> list[tuple[str, dict[str, Any]]]:
    """(where, {dense, compressed} measurements) from optimize's check and from evaluate."""
    runs = []
    measured = data.schedule.provenance.get("measured") or {}
    target = data.schedule.provenance.get("target", "")
    if "compressed" in measured:
        runs.append((f"optimize's check on {target}", measured))
    else:
        runs += [(f"optimize's check on {name}", m) for name, m in measured.items()]
    if data.evaluation:
        e = data.evaluation
        runs.append((f"evaluate on {e.get('measured_on')} (batch {e.get('batch')})", e["latency"]))
    return runs


def latency_section(data: PageData) -> str:
    records = [(i, r) for i, r in enumerate(budget_records(data.schedule)) if QUANTITIES.get(r["kind"]) == "latency"]
    bars: list[tuple[str, float, float | None, float | None]] = []
    for i, r in records:  # energy budgets: predicted in the budgets table (no energy measured here)
        pred = predicted_of(data.schedule, i, r)
        bars += [(f"{r['on']} predicted dense", r["dense"], None, None)]
        if "value" in pred:
            bars.append((f"{r['on']} predicted schedule", pred["value"], None, None))
    for where, run in measured_runs(data):
        for key in ("dense", "compressed"):
            m = run[key]
            bars.append((f"{where}: {'schedule' if key == 'compressed' else key}", m["median_ms"], m["p10_ms"],
                         m["p90_ms"]))
    if not bars:
        return note("a FLOPs schedule, not measured: run hwsearch evaluate on it for measured latency here")
    rows = [[label, f"{v:.2f}", f"{lo:.2f}-{hi:.2f}" if lo is not None else "predicted"] for label, v, lo, hi in bars]
    first = records[0][1] if records else None
    unit = first["unit"] if first else "ms"
    figure = latency_figure(bars, first["target"] if first else None, unit, "latency: predicted and measured "
                            "(median, p10-p90; dense and schedule measured in one run)")
    return (data.image(figure_png(figure), "predicted vs measured latency")
            + table_html(["", f"median {unit}", "p10-p90"], rows)
            + note("energy budgets are predicted only (the budgets table): optimize's check and evaluate "
                   "measure latency"))


def cost_model(data: PageData) -> FlopsCost | MeasuredCost:
    """The primary budget's cost model; GMACs for FLOPs schedules or when its fit is not at hand."""
    records = budget_records(data.schedule)
    if records and records[0]["kind"] in QUANTITIES and records[0].get("on") in data.costmodels:
        return MeasuredCost(data.costmodels[records[0]["on"]], QUANTITIES[records[0]["kind"]],
                            data.schedule.merging)
    return FlopsCost.from_model(data.model.vit, data.schedule.merging)


def blocks_section(data: PageData) -> str:
    counts, num = data.schedule.counts(), data.schedule.num_tokens
    kept = kept_tokens_figure(counts, num, f"kept tokens per block ({data.schedule.merging} merging)")
    cost = cost_model(data)
    parts, dense = cost.block_parts(counts), cost.block_parts([(num, num)] * len(counts))
    on = budget_records(data.schedule)[0].get("on") if isinstance(cost, MeasuredCost) else None
    where = f"fitted {cost.quantity} on {on}" if on else "FLOPs"
    figure = block_costs_figure(parts, dense, cost.unit, f"per-block cost ({where}; pale: dense)")
    rows = [[i, p, m, *(f"{part[k]:.3f}" for k in ("attn", "mlp", "compress"))]
            for i, ((p, m), part) in enumerate(zip(counts, parts, strict=True))]
    return (data.image(figure_png(kept), "kept tokens per block") + data.image(figure_png(figure), "per-block cost")
            + table_html(["block", "after prune", "after merge", f"attention {cost.unit}", f"MLP {cost.unit}",
                          f"compression {cost.unit}"], rows)
            + note(f"per-block cost from {where}: schedule total {cost.cost(counts):.3f} {cost.unit}, "
                   f"dense {cost.dense_cost(len(counts)):.3f}"
                   + (" (block terms times the whole-model correction's scale; its constant overhead "
                      "and embed/head are in the totals only)" if isinstance(cost, MeasuredCost) else "")))


def fidelity_section(data: PageData) -> str:
    rows = [[f"optimize: {k}", f"{v:.4f}"] for k, v in (data.schedule.provenance.get("fidelity") or {}).items()]
    if data.evaluation:
        rows += [[f"evaluate: {k}", f"{v:.4f}"] for k, v in data.evaluation.get("fidelity", {}).items()]
        rows += [[f"evaluate, {photo}: feature_cosine", f"{v:.4f}"]
                 for photo, v in (data.evaluation.get("feature_cosine_per_photo") or {}).items()]
    if not rows:
        return note("no fidelity recorded (run hwsearch evaluate on the schedule)")
    return table_html(["held-out agreement with the dense model", "value"], rows)


def maps_section(data: PageData) -> str:
    blocks = default_blocks(data.schedule.counts(), data.schedule.num_tokens)
    figures = token_map_figures(data.model, data.images, blocks)
    return "".join(data.image(figure_png(fig), f"token map: {name}") for name, fig in figures.items())


def commands_section(data: PageData) -> str:
    made = str(data.schedule.provenance.get("command", "")).split(" ", 1)
    command = "hwsearch " + made[1] if len(made) == 2 and made[0].endswith("hwsearch") else " ".join(made)
    path = shlex.quote(str(data.path))
    lines = [f"# made by (on {data.schedule.provenance.get('host', '?')}, "
             f"{data.schedule.provenance.get('date', '?')}):", command or "(not recorded)",
             f"hwsearch evaluate {path}", f"hwsearch show {path}", f"hwsearch report {path}"]
    return f"<pre>{escape(chr(10).join(lines))}</pre>"


def schedule_page(data: PageData, out: Path) -> Path:
    """Write the page (atomically) and return its path."""
    s = data.schedule
    summary = table_html(["model", "input", "tokens", "blocks", "merging", "schedule"],
                         [[s.model, f"{s.img_size} px", s.num_tokens, len(s.blocks), s.merging, data.path.name]])
    return write_page(out, f"hwsearch schedule {data.path.stem}", [
        ("schedule", summary), ("targets and budgets", budgets_section(s)), ("latency", latency_section(data)),
        ("tokens and cost per block", blocks_section(data)), ("fidelity", fidelity_section(data)),
        ("token maps (held-out photos)", maps_section(data)), ("reproduce", commands_section(data))])
