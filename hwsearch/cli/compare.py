"""``hwsearch compare``: methods of one study side by side: table, Pareto/history PNGs, HTML."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwsearch.cli.common import target_for
from hwsearch.cost.fit import load_costmodel
from hwsearch.errors import HwsearchError
from hwsearch.io import redact, safe_name
from hwsearch.model.zoo import DEFAULT_MODEL
from hwsearch.pages import trial_pages
from hwsearch.report.compare import pareto_front, summarize, table, write_report
from hwsearch.search.study import MODEL_SOURCE, open_study, print_importances, question, trial_rows
from hwsearch.workspace import Workspace


def add_arguments(cmp: argparse.ArgumentParser) -> None:
    cmp.add_argument("--target")
    cmp.add_argument("--model", help="model name (default: the embedded DINOv2 ViT-S/14)")
    cmp.add_argument("--study", help="study name (default: the newest journal)")
    cmp.add_argument("--storage", help="Optuna storage URL (default: the JournalStorage file)")
    cmp.add_argument("--out", default="results")


def run(args: argparse.Namespace) -> int:
    if args.study:
        safe_name(args.study, "--study")
    target = target_for(args)
    ws = Workspace(Path(args.out), target, args.model or DEFAULT_MODEL)
    folder = ws.studies
    name = args.study
    if not name:
        journals = sorted(folder.glob("*.journal"), key=lambda p: p.stat().st_mtime)
        if args.storage or not journals:
            raise HwsearchError(f"give --study NAME (no study journal under {folder})")
        name = journals[-1].stem
    storage = args.storage or str(folder / f"{name}.journal")
    study = open_study(storage, name, None)
    rows = trial_rows(study)
    if not rows:
        raise HwsearchError(f"study {name!r} has no complete trials")
    attrs = question(study)
    summary = summarize(rows, float(attrs["budget"]) * (1 + float(attrs.get("tolerance", 0.0))))
    print(f"study {name}: {len(rows)} complete trials; quality = {attrs['quality']}; cost = predicted "
          f"{attrs['cost']} ({attrs['unit']}); budget {float(attrs['budget']):.3f}")
    print(table(summary, attrs["unit"]))
    importances = print_importances(study)
    costmodel = load_costmodel(ws.costmodel_json) if ws.costmodel_json.is_file() else None
    links = trial_pages(folder / name, rows, pareto_front(study), attrs, study.user_attrs.get(MODEL_SOURCE, {}),
                        costmodel)
    paths = write_report(folder / name, study, rows, summary, importances, float(attrs["budget"]),
                         attrs["unit"], attrs["quality"], links)
    print(f"wrote {len(links)} schedule pages under {folder / name / 'report'}")
    print("wrote " + ", ".join(str(p) for p in paths))
    print(f"dashboard: optuna-dashboard {redact(storage)}")
    return 0
