"""A bundle: static-shape graphs + a manifest (JSON) + the target file, self-contained.

Made by ``hwsearch profile``; measured by ``python -m profilers run BUNDLE`` on the device.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
FORMAT = 1


class BundleError(Exception):
    """A bundle that cannot be measured (missing file, wrong format)."""


@dataclass
class Graph:
    """One static-shape graph to time."""

    id: str
    part: str
    tokens: int
    batch: int
    onnx: str
    inputs: dict[str, list[int]]
    prune_kept: int | None = None
    merge_kept: int | None = None
    torchscript: str | None = None
    onnx_fp16: str | None = None
    schedule: list[list[int]] | None = None


@dataclass
class Bundle:
    root: Path
    model: str
    model_hash: str
    target: dict[str, Any]
    graphs: list[Graph] = field(default_factory=list)

    def save(self) -> None:
        data = {"format": FORMAT, "model": self.model, "model_hash": self.model_hash, "target": self.target,
                "graphs": [g.__dict__ for g in self.graphs]}
        tmp = self.root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.root / MANIFEST)


def load_bundle(root: str | Path) -> Bundle:
    """Read and check a bundle directory."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root}: not a bundle (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise BundleError(f"{path}: bundle format {data.get('format')!r}, this profiler reads {FORMAT}")
        graphs = [Graph(**g) for g in data["graphs"]]
        bundle = Bundle(root, data["model"], data["model_hash"], data["target"], graphs)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: corrupt manifest ({exc})") from None
    for g in graphs:
        if not PLAIN.fullmatch(str(g.id)) or ".." in str(g.id):
            raise BundleError(f"{root}: graph id {g.id!r} is not a plain name (engines are named after it)")
        for name in (g.onnx, g.onnx_fp16, g.torchscript):
            if name is not None:
                inside(root, name)
        if not (root / g.onnx).is_file():
            raise BundleError(f"{root}: graph file {g.onnx} is missing")
    return bundle


def inside(root: Path, name: str) -> Path:
    """A manifest's file name as a path inside the bundle: an absolute path or one that climbs out
    (``../``, a symlink) is refused, so a crafted manifest cannot make the device read or write
    elsewhere (engines, measurements and caches are written beside the graphs)."""
    if not isinstance(name, str) or not name or Path(name).is_absolute():
        raise BundleError(f"{root}: manifest names {name!r}, not a file inside the bundle")
    base = root.resolve()
    path = (root / name).resolve()
    if path != base and base not in path.parents:
        raise BundleError(f"{root}: manifest names {name!r}, which is outside the bundle")
    return path
