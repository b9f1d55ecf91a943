"""Building models: timm ViTs by name, local checkpoints (safetensors / state_dict), checks, hashes."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from hwsearch.errors import HwsearchError

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def create_vit(name: str, checkpoint: str | Path | None = None, img_size: int | None = None,
               **kwargs: object) -> nn.Module:
    """Create a timm ViT by name; load local pretrained weights (safetensors or torch state_dict)."""
    import timm

    if name not in timm.list_models():
        raise HwsearchError(f"unknown model {name!r}: not a timm model name (see timm.list_models('vit*'))")
    if img_size is not None:
        kwargs["img_size"] = img_size
    state = None
    if checkpoint is not None:
        state = read_checkpoint(checkpoint)
        if "num_classes" not in kwargs:  # a classifier checkpoint sets its own head size
            head = state.get("head.weight")
            kwargs["num_classes"] = int(head.shape[0]) if head is not None else 0
    try:
        with torch.random.fork_rng():  # without a checkpoint: the same random weights in every process
            torch.manual_seed(0)
            model = timm.create_model(name, pretrained=False, **kwargs)
    except (TypeError, ValueError, AssertionError) as exc:
        raise HwsearchError(f"cannot build {name!r} with {kwargs}: {exc}") from None
    check_vit(model)
    if state is not None:
        load_strict(model, state, f"checkpoint {checkpoint} does not match {name}")
    return model.eval()


def load_strict(model: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """``load_state_dict`` that fails with one short line (counts and a first example)."""
    current = model.state_dict()
    missing = [k for k in current if k not in state]
    unexpected = [k for k in state if k not in current]
    shapes = [k for k in current if k in state and tuple(state[k].shape) != tuple(current[k].shape)]
    problems = [f"{len(v)} {label} (e.g. {v[0]})" for label, v in
                (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)) if v]
    if problems:
        raise HwsearchError(f"{what}: {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


def read_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """timm-keyed weights from ``.safetensors`` or a torch state_dict (``weights_only``, no pickle)."""
    path = Path(path)
    if not path.is_file():
        raise HwsearchError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            for key in ("state_dict", "model", "state_dict_ema"):
                if isinstance(state, dict) and key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
    except Exception as exc:  # corrupt file: one clear line
        raise HwsearchError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise HwsearchError(f"checkpoint {path} is not a state_dict")
    return state


def check_vit(vit: nn.Module) -> None:
    """Refuse models the compression cannot handle, with a clear reason."""
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(vit, VisionTransformer):
        raise HwsearchError(f"{type(vit).__name__} is not a timm VisionTransformer")
    if not getattr(vit, "has_class_token", getattr(vit, "cls_token", None) is not None):
        raise HwsearchError("model has no class token: class-attention ranking needs one")
    if vit.global_pool not in ("token", "avg"):
        raise HwsearchError(f"global_pool={vit.global_pool!r} is not supported (use 'token' or 'avg')")
    if getattr(vit, "dynamic_img_size", False):
        raise HwsearchError("dynamic_img_size models are not supported: token counts must be static")


def num_tokens(vit: nn.Module) -> int:
    """Tokens entering the first block: patches + prefix tokens."""
    return int(vit.patch_embed.num_patches) + int(vit.num_prefix_tokens)


def model_hash(vit: nn.Module, name: str) -> str:
    """Architecture fingerprint (latency depends on shapes only, not on weights)."""
    arch = {"name": name, "tokens": num_tokens(vit), "prefix": int(vit.num_prefix_tokens), "depth": len(vit.blocks),
            "params": sorted((k, list(v.shape)) for k, v in vit.state_dict().items())}
    return hashlib.sha256(json.dumps(arch).encode()).hexdigest()[:16]
