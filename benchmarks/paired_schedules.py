"""Two schedules of one model, fidelity on the same held-out images, paired.

    python benchmarks/paired_schedules.py A.yaml B.yaml [--num-images 1000]

Feature cosine to the dense model per held-out image (the default photos, as optimize holds out);
prints each schedule's mean and A - B with a paired bootstrap 95% interval, overall and per photo
(e.g. the quality cost of one schedule serving two targets vs one searched for the binding target
alone). Writes results/benchmarks/paired_<A>_<B>.json.
"""
from __future__ import annotations

import sys
from pathlib import Path

import bench  # noqa: E402 - benchmarks/bench.py: the shared set-up (sets HF_HUB_OFFLINE)

from hwsearch.errors import HwsearchError  # noqa: E402
from hwsearch.io import provenance, write_json  # noqa: E402
from hwsearch.schedule import load_schedule  # noqa: E402


def main() -> int:
    parser = bench.parser(__doc__, num_images=1000)
    parser.add_argument("first")
    parser.add_argument("second")
    args = parser.parse_args()
    a, b = load_schedule(args.first), load_schedule(args.second)
    if (a.model, a.img_size) != (b.model, b.img_size):
        raise HwsearchError(f"the schedules are for different models: {a.model} {a.img_size} px, {b.model} "
                            f"{b.img_size} px")
    args.model = None if a.provenance.get("checkpoint", "").startswith("embedded:") else a.model
    args.img_size = a.img_size
    setup = bench.setup(args)
    first, second = (setup.held_out_cosines(s.counts(), s.merging).numpy() for s in (a, b))
    names = [Path(args.first).stem, Path(args.second).stem]
    diff = bench.paired_interval(first, second)
    per_photo = bench.paired_by_photo(first, second, setup.held_out.groups)
    print(f"{len(first)} held-out images: {names[0]} {first.mean():.4f}, {names[1]} {second.mean():.4f}; "
          f"{names[0]} - {names[1]} {diff[0]:+.4f} [{diff[1]:+.4f}, {diff[2]:+.4f}]")
    for photo, (mean, lo, hi) in per_photo.items():
        print(f"  {photo}: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]")
    write_json(Path(args.out) / "benchmarks" / f"paired_{names[0]}_{names[1]}.json",
               {"schedules": [args.first, args.second], "fidelity": [float(first.mean()), float(second.mean())],
                "difference": diff, "per_photo": per_photo, "images": len(first), "provenance": provenance()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
