"""Is the paired ratio of two copies of one graph biased by their slot in the round? (session 40; rerun in session 41 with balanced round orders)
Same ToMe r=11.08 schedule as two models; measured with the copies in both orders, same process."""
import json, sys
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.model.zoo import load_model
from hwsearch.profiling.measure import measure_models
from hwsearch.search.baselines import tome
from hwsearch.targets import load_target
from profilers.timing import paired_ratio

target = load_target(sys.argv[1])
vit, _, _ = load_model(None, None, None)
counts = tome(257, 1, 12, 11.0833, 0)
out = []
for trial in range(int(sys.argv[2])):
    order = ["dense", "a", "b"] if trial % 2 == 0 else ["dense", "b", "a"]
    models = {k: (CompressedViT(vit) if k == "dense" else apply_schedule(vit, counts, "similarity")) for k in order}
    stats = measure_models(target, models, target.batch, {"repeats": 12})
    r = paired_ratio(stats["b"], stats["a"])
    second = paired_ratio(stats[order[2]], stats[order[1]])
    row = {"order": order, "b_over_a": r, "third_over_second": second,
           "medians": {k: s.median_ms for k, s in stats.items()}}
    out.append(row); print(json.dumps(row), flush=True)
