"""Session 44: vs_tome batch 1 at 0.6 lost to ToMe r = 19.92 (-0.0042, chelsea -0.0228). Per search photo and
per held-out photo: the search's loss and held-out cosine of hwsearch's schedule, ToMe r = 19.92, the schedule's
worst 20% of search images. Quality only (nothing timed). Run from benchmarks/: python ../results/benchmarks/..."""
import sys

sys.path.insert(0, "benchmarks")
import bench  # noqa: E402

from hwsearch.model.vit import CompressedViT  # noqa: E402
from hwsearch.quality import by_group, collect  # noqa: E402
from hwsearch.search.baselines import tome  # noqa: E402
from hwsearch.search.finish import schedule_losses  # noqa: E402

args = bench.parser(__doc__, num_images=1000).parse_args(["--target", "cpu_onnxruntime_b1"])
b = bench.setup(args)
model = CompressedViT(b.vit, merging="similarity")
schedules = {
    "hwsearch (vs_tome b1 0.6, s44)": [[257, 224], [224, 197], [197, 178], [178, 166], [166, 153], [153, 136],
                                        [136, 122], [122, 104], [104, 84], [84, 62], [62, 42], [42, 31]],
    "ToMe r=19.92": tome(model.num_tokens, model.num_prefix, model.depth, 19.916666666666668, 0),
}
losses = schedule_losses(model, b.search_set, collect(b.model, b.search_set), None, schedules, 32)
for name, counts in schedules.items():
    held = b.held_out_cosines(counts)
    photos = " ".join(f"{k} {v:.5f}" for k, v in by_group(losses[name], b.search_set.groups).items())
    worst = float(losses[name].topk(len(losses[name]) // 5).values.mean())
    print(f"{name}: {[list(c) for c in counts]}\n  search loss {float(losses[name].mean()):.5f} ({photos}; "
          f"worst 20% {worst:.5f})\n  held-out {float(held.mean()):.4f} "
          + " ".join(f"{k} {v:.4f}" for k, v in by_group(held, b.held_out.groups).items()), flush=True)
