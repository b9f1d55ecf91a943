"""A small real timm ViT classifier, its checkpoint and a labelled ImageFolder, through the CLI."""
import json

import numpy as np
import pytest
import torch
from conftest import make_vit
from PIL import Image

from hwsearch.cli import main
from hwsearch.schedule import load

COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def make_folder(root, per_class=8):
    rng = np.random.default_rng(0)
    for label, colour in enumerate(COLOURS):
        (root / f"class{label}").mkdir(parents=True)
        for i in range(per_class):
            img = np.clip(rng.normal(colour, 40, size=(72, 80, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / f"class{label}" / f"{i}.png")


def train_classifier(root, path):
    """A few steps so the labels mean something; then save a timm-keyed checkpoint."""
    from hwsearch.data import folder_sets, normalize

    vit = make_vit("deit_tiny", num_classes=3, depth=12)  # deit_tiny_patch16_224 itself, at 64 px
    train, _ = folder_sets(root, 64, crop_pct=0.875, eval_fraction=0.2)
    opt = torch.optim.Adam(vit.parameters(), lr=1e-3)
    vit.train()
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(vit(normalize(train.images, vit.pretrained_cfg)), train.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(vit.eval().state_dict(), path)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf")
    make_folder(root / "data")
    train_classifier(root / "data", root / "vit.pth")
    return root


@pytest.mark.timing
def test_optimize_and_evaluate_classifier(classifier, capsys):
    out = classifier / "results"
    args = ["--model", "deit_tiny_patch16_224", "--checkpoint", str(classifier / "vit.pth"), "--img-size", "64",
            "--data", str(classifier / "data")]
    # from DiffRate's flat logits (--keep-init: no hand schedule instead), far from the budget: the search
    # itself must bring the cost onto it
    code = main(["optimize", "--flops-ratio", "0.5", *args, "--epochs", "6", "--batch-size", "8", "--init", "flat",
                 "--keep-init", "--lr", "0.5", "--target", "cpu_torch", "--out", str(out), "--no-progress"])
    assert code == 0
    path = out / "cpu_torch" / "deit_tiny_patch16_224" / "schedules" / "flops0.5.yaml"
    schedule = load(path)
    assert schedule.provenance["checkpoint"] == str(classifier / "vit.pth")
    history = json.loads(path.with_name("flops0.5.history.json").read_text())["history"]
    dense = schedule.budget["dense"]
    assert abs(history[0]["cost"] / dense - 0.5) > 0.1  # started far from the budget
    assert schedule.provenance["warm_start"] == "flat" and not schedule.provenance["search"]["pick_start"]
    assert abs(schedule.predicted["flops_ratio"] - 0.5) < 0.025
    code = main(["evaluate", str(path), "--data", str(classifier / "data"), "--batch", "4"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "top1_agreement" in printed and "top1:" in printed and "speedup" in printed
    report = json.loads(path.with_suffix(".eval.json").read_text())
    fid = report["fidelity"]
    assert 0.0 <= fid["top1"] <= 1.0 and 0.0 <= fid["top1_agreement"] <= 1.0 and fid["kl"] >= 0.0
    assert fid["dense_top1"] > 0.5  # the trained classifier learned the colours
    assert report["latency"]["dense"]["median_ms"] > 0 and report["latency"]["compressed"]["iterations"] > 0
