"""Build (not time) a TensorRT engine for every graph of a bundle: ``python -m profilers build-engine``."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from profilers.bundle import load_bundle


def build_all(root: str | Path) -> Iterator[str]:
    from profilers.backends.base import create_backend

    bundle = load_bundle(root)
    backend = create_backend("tensorrt", dict(bundle.target), bundle.root)
    for graph in bundle.graphs:
        backend.prepare(graph)
        backend.release()
        yield f"built {bundle.root / 'engines' / f'{graph.id}.{backend.plan.key()}.engine'}"
