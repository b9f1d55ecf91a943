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


def test_sixteen_bit_float_palette_and_rgba_images_load_like_their_8_bit_copies(tmp_path):
    from hwsearch.data import to_rgb8

    gen = np.random.default_rng(0)
    gray = gen.integers(0, 256, (48, 40)).astype(np.uint8)
    rgb = gen.integers(0, 256, (48, 40, 3)).astype(np.uint8)
    grey_rgb = np.repeat(gray[..., None], 3, axis=-1)
    cases = {  # file -> (image, the 8-bit RGB it stands for, tolerance)
        "g16.png": (Image.fromarray(gray.astype(np.uint16) * 257), grey_rgb, 1),  # I;16: 255 -> 65535
        "f.tif": (Image.fromarray(gray.astype(np.float32) / 255), grey_rgb, 1),  # mode F in [0, 1]
        "rgba.png": (Image.fromarray(np.dstack([rgb, np.full((48, 40), 255, np.uint8)])), rgb, 0),
        "l.png": (Image.fromarray(gray), grey_rgb, 0),
        "p.png": (Image.fromarray(grey_rgb).quantize(256), grey_rgb, 0),  # <= 256 grey levels: exact palette
    }
    for name, (image, expected, tolerance) in cases.items():
        image.save(tmp_path / name)
        with Image.open(tmp_path / name) as reopened:
            got = np.asarray(to_rgb8(reopened)).astype(int)
        assert got.shape == expected.shape and np.abs(got - expected).max() <= tolerance, name
    (tmp_path / "eight").mkdir()
    (tmp_path / "sixteen").mkdir()
    for i in range(3):  # optimize --data on 16-bit PNGs gives the tensors of their 8-bit copies (within 1)
        Image.fromarray(np.roll(gray, i)).save(tmp_path / "eight" / f"{i}.png")
        Image.fromarray(np.roll(gray, i).astype(np.uint16) * 257).save(tmp_path / "sixteen" / f"{i}.png")
    for x, y in zip(folder_sets(tmp_path / "eight", 32), folder_sets(tmp_path / "sixteen", 32), strict=True):
        assert int((x.images.int() - y.images.int()).abs().max()) <= 1


def test_a_corrupt_image_and_too_few_images_are_one_error(tmp_path):
    from hwsearch.data import image_sets

    (tmp_path / "bad").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "bad" / "ok.png")
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(HwsearchError, match="cannot read image .*broken.png"):
        folder_sets(tmp_path / "bad", 32)

    class Vit:  # image_sets reads only the input size and the crop fraction
        patch_embed = type("P", (), {"img_size": (32, 32)})()
        pretrained_cfg = {"crop_pct": 0.875}

    for count in (1, 0, -3):
        with pytest.raises(HwsearchError, match="--num-images must be at least 2"):
            image_sets(Vit(), str(tmp_path / "bad"), count)


def test_normalize_uses_model_mean_std():
    img = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(img, {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)})
    assert torch.allclose(out, torch.ones_like(out))
