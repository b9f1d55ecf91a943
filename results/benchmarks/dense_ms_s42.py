"""Dense latency on a target, measured alone (one run), and X = 0.7 x dense for optimize --latency-ms X."""
import sys

from hwsearch.model.vit import CompressedViT
from hwsearch.model.zoo import load_model
from hwsearch.profiling.measure import measure_models
from hwsearch.targets import load_target

target = load_target(sys.argv[1])
vit, _, _ = load_model(None, None, 224)
dense = measure_models(target, {"dense": CompressedViT(vit)}, target.batch)["dense"]
print(f"dense measured {dense.median_ms:.1f} ms; X = {0.7 * dense.median_ms:.1f}")
