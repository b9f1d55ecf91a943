"""Search mode with hard masks == deploy mode, for many schedules and several model shapes."""
import random

import pytest
import timm
import torch
from conftest import make_vit

from hwsearch import apply_schedule
from hwsearch.model.vit import CompressedViT, hard_keeps


def random_counts(num_tokens, depth, rng, num_prefix=1):
    counts, current = [], num_tokens
    for _ in range(depth):
        prune_kept = rng.randint(num_prefix + 1, current)
        merge_kept = rng.randint(num_prefix + 1, prune_kept)
        counts.append((prune_kept, merge_kept))
        current = merge_kept
    return counts


def test_dense_matches_timm(tiny_vit_key):
    vit = make_vit(tiny_vit_key)
    x = torch.randn(2, 3, vit.patch_embed.img_size[0], vit.patch_embed.img_size[1])
    with torch.no_grad():
        ref = vit(x)
        out = CompressedViT(vit)(x)
        again = vit(x)  # the patched timm model still runs its own forward
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.allclose(again, ref, atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_search_hard_masks_equal_deploy(tiny_vit_key, seed):
    vit = make_vit(tiny_vit_key, dtype=torch.float64, num_classes=10)
    model = CompressedViT(vit)
    rng = random.Random(seed)
    counts = random_counts(model.num_tokens, model.depth, rng)
    size = vit.patch_embed.img_size
    x = torch.randn(3, 3, size[0], size[1], dtype=torch.float64)
    with torch.no_grad():
        search = model.features(x, hard_keeps(counts, model.num_tokens, x))
        deploy = apply_schedule(vit, counts).features(x)
    for a, b in ((search.cls, deploy.cls), (search.patch_mean, deploy.patch_mean), (search.output, deploy.output)):
        assert (a - b).abs().max().item() <= 1e-4, counts


def test_full_size_deit_small_equivalence():
    torch.manual_seed(1)
    vit = timm.create_model("deit_small_patch16_224", pretrained=False).eval().double()
    model = CompressedViT(vit)
    counts = random_counts(model.num_tokens, model.depth, random.Random(7))
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    with torch.no_grad():
        search = model.features(x, hard_keeps(counts, model.num_tokens, x)).output
        deploy = apply_schedule(vit, counts)(x)
    assert (search - deploy).abs().max().item() <= 1e-4


def test_state_dict_keys_unchanged_and_checkpoint_loads(tmp_path):
    vit = make_vit("deit_tiny")
    keys = list(vit.state_dict())
    compressed = apply_schedule(vit, [(17, 17)] + [(13, 9)] * 3)
    assert list(compressed.vit.state_dict()) == keys
    other = make_vit("deit_tiny")
    torch.save(other.state_dict(), tmp_path / "w.pth")
    compressed.vit.load_state_dict(torch.load(tmp_path / "w.pth", weights_only=True))
    assert torch.equal(compressed.vit.blocks[0].attn.qkv.weight, other.blocks[0].attn.qkv.weight)


def test_timm_pretrained_cfg_overlay_file(tmp_path):
    """timm's own local-file loading (pretrained_cfg_overlay) works with apply_schedule."""
    src = make_vit("deit_tiny")
    torch.save(src.state_dict(), tmp_path / "w.pth")
    name, kwargs = "deit_tiny_patch16_224", dict(img_size=64, depth=4)
    vit = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / "w.pth")),
                            **kwargs).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(apply_schedule(vit, [(17, 17)] * 4)(x), src(x), atol=1e-5)
