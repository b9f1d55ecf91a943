"""Export the parts of a model as a device bundle (static ONNX, + TorchScript / fp16 ONNX per backend).

Graphs per batch size B (static shapes): ``attn`` and ``mlp`` at every count of the target's token
grid; ``block`` (dense) at full length for every block position (position-effect check);
``compress`` (rank merging) and ``compress_similarity`` at ~24 sampled (n, prune_kept, merge_kept)
triples each; ``embed``; ``head`` at a few counts; ``model``: whole deploy-mode models for random
valid schedules (additivity check).
"""
from __future__ import annotations

import copy
import io
import json
import random
import shutil
import tarfile
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hwsearch.io import atomic_path
from hwsearch.model.build import model_hash
from hwsearch.model.parts import AttnPart, CompressPart, DenseBlock, Embed, Head, MlpPart, example_inputs
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.profiling.additivity import COMPRESS_PARTS
from hwsearch.schedule import as_lists, min_merge_kept, random_schedules
from hwsearch.targets import Target
from profilers.bundle import Bundle, Graph

OPSET = 17


def export_onnx_graph(module: nn.Module, args: tuple[torch.Tensor, ...], path: Path, input_names: list[str],
                      output_names: list[str] | None = None, opset: int = OPSET, fp16: bool = False) -> Path:
    """``torch.onnx.export`` (TorchScript exporter, static shapes); ``fp16`` exports a half copy
    (for strongly typed TensorRT), the one place fp16 graphs are made."""
    if fp16:
        module, args = copy.deepcopy(module).half(), tuple(a.half() for a in args)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                          opset_version=opset, dynamo=False)
    return path


def compress_triples(grid: list[int], count: int, seed: int = 0, num_prefix: int = 1,
                     merging: str = "rank") -> list[tuple[int, int, int]]:
    """Sampled (n, prune_kept, merge_kept) for the compression-step cost model; a quarter prune only."""
    rng = random.Random(seed)
    possible = [(n, p, m) for n in grid for p in grid if p <= n for m in grid
                if min_merge_kept(p, num_prefix, merging) <= m <= p and m < n]
    if len(possible) <= count:
        return sorted(possible, reverse=True)
    triples: set[tuple[int, int, int]] = set()
    while len(triples) < count:
        n = rng.choice(grid)
        lower = [g for g in grid if g <= n]
        p = rng.choice(lower)
        m = p if len(triples) % 4 == 0 else rng.choice([g for g in lower if g <= p])
        if m < n and m >= min_merge_kept(p, num_prefix, merging):
            triples.add((n, p, m))
    return sorted(triples, reverse=True)


def graph_inputs(path: Path) -> set[str]:
    """Input names an ONNX file declares."""
    import onnx

    return {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}


class ReadInputs(nn.Module):
    """``module`` called with only the inputs its exported graph reads: the ONNX exporter drops the
    others, so a bundle lists only those, and the TorchScript graph must take the same feeds."""

    def __init__(self, module: nn.Module, inputs: dict[str, torch.Tensor], used: set[str]) -> None:
        super().__init__()
        self.module, self.used = module, [name in used for name in inputs]
        self.unread = [None if name in used else value for name, value in inputs.items()]

    def forward(self, *feeds: torch.Tensor) -> Any:
        it = iter(feeds)
        return self.module(*(next(it) if read else value for read, value in zip(self.used, self.unread, strict=True)))


class Exporter:
    """Writes ONNX (+ TorchScript for the torch backend, + fp16 ONNX for strongly-typed TensorRT)."""

    def __init__(self, root: Path, model: CompressedViT, target: Target) -> None:
        self.root, self.model, self.target = root, model, target
        (root / "graphs").mkdir(parents=True, exist_ok=True)
        self.graphs: list[Graph] = []

    def add(self, gid: str, part: str, module: nn.Module, tokens: int, batch: int, **meta: Any) -> None:
        inputs = example_inputs(part, self.model, batch, tokens)
        args, names = tuple(inputs.values()), list(inputs)
        onnx = f"graphs/{gid}.onnx"
        export_onnx_graph(module, args, self.root / onnx, names)
        used = graph_inputs(self.root / onnx)  # the exporter drops inputs the graph never reads
        graph = Graph(gid, part, tokens, batch, onnx, {k: list(v.shape) for k, v in inputs.items() if k in used},
                      **meta)
        if self.target.backend == "torch":  # fed the graph's inputs, like every other backend
            graph.torchscript = f"graphs/{gid}.pt"
            feeds = tuple(a for n, a in inputs.items() if n in used)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(ReadInputs(module, inputs, used), feeds, check_trace=False)
                traced.save(str(self.root / graph.torchscript))
        if self.target.backend == "tensorrt" and self.target.precision == "fp16":
            graph.onnx_fp16 = f"graphs/{gid}.fp16.onnx"
            export_onnx_graph(module, args, self.root / graph.onnx_fp16, names, fp16=True)
        self.graphs.append(graph)


def build_bundle(root: Path, model: CompressedViT, name: str, target: Target, batches: list[int],
                 whole_models: int = 8, compress_samples: int = 24, seed: int = 0) -> Bundle:
    """Export every graph of the profile into ``root`` and write the manifest."""
    grid = target.token_grid(model.num_tokens, model.num_prefix)
    ex = Exporter(root, model, target)
    n_full = model.num_tokens
    for b in batches:
        ex.add(f"embed_b{b}", "embed", Embed(model), n_full, b)
        for n in grid:
            ex.add(f"attn_n{n}_b{b}", "attn", AttnPart(model), n, b)
            ex.add(f"mlp_n{n}_b{b}", "mlp", MlpPart(model), n, b)
        for i in range(model.depth):
            ex.add(f"block{i}_n{n_full}_b{b}", "block", DenseBlock(model, i), n_full, b, prune_kept=i)
        for merging, part in COMPRESS_PARTS.items():
            for n, p, m in compress_triples(grid, compress_samples, seed, model.num_prefix, merging):
                ex.add(f"{part}_n{n}_p{p}_m{m}_b{b}", part, CompressPart(model, p, m, merging), n, b,
                       prune_kept=p, merge_kept=m)
        for n in sorted({grid[0], grid[len(grid) // 2], grid[-1]}, reverse=True):
            ex.add(f"head_n{n}_b{b}", "head", Head(model), n, b)
        schedules = random_schedules(n_full, model.num_prefix, model.depth, whole_models, seed, grid=grid)
        for j, counts in enumerate(schedules):
            ex.add(f"model{j}_b{b}", "model", apply_schedule(model.vit, counts), n_full, b, schedule=as_lists(counts))
    bundle = Bundle(root, name, model_hash(model.vit, name), dict(target.raw), ex.graphs)
    bundle.save()
    return bundle


def make_tarball(bundle_dir: Path, out: Path, readme: str | None = None) -> Path:
    """A self-contained bundle: graphs + manifest + the ``profilers`` package + a README."""
    import profilers

    pkg = Path(profilers.__file__).parent
    readme = readme or (
        f"# hwsearch profiling bundle for {json.loads((bundle_dir / 'manifest.json').read_text())['model']}\n"
        "On the device (needs numpy, pyyaml and the backend library only):\n"
        "    python3 -m profilers run bundle/      # appends bundle/measurements.csv (resumable)\n"
        "Bring measurements.csv back and run: hwsearch profile --import measurements.csv --target T\n")
    with atomic_path(out) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(bundle_dir, arcname="bundle")
            tar.add(pkg, arcname="profilers", filter=lambda t: None if "__pycache__" in t.name else t)
            data = readme.encode()
            info = tarfile.TarInfo("README.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out


def temp_bundle_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hwsearch-bundle-"))


def write_profile_bundle(out: Path, model: CompressedViT, name: str, target: Target, batches: list[int],
                         whole_models: int) -> Path:
    """The profile's graphs as a self-contained ``.tar.gz`` to measure on the device."""
    work = temp_bundle_dir()
    try:
        reuse_or_build(work, model, name, target, batches, whole_models)
        return make_tarball(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def reuse_or_build(work: Path, model: CompressedViT, name: str, target: Target, batches: list[int],
                   whole_models: int) -> Path:
    """Reuse an interrupted run's bundle (same model and settings) so measurements resume."""
    from profilers.bundle import BundleError, load_bundle

    want = {"hash": model_hash(model.vit, name), "batches": batches, "whole": whole_models, "target": target.raw}
    stamp = work / "settings.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == want:
        try:
            load_bundle(work)
            return work
        except BundleError:
            pass
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    build_bundle(work, model, name, target, batches, whole_models)
    stamp.write_text(json.dumps(want))
    return work
