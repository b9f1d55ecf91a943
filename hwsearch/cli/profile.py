"""``hwsearch profile``: measure the parts of a model on a target here, or make/import a device bundle."""
from __future__ import annotations

import argparse
from pathlib import Path

from hwsearch.cli.common import MODEL_HELP, TARGET_HELP, target_for
from hwsearch.errors import HwsearchError
from hwsearch.model.vit import CompressedViT
from hwsearch.model.zoo import load_model
from hwsearch.profiling.additivity import describe_additivity
from hwsearch.profiling.export import write_profile_bundle
from hwsearch.profiling.measure import profile_here
from hwsearch.profiling.table import import_profile, profile_meta
from hwsearch.targets import run_setup
from hwsearch.workspace import Workspace


def add_arguments(prof: argparse.ArgumentParser) -> None:
    prof.add_argument("--target", help=TARGET_HELP)
    prof.add_argument("--model", help=MODEL_HELP)
    prof.add_argument("--checkpoint", help="local weights (latency does not depend on them)")
    prof.add_argument("--img-size", type=int)
    prof.add_argument("--batch", type=int, help="batch size (default: the target's batch_sizes)")
    prof.add_argument("--whole-models", type=int, default=8, help="whole compressed models for the additivity check")
    prof.add_argument("--bundle", help="write a device bundle OUT.tar.gz instead of measuring here")
    prof.add_argument("--import", dest="import_csv", help="ingest measurements.csv from a device run")
    prof.add_argument("--apply-setup", action="store_true", help="run the target's setup steps (nvpmodel, ...)")
    prof.add_argument("--out", default="results")
    prof.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    target = target_for(args)
    vit, name, _ = load_model(args.model, args.checkpoint, args.img_size)
    model = CompressedViT(vit)
    batches = [args.batch] if args.batch else list(target.batch_sizes)
    ws = Workspace(Path(args.out), target, name)
    if args.import_csv:
        with ws.lock():
            path, report = import_profile(args.import_csv, ws.folder, profile_meta(target, name, vit, batches))
    elif args.bundle:
        tar = write_profile_bundle(Path(args.bundle), model, name, target, batches, args.whole_models)
        print(f"wrote {tar}: copy it to the device, then there:\n  tar xzf {tar.name} && python3 -m profilers run "
              f"bundle/\nand here: hwsearch profile --target {target.name} --import measurements.csv")
        return 0
    elif not target.is_local:
        raise HwsearchError(f"target {target.name} is not this host: use --bundle OUT.tar.gz, run "
                            f"'python3 -m profilers run bundle/' on the device, then --import measurements.csv")
    else:
        run_setup(target, args.apply_setup)
        with ws.lock():
            path, report = profile_here(target, model, name, batches, ws.folder, args.whole_models,
                                        not args.no_progress)
    print("\n".join([f"wrote {path} and {path.with_name('meta.json')}", *describe_additivity(report)]))
    return 0
