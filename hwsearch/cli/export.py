"""``hwsearch export``: static-shape ONNX of a schedule, checked against PyTorch."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwsearch.cli.common import add_schedule_args, target_for
from hwsearch.deploy.target import export_schedule
from hwsearch.schedule import load_schedule


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_schedule_args(p)


def run(args: argparse.Namespace) -> int:
    target = target_for(args, load_schedule(args.schedule).provenance.get("target") or None)
    export_schedule(args.schedule, target, args.model, args.checkpoint, Path(args.out), args.out_dir, args.batch,
                    args.opset, args.parity_images)
    return 0
