"""``hwsearch evaluate``: dense vs compressed on held-out images (GMACs, measured latency, fidelity)."""
from __future__ import annotations

import argparse

from hwsearch.cli.common import target_for
from hwsearch.evaluate import evaluate_schedule
from hwsearch.schedule import load_schedule


def add_arguments(ev: argparse.ArgumentParser) -> None:
    ev.add_argument("schedule", help="schedule YAML")
    ev.add_argument("--checkpoint", help="weights (default: the one the schedule records)")
    ev.add_argument("--data", help="as for optimize; its held-out split is used")
    ev.add_argument("--num-images", type=int, default=1000)
    ev.add_argument("--batch", type=int, help="latency batch size (default: the target's)")
    ev.add_argument("--threads", type=int, help="CPU threads (default: the target's, else 2)")
    ev.add_argument("--target", help="target the latency is measured for (default: the schedule's)")


def run(args: argparse.Namespace) -> int:
    target = target_for(args, load_schedule(args.schedule).provenance.get("target") or None)
    evaluate_schedule(args.schedule, target, args.checkpoint, args.data, args.num_images, args.batch, args.threads)
    return 0
