"""Images for search and evaluation: an ImageFolder (labels optional) or the offline default.

The default: deterministic crops (random scale, position, aspect, flip) of every real colour
photograph that the installed scikit-image, scikit-learn and matplotlib wheels ship (no network,
no data dependency). Photos are split between the search set and the held-out set (the stereo
motorcycle pair stays on one side), so held-out fidelity is measured on scenes the search never
saw; every image remembers its photo (``ImageSet.groups``) so reports can give fidelity per photo.

The grayscale and scientific images of those wheels (camera, moon, coins, the brick/grass/gravel
textures, retina, immunohistochemistry, hubble_deep_field) are not used: users compress models for
colour photographs, a grey image repeated to RGB or a micrograph is off the model's training
distribution, and the search's distillation loss would weight tokens of images unlike the held-out
ones.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from hwsearch.errors import HwsearchError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm"}


def _skimage(name: str, index: int | None = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        photo = getattr(skimage.data, name)()
        return photo if index is None else photo[index]
    return load


def _sklearn(index: int) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from sklearn.datasets import load_sample_images

        return load_sample_images().images[index]
    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook

        with cbook.get_sample_data(name) as f:
            return np.asarray(Image.open(f).convert("RGB"))
    return load


# Every colour photograph shipped in the installed wheels (checked: each loads offline).
SEARCH_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _skimage("astronaut"), "rocket": _skimage("rocket"), "china": _sklearn(0),
    "motorcycle_left": _skimage("stereo_motorcycle", 0), "motorcycle_right": _skimage("stereo_motorcycle", 1),
}
EVAL_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "chelsea": _skimage("chelsea"), "coffee": _skimage("coffee"), "flower": _sklearn(1),
    "grace_hopper": _matplotlib("grace_hopper.jpg"),
}


@dataclass
class ImageSet:
    """uint8 images ``[N, 3, H, W]``, optional integer labels and optional source photo per image."""

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str
    classes: list[str] | None = None
    groups: list[str] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def take(self, index: torch.Tensor | slice) -> "ImageSet":
        labels = self.labels[index] if self.labels is not None else None
        groups = None
        if self.groups is not None:
            picked = range(len(self))[index] if isinstance(index, slice) else [int(i) for i in index]
            groups = [self.groups[i] for i in picked]
        return ImageSet(self.images[index], labels, self.source, self.classes, groups)


def _rgb(photo: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(photo[..., :3].astype(np.uint8))


def random_crop(photo: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """One RandomResizedCrop-style crop (scale 0.1-1, aspect 3/4-4/3, flip), resized bicubic."""
    h, w = photo.shape[:2]
    for _ in range(20):
        area = h * w * rng.uniform(0.1, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        ch, cw = int(round(np.sqrt(area / aspect))), int(round(np.sqrt(area * aspect)))
        if 0 < ch <= h and 0 < cw <= w:
            break
    else:
        ch = cw = min(h, w)
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    crop = Image.fromarray(photo[top:top + ch, left:left + cw]).resize((size, size), Image.BICUBIC)
    out = np.asarray(crop)
    return out[:, ::-1] if rng.random() < 0.5 else out


def default_images(size: int, count: int, split: str = "search", seed: int = 0) -> torch.Tensor:
    """``count`` deterministic crops of the search or held-out photos, uint8 ``[N, 3, size, size]``
    (image ``i`` comes from photo ``i % len(photos)``: see :func:`photo_names`)."""
    photos = SEARCH_PHOTOS if split == "search" else EVAL_PHOTOS
    rng = np.random.default_rng([seed, 0 if split == "search" else 1])
    loaded = [_rgb(load()) for load in photos.values()]
    crops = [random_crop(loaded[i % len(loaded)], rng, size) for i in range(count)]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def photo_names(count: int, split: str = "search") -> list[str]:
    """The photo each of :func:`default_images`' ``count`` crops comes from."""
    names = list(SEARCH_PHOTOS if split == "search" else EVAL_PHOTOS)
    return [names[i % len(names)] for i in range(count)]


def default_sets(size: int, num_images: int = 1000, eval_fraction: float = 0.2, seed: int = 0
                 ) -> tuple[ImageSet, ImageSet]:
    """The offline default: search and held-out sets from disjoint photos."""
    n_eval = max(1, int(round(num_images * eval_fraction)))
    search = default_images(size, num_images - n_eval, "search", seed)
    held_out = default_images(size, n_eval, "eval", seed)
    return (ImageSet(search, None, "default:search-photos", groups=photo_names(len(search), "search")),
            ImageSet(held_out, None, "default:held-out-photos", groups=photo_names(n_eval, "eval")))


def to_rgb8(img: Image.Image) -> Image.Image:
    """8-bit RGB from any mode: 16-bit images scaled by their bit depth (not clipped at 255), float
    images from [0, 1], palette/RGBA/grayscale converted."""
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        values = np.asarray(img).astype(np.float64)
        if img.mode == "F":  # float: [0, 1] scaled, else taken as 0-255
            scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        else:  # 16-bit PNG/TIFF (Pillow opens them as I;16* or I)
            scale = 255.0 / 65535.0
        gray = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    return img.convert("RGB")


def center_crop(img: Image.Image, size: int, crop_pct: float) -> np.ndarray:
    """Resize the short side to size/crop_pct (bicubic), then center-crop (timm eval transform)."""
    scale = int(round(size / crop_pct)) / min(img.size)
    img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.BICUBIC)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)))


def load_image(path: str | Path, size: int, crop_pct: float) -> np.ndarray:
    """One image file as the model sees it (:func:`center_crop`); a missing or corrupt file is one error."""
    try:
        with Image.open(path) as opened:
            img = to_rgb8(opened)
    except Exception as exc:
        raise HwsearchError(f"cannot read image {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                            ) from None
    return center_crop(img, size, crop_pct)


def held_out_photos(size: int, crop_pct: float = 0.875) -> ImageSet:
    """The held-out photos whole (center crops, not the random crops of the held-out set), for pictures."""
    names = list(EVAL_PHOTOS)
    crops = [center_crop(Image.fromarray(_rgb(EVAL_PHOTOS[n]())), size, crop_pct) for n in names]
    return ImageSet(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous(), None,
                    "default:held-out-photos", groups=names)


def folder_sets(root: str | Path, size: int, crop_pct: float = 0.875, num_images: int | None = None,
                eval_fraction: float = 0.2, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """An ImageFolder (``root/class/img``, labelled) or a flat folder of images (unlabelled)."""
    root = Path(root)
    if not root.is_dir():
        raise HwsearchError(f"data directory not found: {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    files: list[tuple[Path, int]] = []
    if classes:
        for label, name in enumerate(classes):
            files += [(p, label) for p in sorted((root / name).rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
    else:
        files = [(p, -1) for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if len(files) < 2:
        raise HwsearchError(f"{root}: need at least 2 images (ImageFolder layout root/class/image or a flat folder)")
    order = np.random.default_rng(seed).permutation(len(files))[: num_images or len(files)]
    files = [files[i] for i in order]
    images = torch.from_numpy(np.stack([load_image(p, size, crop_pct) for p, _ in files])).permute(0, 3, 1, 2)
    labels = torch.tensor([label for _, label in files]) if classes else None
    full = ImageSet(images.contiguous(), labels, str(root), classes or None)
    n_eval = max(1, int(round(len(files) * eval_fraction)))
    return full.take(slice(n_eval, None)), full.take(slice(0, n_eval))


def image_sets(vit: Any, data: str | None, num_images: int) -> tuple[ImageSet, ImageSet]:
    """Search and held-out images at the model's input size: ``data`` (a folder) or the default photos."""
    size = int(vit.patch_embed.img_size[0])
    if num_images < 2:
        raise HwsearchError(f"--num-images must be at least 2 (one search and one held-out image; got {num_images})")
    if data:
        return folder_sets(data, size, float(vit.pretrained_cfg.get("crop_pct", 0.875)), num_images)
    return default_sets(size, num_images)


def normalize(images: torch.Tensor, cfg: Mapping[str, Any] | Any) -> torch.Tensor:
    """uint8 ``[N, 3, H, W]`` to float, normalized with the model's own mean/std."""
    mean = cfg["mean"] if isinstance(cfg, Mapping) else cfg.mean
    std = cfg["std"] if isinstance(cfg, Mapping) else cfg.std
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (images.float() / 255.0 - m) / s
