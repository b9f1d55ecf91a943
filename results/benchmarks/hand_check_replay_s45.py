"""Session 45: the search again's last check (against_hand_start) replayed on recorded final schedules: each vs the
ToMe-style hand start solved for its own predicted cost, on every third search image (what the check uses), per
search photo; and the held-out difference per photo. Would a rule 'beat it by > 1 SE and on most search photos'
have kept the schedules that held vs ToMe and replaced those that lost? Quality only (nothing timed)."""
import sys

sys.path.insert(0, "benchmarks")
import bench  # noqa: E402

from hwsearch.model.vit import CompressedViT  # noqa: E402
from hwsearch.quality import collect, group_indices  # noqa: E402
from hwsearch.search.baselines import solve  # noqa: E402
from hwsearch.search.finish import paired_gain, schedule_losses  # noqa: E402

RECORDED = {
    "cpu_onnxruntime_b1": {
        "b1 0.6 s44 a4468cc (lost -0.0042)": [[257, 224], [224, 197], [197, 178], [178, 166], [166, 153], [153, 136],
                                             [136, 122], [122, 104], [104, 84], [84, 62], [62, 42], [42, 31]],
        "b1 0.6 s44 f728e6a (lost -0.0033)": [[257, 227], [227, 199], [199, 181], [181, 165], [165, 152], [152, 140],
                                             [140, 128], [128, 112], [112, 95], [95, 74], [74, 53], [53, 40]],
        "b1 0.6 s44 a1933ad (held -0.0007)": [[257, 216], [216, 198], [197, 174], [174, 158], [158, 151], [151, 135],
                                             [135, 119], [119, 100], [100, 78], [78, 56], [56, 34], [34, 19]],
        "b1 0.6 s42 (held +0.0001)": [[257, 230], [230, 207], [207, 186], [186, 168], [168, 154], [154, 142],
                                      [142, 127], [127, 112], [112, 92], [92, 73], [73, 52], [52, 32]],
    },
    "cpu_onnxruntime": {
        "b8 0.6 s42 (held +0.0019)": [[256, 230], [230, 210], [210, 189], [189, 169], [169, 147], [147, 128],
                                      [128, 107], [107, 88], [88, 66], [66, 45], [45, 25], [25, 14]],
    },
}
for target, schedules in RECORDED.items():
    b = bench.setup(bench.parser(__doc__, num_images=1000).parse_args(["--target", target]))
    model = CompressedViT(b.vit, merging="similarity")
    cost = b.latency_cost()
    third = b.search_set.take(slice(0, None, 3))
    ref = collect(model, third)
    for name, searched in schedules.items():
        hand = solve("tome", cost, cost.cost(searched), model.depth, model.num_prefix, 0)
        losses = schedule_losses(model, third, ref, None, {"searched": searched, "hand": hand}, 32)
        gain, se = paired_gain(losses["hand"], losses["searched"])
        per = {photo: float(gain[idx].mean()) for photo, idx in group_indices(third.groups).items()}
        wins = sum(v > 0 for v in per.values())
        held = b.held_out_cosines(searched) - b.held_out_cosines(hand)
        held_per = {p: float(held[idx].mean()) for p, idx in group_indices(b.held_out.groups).items()}
        print(f"{target} {name}\n  hand {hand}\n  search-third gain {float(gain.mean()):+.5f} (SE {se:.5f}), "
              f"wins {wins}/{len(per)} photos: " + ", ".join(f"{k} {v:+.5f}" for k, v in per.items())
              + f"\n  held-out vs hand {float(held.mean()):+.4f}: " + ", ".join(f"{k} {v:+.4f}" for k, v in held_per.items()),
              flush=True)
