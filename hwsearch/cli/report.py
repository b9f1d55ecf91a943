"""``hwsearch report``: plots of a profile (latency, and energy where measured, vs token count)."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwsearch.profiling.table import read_profile
from hwsearch.report.plots import plot_profile


def add_arguments(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("--profile", required=True, help="results/<target>/<model>/profile.csv")
    rep.add_argument("--out-png", help="output PNG (default: beside the profile, report/profile.png)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out_png) if args.out_png else Path(args.profile).with_name("report") / "profile.png"
    print(f"wrote {plot_profile(read_profile(args.profile), out)}")
    return 0
