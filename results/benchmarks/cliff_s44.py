"""Session 44: the four schedules of session 43's optimize --latency-ms run measured in one run (batch 8):
why did the rescaled schedule (more compressed) measure slower than the first one?"""
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.model.zoo import load_model
from hwsearch.profiling.measure import measure_models
from hwsearch.targets import load_target
from profilers.timing import paired_ratio

SCHEDULES = {
    "first": [[257, 248], [248, 245], [242, 237], [230, 216], [216, 205], [205, 189], [189, 178], [178, 153],
              [153, 153], [153, 122], [122, 96], [96, 94]],
    "rescaled": [[257, 247], [247, 244], [241, 235], [227, 212], [212, 200], [200, 182], [182, 170], [170, 142],
                 [142, 142], [142, 108], [108, 79], [79, 77]],
    "final": [[257, 244], [244, 240], [236, 228], [218, 199], [199, 184], [184, 161], [161, 146], [146, 110],
              [110, 110], [110, 66], [66, 34], [34, 31]],
}
target = load_target("cpu_onnxruntime")
vit, _, _ = load_model(None, None, 224)
models = {"dense": CompressedViT(vit)} | {k: apply_schedule(vit, v, "similarity") for k, v in SCHEDULES.items()}
stats = measure_models(target, models, target.batch, {"repeats": 9})
for name in SCHEDULES:
    s, lo, hi = paired_ratio(stats["dense"], stats[name])
    print(f"{name}: {stats[name].median_ms:.1f} ms, dense / it {s:.3f} (95% {lo:.3f}-{hi:.3f})")
print(f"dense {stats['dense'].median_ms:.1f} ms")
