"""``hwsearch``: search, measure, compare and deploy token-compression schedules for ViTs.

Commands: optimize (gradient search under a budget), evaluate (measured check of a schedule),
profile (measure parts on a target), fit (cost model from a profile), sample (Optuna study),
compare (methods in a study), export (checked ONNX), deploy (engine/session, measured), report
(a schedule's HTML page, or profile plots), show (token maps of a schedule on images).
User errors are one line on stderr and exit code 2 (never a traceback).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from hwsearch.errors import HwsearchError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

COMMANDS = {
    "optimize": "search a per-block prune/merge schedule under a budget",
    "evaluate": "dense vs compressed: GMACs, measured latency, fidelity",
    "profile": "measure block/part latency (and energy) across token counts",
    "fit": "fit costmodel.json (per-part latency tables) from profile.csv",
    "sample": "Optuna study of sampled schedules (gradient result and baselines in it)",
    "compare": "table, Pareto/history PNGs and HTML from a study",
    "export": "static-shape ONNX of a schedule, checked against PyTorch",
    "deploy": "export + engine/session for the target, measured (or a device bundle)",
    "report": "a schedule's HTML page (or plots from a profile)",
    "show": "token maps of a schedule on images (kept, pruned, merged patches per block)",
}


def _module(command: str):  # type: ignore[no-untyped-def]
    """The command's module: ``add_arguments(parser)`` and ``run(args) -> int``."""
    return importlib.import_module(f"hwsearch.cli.{command}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hwsearch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for command, text in COMMANDS.items():
        _module(command).add_arguments(sub.add_parser(command, help=text, description=text))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(_module(args.command).run(args) or 0)
    except HwsearchError as exc:
        print(f"hwsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hwsearch: interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
