"""``hwsearch export``: static-shape ONNX of a schedule, checked against PyTorch."""
from __future__ import annotations

import argparse

from hwsearch.cli.common import add_schedule_args, run_on_schedule
from hwsearch.deploy.target import export_schedule

add_arguments = add_schedule_args


def run(args: argparse.Namespace) -> int:
    return run_on_schedule(args, export_schedule)
