"""``hwsearch deploy``: export, then the target's engine or session, measured (or a device bundle)."""
from __future__ import annotations

import argparse

from hwsearch.cli.common import add_schedule_args, run_on_schedule
from hwsearch.deploy.target import deploy_schedule

add_arguments = add_schedule_args


def run(args: argparse.Namespace) -> int:
    return run_on_schedule(args, deploy_schedule)
