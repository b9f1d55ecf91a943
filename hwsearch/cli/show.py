"""``hwsearch show``: token maps of a schedule, one PNG per image (deploy mode's own bookkeeping)."""
from __future__ import annotations

import argparse

from hwsearch.pages import show


def add_arguments(sh: argparse.ArgumentParser) -> None:
    sh.add_argument("schedule", help="schedule YAML")
    sh.add_argument("--image", action="append", metavar="PATH",
                    help="an image (repeatable; default: the held-out photos), cropped as the model sees it")
    sh.add_argument("--blocks", help="blocks to draw, e.g. 3,6,11 (default: every third compressing block "
                                     "and the last)")
    sh.add_argument("--model", help="must be the schedule's model (a check)")
    sh.add_argument("--checkpoint", help="weights (default: the one the schedule records)")
    sh.add_argument("--out-dir", help="folder for the PNGs (default: the results report/ folder beside the "
                                      "schedules/ folder)")


def run(args: argparse.Namespace) -> int:
    for path in show(args.schedule, args.image, args.blocks, args.model, args.checkpoint, args.out_dir):
        print(f"wrote {path}")
    return 0
