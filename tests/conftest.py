"""Shared test setup: offline hub, small real timm ViTs of several shapes."""
import os

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
