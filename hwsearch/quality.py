"""Fidelity to the dense model, label-free; top-1 where labels exist.

The same measures drive the gradient search (as a loss) and every report: mean cosine of the
final class token and of the patch-token mean; for classifiers also KL(dense || compressed) and
top-1 agreement of the logits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from hwsearch.data import ImageSet, normalize
from hwsearch.model.tokens import BlockKeep
from hwsearch.model.vit import CompressedViT, Features


@dataclass
class Reference:
    """The dense model's outputs, cached once per image set."""

    cls: Tensor
    patch_mean: Tensor
    output: Tensor

    def take(self, index: slice | Tensor) -> "Reference":
        return Reference(self.cls[index], self.patch_mean[index], self.output[index])


def quality_key(classifier: bool, labels: Any) -> str:
    """Backbones: feature cosine to the dense model; classifiers: top-1 (labels) or top-1 agreement."""
    if not classifier:
        return "feature_cosine"
    return "top1" if labels is not None else "top1_agreement"


def distill_loss(ref: Reference, out: Features, classifier: bool, labels: Tensor | None = None) -> Tensor:
    """Cosine distance of final features (backbones) or KL on logits (classifiers) [+ CE]: the mean
    of :func:`image_losses`."""
    return image_losses(ref, out, classifier, labels).mean()


def image_losses(ref: Reference, out: Features | Reference, classifier: bool, labels: Tensor | None = None) -> Tensor:
    """Per image: 2 - class-token cosine - patch-mean cosine (backbones), or KL to the dense logits
    (classifiers) [+ cross-entropy with ``labels``]."""
    if classifier:
        loss = F.kl_div(out.output.log_softmax(-1), ref.output.log_softmax(-1), log_target=True,
                        reduction="none").sum(-1)
        if labels is not None:
            loss = loss + F.cross_entropy(out.output, labels, reduction="none")
        return loss
    return 2.0 - F.cosine_similarity(out.cls, ref.cls, dim=-1) - F.cosine_similarity(out.patch_mean, ref.patch_mean,
                                                                                      dim=-1)


def feature_cosines(ref: Reference, out: Reference) -> Tensor:
    """Per image: the mean of the class-token and patch-mean cosines (``feature_cosine`` per image)."""
    return (F.cosine_similarity(out.cls, ref.cls, dim=-1) + F.cosine_similarity(out.patch_mean, ref.patch_mean,
                                                                               dim=-1)) / 2


def group_indices(groups: list[str] | None) -> dict[str, list[int]]:
    """The image indices of each group (source photo), in first-seen order; {} without groups."""
    out: dict[str, list[int]] = {}
    for i, g in enumerate(groups or []):
        out.setdefault(g, []).append(i)
    return out


def by_group(values: Tensor, groups: list[str] | None) -> dict[str, float]:
    """Mean of per-image ``values`` for each group (source photo); {} without groups."""
    return {g: float(values[idx].mean()) for g, idx in group_indices(groups).items()}


def fidelity(ref: Reference, out: Reference, classifier: bool, labels: Tensor | None = None) -> dict[str, float]:
    """Report: cosine (class token, patch mean, their mean); KL, agreement, top-1 when relevant."""
    cls = F.cosine_similarity(out.cls, ref.cls, dim=-1).mean().item()
    mean = F.cosine_similarity(out.patch_mean, ref.patch_mean, dim=-1).mean().item()
    report = {"cls_cosine": cls, "patch_mean_cosine": mean, "feature_cosine": (cls + mean) / 2}
    if classifier:
        report["kl"] = F.kl_div(out.output.log_softmax(-1), ref.output.log_softmax(-1), log_target=True,
                                reduction="batchmean").item()
        report["top1_agreement"] = (out.output.argmax(-1) == ref.output.argmax(-1)).float().mean().item()
        if labels is not None:
            report["top1"] = (out.output.argmax(-1) == labels).float().mean().item()
            report["dense_top1"] = (ref.output.argmax(-1) == labels).float().mean().item()
    return report


@torch.no_grad()
def collect(model: CompressedViT, data: ImageSet, batch_size: int = 32,
            keeps: list[BlockKeep] | None = None) -> Reference:
    """Run ``model`` over ``data`` in batches (no gradient) and keep its final features."""
    parts: list[Features] = []
    cfg = model.vit.pretrained_cfg
    for start in range(0, len(data), batch_size):
        images = normalize(data.images[start:start + batch_size], cfg)
        parts.append(model.features(images, keeps))
    return Reference(torch.cat([p.cls for p in parts]), torch.cat([p.patch_mean for p in parts]),
                     torch.cat([p.output for p in parts]))
