"""Shared test setup: offline hub, small real timm ViTs of several shapes, the recorded profile,
and a guard: only tests marked ``timing`` may run the timing code (the rest use recorded profiles,
so host noise cannot break them)."""
import os
import shutil
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402

# (timm name, overrides): small real timm configs of different shapes (dims, heads, depth, patch, layer scale).
TINY_CONFIGS = {
    "deit_tiny": ("deit_tiny_patch16_224", dict(img_size=64, depth=4)),
    "vit_small_ls": ("vit_small_patch14_dinov2", dict(img_size=56, depth=3)),
    "deit_small": ("deit_small_patch16_224", dict(img_size=96, depth=3)),
}


def make_vit(key: str, dtype: torch.dtype = torch.float32, **extra) -> torch.nn.Module:
    name, kwargs = TINY_CONFIGS[key]
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **{**kwargs, **extra}).eval().to(dtype)
    # layer-scale models start with gamma=1e-5, which would hide the attention path: use real-scale values
    for block in model.blocks:
        for ls in (block.ls1, block.ls2):
            if hasattr(ls, "gamma"):
                torch.nn.init.uniform_(ls.gamma, 0.5, 1.0)
    return model


@pytest.fixture(params=sorted(TINY_CONFIGS))
def tiny_vit_key(request):
    return request.param


FIXTURES = Path(__file__).resolve().parent / "fixtures"
# made by `hwsearch profile --target cpu_onnxruntime --model deit_tiny_patch16_224 --img-size 64` on this
# project's CPU (provenance in its meta.json); the fitted costmodel.json beside it is of the current format
RECORDED = FIXTURES / "results" / "cpu_onnxruntime" / "deit_tiny_patch16_224"


def recorded_results(out: Path, files=("profile.csv", "meta.json"), target: str = "cpu_onnxruntime") -> Path:
    """A results root holding the recorded profile of DeiT-Tiny at 64 px on cpu_onnxruntime (``target``:
    the folder of a test target with the same measured settings, e.g. the same CPU reached remotely)."""
    folder = out / target / "deit_tiny_patch16_224"
    folder.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copy(RECORDED / name, folder / name)
    return out


@pytest.fixture(autouse=True)
def timing_guard(request, monkeypatch):
    """Fail any test that times code unless it is marked ``timing`` (tests of the measuring code)."""
    if request.node.get_closest_marker("timing"):
        return
    import profilers.timing

    def refuse(*args, **kwargs):
        raise AssertionError("this test ran the timing code: use a recorded profile, or mark it "
                             "@pytest.mark.timing and assert only what host noise cannot break")

    monkeypatch.setattr(profilers.timing, "_repeat", refuse)
