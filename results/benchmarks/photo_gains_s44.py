"""Session 44: would a per-photo rule have kept these searched schedules over their warm starts (or their ToMe)?
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
    "GMACs 0.6 (optimize --flops-ratio 0.6, s43) vs its start": (
        [[257, 239], [239, 230], [228, 217], [207, 188], [188, 178], [178, 161], [161, 152], [152, 137], [137, 123],
         [123, 89], [89, 59], [59, 36]],
        [[257, 240], [240, 223], [223, 207], [207, 191], [191, 175], [175, 159], [159, 143], [143, 127], [127, 111],
         [111, 95], [95, 79], [79, 63]]),
    "svu GMACs 0.5 learned (s43) vs ToMe (tome-paper)": (
        [[257, 229], [229, 219], [215, 204], [188, 170], [170, 149], [149, 129], [129, 115], [115, 97], [97, 79],
         [79, 58], [55, 29], [29, 15]],
        [[257, 236], [236, 215], [215, 194], [194, 174], [174, 154], [154, 134], [134, 114], [114, 94], [94, 74],
         [74, 54], [54, 34], [34, 18]]),
    "vs_tome b1 0.6 (s44) vs ToMe r=19.92": (
        [[257, 224], [224, 197], [197, 178], [178, 166], [166, 153], [153, 136], [136, 122], [122, 104], [104, 84],
         [84, 62], [62, 42], [42, 31]], tome(n, p, d, 19.916666666666668, 0)),
    "vs_tome b1 0.6 (s42) vs ToMe r=19.58": (
        [[257, 230], [230, 207], [207, 186], [186, 168], [168, 154], [154, 142], [142, 127], [127, 112], [112, 92],
         [92, 73], [73, 52], [52, 32]], tome(n, p, d, 19.583333333333332, 0)),
    "vs_tome b8 0.6 (s42) vs ToMe r=21.25": (
        [[256, 230], [230, 210], [210, 189], [189, 169], [169, 147], [147, 128], [128, 107], [107, 88], [88, 66],
         [66, 45], [45, 25], [25, 14]], tome(n, p, d, 21.25, 0)),
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
