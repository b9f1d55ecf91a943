"""``hwsearch report``: a schedule's HTML page, or plots of a profile (latency, and energy where
measured, vs token count)."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwsearch.errors import HwsearchError
from hwsearch.pages import write_page
from hwsearch.profiling.table import read_profile
from hwsearch.report.plots import plot_profile


def add_arguments(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("schedule", nargs="?", help="schedule YAML: writes results/<target>/<model>/report/<name>.html")
    rep.add_argument("--profile", help="results/<target>/<model>/profile.csv: plots instead")
    rep.add_argument("--png-dir", help="schedule: also save the page's charts and token maps there as PNGs")
    rep.add_argument("--out", help="output file (default: the page in report/, or report/profile.png beside "
                                   "the profile)")


def run(args: argparse.Namespace) -> int:
    if bool(args.schedule) == bool(args.profile):
        raise HwsearchError("give a schedule YAML or --profile PROFILE_CSV (one of them)")
    if args.profile:
        path = Path(args.out) if args.out else Path(args.profile).with_name("report") / "profile.png"
        print(f"wrote {plot_profile(read_profile(args.profile), path)}")
    else:
        page = write_page(args.schedule, out=Path(args.out) if args.out else None,
                          png_dir=Path(args.png_dir) if args.png_dir else None)
        print(f"wrote {page}")
    return 0
