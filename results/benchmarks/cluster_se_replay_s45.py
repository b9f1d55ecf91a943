"""Session 45: the search's end decision of vs_tome.py batch 1 at 0.7 (s45, 83e8fc1: the searched schedule kept at
+0.0005, one standard error 0.0004, then -0.0022 [-0.0041, -0.0004] vs ToMe at equal measured latency) replayed:
per search photo, the per-image standard error and the one that counts photos (clustered: the search images are
crops of five photos), and the held-out difference per photo. Quality only (nothing timed)."""
import sys

sys.path.insert(0, "benchmarks")
import bench  # noqa: E402

from hwsearch.model.vit import CompressedViT  # noqa: E402
from hwsearch.quality import collect, group_indices  # noqa: E402
from hwsearch.search.baselines import solve  # noqa: E402
from hwsearch.search.finish import paired_gain, schedule_losses  # noqa: E402

SEARCHED = [[257, 230], [230, 212], [212, 201], [201, 187], [187, 178], [178, 166], [166, 149], [149, 129], [129, 108],
            [105, 85], [85, 69], [69, 55]]
SEARCHED_ON = 55.655  # ms predicted: the budget the search ran on (its start priced by measurement)


def clustered_se(gain, groups):
    """CR1 standard error of the mean of ``gain`` with the photos as clusters."""
    idx = group_indices(groups)
    g, n, mean = len(idx), len(gain), float(gain.mean())
    total = sum(float((gain[i] - mean).sum()) ** 2 for i in idx.values())
    return (total * g / (g - 1)) ** 0.5 / n


b = bench.setup(bench.parser(__doc__, num_images=1000).parse_args(["--target", "cpu_onnxruntime_b1"]))
model = CompressedViT(b.vit, merging="similarity")
cost = b.latency_cost()
start = solve("tome", cost, SEARCHED_ON, model.depth, model.num_prefix, 0)
print(f"start {start}\npredicted searched {cost.cost(SEARCHED):.3f}, start {cost.cost(start):.3f} ms", flush=True)
ref = collect(model, b.search_set)
losses = schedule_losses(model, b.search_set, ref, None, {"searched": SEARCHED, "start": start}, 32)
gain, se = paired_gain(losses["start"], losses["searched"])
per = {p: float(gain[i].mean()) for p, i in group_indices(b.search_set.groups).items()}
print(f"search gain {float(gain.mean()):+.5f}: per-image SE {se:.5f} ({float(gain.mean()) / se:.2f} SE), "
      f"photo-clustered SE {clustered_se(gain, b.search_set.groups):.5f} "
      f"({float(gain.mean()) / clustered_se(gain, b.search_set.groups):.2f} SE)\n  per photo "
      + ", ".join(f"{k} {v:+.5f}" for k, v in per.items()), flush=True)
held = b.held_out_cosines(SEARCHED) - b.held_out_cosines(start)
print(f"held-out vs start {float(held.mean()):+.4f}: " + ", ".join(
    f"{p} {float(held[i].mean()):+.4f}" for p, i in group_indices(b.held_out.groups).items()), flush=True)
