"""The flows behind a schedule's pictures: ``hwsearch show`` (token maps) and the schedule page
(``hwsearch report SCHEDULE``, and the end of ``optimize``, ``evaluate`` and ``compare``).

They gather what the drawing code in :mod:`hwsearch.report` needs: the schedule YAML, its
``.eval.json``, the fitted cost models of its targets, the model with the schedule's weights and the
images. Top level (like ``evaluate.py``) because it joins model, data, cost and the results layout.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwsearch.cost.fit import load_costmodel
from hwsearch.cost.flops import FlopsCost
from hwsearch.cost.measured import QUANTITIES, MeasuredCost
from hwsearch.data import ImageSet, held_out_photos, load_image
from hwsearch.errors import HwsearchError
from hwsearch.io import provenance
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.model.zoo import load_model, load_schedule_model
from hwsearch.report.plots import method_of
from hwsearch.report.schedule_page import PageData, budget_records, schedule_page
from hwsearch.report.tokenmap import default_blocks, token_map_pngs
from hwsearch.schedule import Schedule, load_schedule
from hwsearch.targets import load_target
from hwsearch.workspace import Workspace

PAGE_IMAGES = 2  # token maps on a schedule page


def report_folder(schedule_path: Path) -> Path:
    """``results/<target>/<model>/schedules/x.yaml`` -> ``results/<target>/<model>/report``; a schedule
    kept elsewhere gets ``report/`` beside it."""
    parent = schedule_path.parent
    return (parent.parent if parent.name == "schedules" else parent) / "report"


def page_path(schedule_path: Path) -> Path:
    return report_folder(schedule_path) / f"{schedule_path.stem}.html"


def schedule_model(schedule: Schedule, model: str | None = None, checkpoint: str | None = None) -> CompressedViT:
    """The deploy-mode model of ``schedule`` with the weights it records (or ``checkpoint``); ``model``,
    when given, must be the schedule's."""
    if model is not None and model != schedule.model:
        raise HwsearchError(f"the schedule was made for {schedule.model}, not {model}")
    return apply_schedule(load_schedule_model(schedule, checkpoint)[0], schedule)


def image_set(model: CompressedViT, paths: Sequence[str] | None, limit: int | None = None) -> ImageSet:
    """``paths`` as the model sees them (timm's eval crop), or the held-out photos."""
    size = int(model.vit.patch_embed.img_size[0])
    crop_pct = float(model.vit.pretrained_cfg.get("crop_pct", 0.875))
    if not paths:
        photos = held_out_photos(size, crop_pct)
        return photos.take(slice(0, limit)) if limit else photos
    crops = np.stack([load_image(p, size, crop_pct) for p in paths])
    return ImageSet(torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous(), None, "files",
                    groups=[Path(p).stem for p in paths])


def parse_blocks(text: str | None, schedule: Schedule) -> list[int]:
    """``--blocks 3,6,11`` (each a block of the model), or the default of :func:`default_blocks`."""
    if not text:
        return default_blocks(schedule.counts(), schedule.num_tokens)
    try:
        blocks = sorted({int(b) for b in text.split(",") if b.strip()})
    except ValueError:
        raise HwsearchError(f"--blocks: expected block numbers like 3,6,11 (got {text!r})") from None
    if not blocks or not all(0 <= b < len(schedule.blocks) for b in blocks):
        raise HwsearchError(f"--blocks: block numbers must be in [0, {len(schedule.blocks) - 1}] (got {text!r})")
    return blocks


def show(path: str, images: Sequence[str] | None = None, blocks: str | None = None, model: str | None = None,
         checkpoint: str | None = None, out: str | None = None) -> list[Path]:
    """Token maps of a schedule: one PNG per image, ``<schedule>.<image>.png`` in the report folder."""
    schedule = load_schedule(path)
    chosen = parse_blocks(blocks, schedule)
    compressed = schedule_model(schedule, model, checkpoint)
    pictures = image_set(compressed, images)
    return token_map_pngs(compressed, pictures, chosen, Path(out) if out else report_folder(Path(path)),
                          Path(path).stem)


def costmodels_for(path: Path, schedule: Schedule) -> dict[str, dict[str, Any]]:
    """The fitted cost models of the schedule's measured budgets that are at hand: a schedule under
    ``results/<target>/<model>/schedules/`` finds its targets' folders beside that one."""
    folder = path.parent.parent
    if path.parent.name != "schedules" or folder.name != schedule.model:
        return {}
    root, found = folder.parent.parent, {}
    for record in budget_records(schedule):
        name = record.get("on")
        if not name or name in found:
            continue
        try:
            found[name] = load_costmodel(Workspace(root, load_target(name), schedule.model).costmodel_json)
        except HwsearchError:
            continue  # the page then shows GMACs per block, and says so
    return found


def write_page(path: str | Path, model: CompressedViT | None = None,
               costmodels: dict[str, dict[str, Any]] | None = None, out: Path | None = None,
               png_dir: Path | None = None) -> Path:
    """The schedule's page (default :func:`page_path`); ``model``: the deploy-mode model when the caller
    has it already; ``png_dir``: also save the page's pictures there as PNG files."""
    path = Path(path)
    schedule = load_schedule(path)
    compressed = apply_schedule(model, schedule) if model is not None else schedule_model(schedule)
    data = PageData(path, schedule, compressed,
                    costmodels if costmodels is not None else costmodels_for(path, schedule),
                    read_evaluation(path.with_suffix(".eval.json")), image_set(compressed, None, PAGE_IMAGES),
                    png_dir)
    return schedule_page(data, out or page_path(path))


def read_evaluation(path: Path) -> dict[str, Any] | None:
    """``evaluate``'s JSON beside the schedule, when there is one; a corrupt one is one error."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("latency"), dict):
            raise ValueError("no latency measurements")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HwsearchError(f"{path}: corrupt evaluation ({str(exc).splitlines()[0]}): run hwsearch evaluate "
                            f"again or delete it") from None
    return data


def trial_pages(folder: Path, rows: list[dict[str, Any]], front: list[int], question: dict[str, Any],
                source: dict[str, Any], costmodel: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A schedule YAML (``folder/schedules/``) and its page (``folder/report/``) for every Pareto-front
    trial and every reference schedule (gradient, hand baselines) of a study; returns (link relative
    to ``folder``, label) per page for the study page."""
    vit, name, checkpoint = load_model(question["model"], source.get("checkpoint"), source.get("img_size"))
    model = CompressedViT(vit, merging=question.get("merging", "rank"))
    kind, goal, unit = question["cost"], float(question["budget"]), question["unit"]
    measured = kind in QUANTITIES and costmodel is not None
    cost = MeasuredCost(costmodel, QUANTITIES[kind], model.merging) if measured else \
        FlopsCost.from_model(vit, model.merging)  # type: ignore[arg-type]
    dense = cost.dense_cost(model.depth)
    budget = {"kind": kind, "value": goal / dense if kind == "flops_ratio" else goal, "target": goal, "dense": dense,
              "unit": unit, **({"on": question["target"]} if kind in QUANTITIES else {})}
    links = []
    for row in rows:
        if not (row["number"] in front or row["origin"] == "gradient" or row["origin"].startswith("baseline:")):
            continue
        label = f"trial{row['number']}_{method_of(row['origin']).replace(':', '-')}"
        schedule = Schedule.from_counts(
            name, int(vit.patch_embed.img_size[0]), model.num_tokens, model.num_prefix, row["counts"], budget=budget,
            predicted={"value": row["cost"], "unit": unit, "ratio_of_dense": row["cost"] / dense,
                       "error_vs_target": row["cost"] / goal - 1.0}, merging=model.merging,
            provenance={**provenance(), "model": name, "checkpoint": checkpoint, "target": question["target"],
                        "study_trial": row["number"], "origin": row["origin"],
                        "fidelity": {question["quality"]: row["quality"]}})
        path = schedule.save(folder / "schedules" / f"{label}.yaml")
        page = write_page(path, model, {question["target"]: costmodel} if measured else {})
        links.append((page.relative_to(folder).as_posix(),
                      f"{label}: {question['quality']} {row['quality']:.4f}, {row['cost']:.3f} {unit}"
                      + (" (Pareto front)" if row["number"] in front else "")))
    return links
