import numpy as np
import pytest
import torch
from PIL import Image

from hwsearch.data import EVAL_PHOTOS, SEARCH_PHOTOS, default_images, default_sets, folder_sets, normalize
from hwsearch.errors import HwsearchError
from hwsearch.quality import by_group


def test_default_crops_deterministic_and_real():
    a = default_images(32, 6, "search", seed=0)
    b = default_images(32, 6, "search", seed=0)
    assert a.dtype == torch.uint8 and a.shape == (6, 3, 32, 32)
    assert torch.equal(a, b)
    assert not torch.equal(a, default_images(32, 6, "search", seed=1))
    assert a.float().std() > 10  # photo content, not a constant


def test_default_split_uses_disjoint_photos():
    assert not set(SEARCH_PHOTOS) & set(EVAL_PHOTOS)
    search, held_out = default_sets(32, num_images=50)
    assert len(search) == 40 and len(held_out) == 10 and search.labels is None
    assert set(held_out.groups) == set(EVAL_PHOTOS) and set(search.groups) == set(SEARCH_PHOTOS)
    assert held_out.take(slice(2, 5)).groups == held_out.groups[2:5]
    assert held_out.take(torch.tensor([4, 0])).groups == [held_out.groups[4], held_out.groups[0]]


def test_every_default_photo_is_a_colour_photograph():
    for name, load in {**SEARCH_PHOTOS, **EVAL_PHOTOS}.items():
        photo = load()
        assert photo.ndim == 3 and photo.shape[2] >= 3 and min(photo.shape[:2]) >= 200, name
        rgb = photo[..., :3].astype(float)
        assert np.abs(rgb[..., 0] - rgb[..., 1]).mean() > 3, f"{name} looks grey"


def test_by_group_means_per_photo():
    values = torch.tensor([1.0, 2.0, 3.0, 5.0])
    assert by_group(values, ["a", "b", "a", "b"]) == {"a": 2.0, "b": 3.5}
    assert by_group(values, None) == {}


def test_image_folder_labelled_and_flat(tmp_path):
    for cls in ("a", "b"):
        (tmp_path / "lab" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((40, 50, 3), 60 * i, np.uint8)).save(tmp_path / "lab" / cls / f"{i}.jpg")
    (tmp_path / "flat").mkdir()
    for i in range(4):
        Image.fromarray(np.full((40, 50, 3), 9 * i, np.uint8)).save(tmp_path / "flat" / f"{i}.png")
    search, held = folder_sets(tmp_path / "lab", 32)
    assert search.images.shape[1:] == (3, 32, 32) and set(search.labels.tolist()) <= {0, 1}
    assert len(search) + len(held) == 6 and search.classes == ["a", "b"]
    search, held = folder_sets(tmp_path / "flat", 32, num_images=3)
    assert search.labels is None and len(search) + len(held) == 3


def test_image_folder_errors(tmp_path):
    with pytest.raises(HwsearchError, match="not found"):
        folder_sets(tmp_path / "missing", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(HwsearchError, match="at least 2 images"):
        folder_sets(tmp_path / "empty", 32)


def test_normalize_uses_model_mean_std():
    img = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(img, {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})
    assert torch.allclose(out, torch.ones_like(out))
