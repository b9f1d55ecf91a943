"""``python -m profilers run BUNDLE_DIR`` (and ``build-engine``): device-side, no torch needed."""
from __future__ import annotations

import argparse
import sys

from profilers.backends import BackendUnavailable
from profilers.bundle import BundleError
from profilers.meters import MeterUnavailable


def _progress(i: int, total: int, name: str) -> None:
    print(f"[{i}/{total}] {name}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m profilers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure every graph in a bundle (resumable)")
    run.add_argument("bundle")
    run.add_argument("--out", help="CSV to append to (default BUNDLE/measurements.csv)")
    run.add_argument("--backend", choices=["onnxruntime", "torch", "tensorrt"], help="override the target's")
    run.add_argument("--timing", action="append", default=[], metavar="KEY=VALUE",
                     help="override the target's timing protocol, e.g. repeats=3 (quick smoke runs)")
    build = sub.add_parser("build-engine", help="build TensorRT engines for every graph (no timing)")
    build.add_argument("bundle")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            from profilers.runner import run_bundle

            overrides = {}
            for item in args.timing:
                key, _, value = item.partition("=")
                overrides[key] = float(value)
            out = run_bundle(args.bundle, args.out, args.backend, progress=_progress, timing=overrides)
            print(f"wrote {out}")
        else:
            from profilers.engines import build_all

            for line in build_all(args.bundle):
                print(line)
    except (BundleError, BackendUnavailable, MeterUnavailable, ValueError) as exc:  # ValueError: --timing
        print(f"profilers: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
