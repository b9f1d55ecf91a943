"""Search mode with hard masks == deploy mode, for many schedules and several model shapes."""
import random

import pytest
import timm
import torch
from conftest import make_vit

from hwsearch import apply_schedule
from hwsearch.model.vit import CompressedViT, hard_keeps
from hwsearch.schedule import MERGING, min_merge_kept


def random_counts(num_tokens, depth, rng, num_prefix=1, merging="rank"):
    """Valid random schedules, with blocks that do not prune and blocks that do not merge."""
    counts, current = [], num_tokens
    for _ in range(depth):
        prune_kept = current if rng.random() < 0.3 else rng.randint(num_prefix + 1, current)
        low = min_merge_kept(prune_kept, num_prefix, merging)
        merge_kept = prune_kept if rng.random() < 0.2 else rng.randint(low, prune_kept)
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


def _check_equal(vit, counts, merging):
    model = CompressedViT(vit, merging=merging)
    size = vit.patch_embed.img_size
    x = torch.randn(3, 3, size[0], size[1], dtype=torch.float64)
    with torch.no_grad():
        search = model.features(x, hard_keeps(counts, model.num_tokens, x))
        deploy = apply_schedule(vit, counts, merging).features(x)
    for a, b in ((search.cls, deploy.cls), (search.patch_mean, deploy.patch_mean), (search.output, deploy.output)):
        assert (a - b).abs().max().item() <= 1e-4, counts


@pytest.mark.parametrize("merging", MERGING)
@pytest.mark.parametrize("seed", range(4))
def test_search_hard_masks_equal_deploy(tiny_vit_key, seed, merging):
    vit = make_vit(tiny_vit_key, dtype=torch.float64, num_classes=10)
    counts = random_counts(CompressedViT(vit).num_tokens, len(vit.blocks), random.Random(seed), 1, merging)
    _check_equal(vit, counts, merging)


@pytest.mark.parametrize("merging", MERGING)
def test_equivalence_with_register_tokens(merging):
    """Prefix tokens beyond the class token (4 registers) stay in front, never merged."""
    torch.manual_seed(0)
    vit = timm.create_model("vit_small_patch14_reg4_dinov2", pretrained=False, img_size=56, depth=3,
                            num_classes=5).eval().double()
    model = CompressedViT(vit)
    assert model.num_prefix == 5
    for seed in range(3):
        _check_equal(vit, random_counts(model.num_tokens, model.depth, random.Random(seed), 5, merging), merging)


def test_similarity_merge_is_tome_when_nothing_is_pruned():
    """Constant r from block 0 without pruning: ToMe's bipartite soft matching (balanced A/B split,
    the class token protected, size-weighted average), checked against a direct reimplementation."""
    from hwsearch.model.matching import similarity_merge

    torch.manual_seed(0)
    x, metric = torch.randn(2, 17, 8, dtype=torch.float64), torch.randn(2, 17, 4, dtype=torch.float64)
    size = torch.ones(2, 17, 1, dtype=torch.float64)
    out, out_size = similarity_merge(x, size, metric, 1, 17 - 5)
    m = metric / metric.norm(dim=-1, keepdim=True)
    scores = m[:, ::2] @ m[:, 1::2].transpose(1, 2)
    scores[:, 0, :] = float("-inf")  # ToMe protects the class token (A position 0)
    node_max, node_idx = scores.max(-1)
    for b in range(2):
        merged = node_max[b].argsort(descending=True)[:5].tolist()
        groups = {j: [2 * j + 1] for j in range(8)}  # B tokens at odd positions
        for i in merged:
            groups[int(node_idx[b, i])].append(2 * i)
        kept_a = [2 * i for i in range(9) if i not in merged]
        expect = [x[b, i] for i in kept_a] + [x[b, g].mean(0) for _, g in sorted(groups.items())]
        assert torch.allclose(out[b], torch.stack(expect))
        assert out_size[b].sum() == 17 and out.shape[1] == 12


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
