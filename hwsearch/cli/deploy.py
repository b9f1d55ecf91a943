"""``hwsearch deploy``: export, then the target's engine or session, measured (or a device bundle)."""
from __future__ import annotations

import argparse

from hwsearch.cli.common import add_schedule_args, run_on_schedule
from hwsearch.deploy.target import deploy_schedule


def add_arguments(dep: argparse.ArgumentParser) -> None:
    add_schedule_args(dep)
    dep.add_argument("--here", action="store_true",
                     help="measure on this device although it is not the one the target names (said in the output)")


def run(args: argparse.Namespace) -> int:
    return run_on_schedule(args, deploy_schedule, here=args.here)
