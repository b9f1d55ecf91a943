"""Session 44: do the grayscale textures of scikit-image (dropped from the search photos) disfavour the schedules
the held-out cat disfavours? Held-out-style crops (200, 50 per image) of brick, grass, gravel and camera; per
image, feature cosine of each searched schedule minus its ToMe. Quality only (nothing timed)."""
import sys

sys.path.insert(0, "benchmarks")
import bench  # noqa: E402
import numpy as np  # noqa: E402

import hwsearch.data as data  # noqa: E402
from hwsearch.model.vit import apply_schedule  # noqa: E402
from hwsearch.quality import collect, feature_cosines, group_indices  # noqa: E402
from hwsearch.search.baselines import tome  # noqa: E402

args = bench.parser(__doc__, num_images=1000).parse_args(["--target", "cpu_onnxruntime_b1"])
b = bench.setup(args)
def grey_to_rgb(name):  # noqa: ANN001, ANN201
    return lambda: np.repeat(data._skimage(name)()[..., None], 3, axis=-1)


data.EVAL_PHOTOS = {k: grey_to_rgb(k) for k in ("brick", "grass", "gravel", "camera")}
images = data.ImageSet(data.default_images(224, 200, "eval"), None, "textures", groups=data.photo_names(200, "eval"))
ref = collect(b.model, images)
PAIRS = {
    "vs_tome b1 0.6 (s44, held-out -0.0042) vs ToMe r=19.92": (
        [[257, 224], [224, 197], [197, 178], [178, 166], [166, 153], [153, 136], [136, 122], [122, 104], [104, 84],
         [84, 62], [62, 42], [42, 31]], 19.916666666666668),
    "vs_tome b1 0.6 (s42, +0.0001) vs ToMe r=19.58": (
        [[257, 230], [230, 207], [207, 186], [186, 168], [168, 154], [154, 142], [142, 127], [127, 112], [112, 92],
         [92, 73], [73, 52], [52, 32]], 19.583333333333332),
    "vs_tome b8 0.6 (s42, +0.0019) vs ToMe r=21.25": (
        [[256, 230], [230, 210], [210, 189], [189, 169], [169, 147], [147, 128], [128, 107], [107, 88], [88, 66],
         [66, 45], [45, 25], [25, 14]], 21.25),
}
for name, (searched, r) in PAIRS.items():
    cos = {k: feature_cosines(ref, collect(apply_schedule(b.vit, c, "similarity"), images))
           for k, c in (("searched", searched), ("tome", tome(257, 1, 12, r, 0)))}
    diff = cos["searched"] - cos["tome"]
    parts = [f"{p} {float(diff[i].mean()):+.4f} (searched {float(cos['searched'][i].mean()):.4f})"
             for p, i in group_indices(images.groups).items()]
    print(f"{name}: textures {float(diff.mean()):+.4f}: " + ", ".join(parts), flush=True)
