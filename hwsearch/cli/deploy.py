"""``hwsearch deploy``: export, then the target's engine or session, measured (or a device bundle)."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwsearch.cli.common import add_schedule_args, target_for
from hwsearch.deploy.target import deploy_schedule
from hwsearch.schedule import load_schedule


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_schedule_args(p)


def run(args: argparse.Namespace) -> int:
    target = target_for(args, load_schedule(args.schedule).provenance.get("target") or None)
    deploy_schedule(args.schedule, target, args.model, args.checkpoint, Path(args.out), args.out_dir, args.batch,
                    args.opset, args.parity_images)
    return 0
