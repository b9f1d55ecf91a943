"""Session 44 (second run, f728e6a): would a per-photo rule have kept this searched schedule over its ToMe?
For each pair (searched, other): per search photo, the mean gain of the search's loss (other - searched, > 0 where
the searched schedule is better) and its standard error; and per held-out photo the cosine difference. Quality
only (nothing timed)."""
import sys

sys.path.insert(0, "benchmarks")
import bench  # noqa: E402

from hwsearch.model.vit import CompressedViT  # noqa: E402
from hwsearch.quality import collect, group_indices  # noqa: E402
from hwsearch.search.baselines import tome  # noqa: E402
from hwsearch.search.finish import schedule_losses  # noqa: E402

args = bench.parser(__doc__, num_images=1000).parse_args(["--target", "cpu_onnxruntime_b1"])
b = bench.setup(args)
model = CompressedViT(b.vit, merging="similarity")
n, p, d = model.num_tokens, model.num_prefix, model.depth
PAIRS = {
    "vs_tome b1 0.6 (s44, f728e6a, held-out -0.0033) vs ToMe r=19.17": (
        [[257, 227], [227, 199], [199, 181], [181, 165], [165, 152], [152, 140], [140, 128], [128, 112], [112, 95],
         [95, 74], [74, 53], [53, 40]], tome(n, p, d, 19.166666666666668, 0)),
}
ref = collect(b.model, b.search_set)
for name, (searched, other) in PAIRS.items():
    losses = schedule_losses(model, b.search_set, ref, None, {"searched": searched, "other": other}, 32)
    gain = losses["other"] - losses["searched"]
    parts = []
    for photo, idx in group_indices(b.search_set.groups).items():
        g = gain[idx]
        parts.append(f"{photo} {float(g.mean()):+.5f} (SE {float(g.std() / len(g) ** 0.5):.5f})")
    held = b.held_out_cosines(searched) - b.held_out_cosines(other)
    held_parts = [f"{photo} {float(held[idx].mean()):+.4f}" for photo, idx in group_indices(b.held_out.groups).items()]
    print(f"{name}\n  search gain {float(gain.mean()):+.5f} (SE {float(gain.std() / len(gain) ** 0.5):.5f}): "
          + ", ".join(parts) + f"\n  held-out {float(held.mean()):+.4f}: " + ", ".join(held_parts), flush=True)
