"""The backend interface: prepare a static-shape graph, return a runnable and a sync."""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from profilers.bundle import Graph
from profilers.registry import Registry

BACKENDS = Registry("backend", {"onnxruntime": "profilers.backends.ort", "torch": "profilers.backends.torch_backend",
                                "tensorrt": "profilers.backends.tensorrt_backend"})


class BackendUnavailable(Exception):
    """The backend's library or device is not present on this host."""


class Backend(ABC):
    """Runs one graph at a time. ``prepare`` returns ``(run, sync)``: ``run`` enqueues one
    inference, ``sync`` waits for all enqueued work (a no-op on CPU backends)."""

    name = ""

    def __init__(self, target: dict[str, Any], root: Path) -> None:
        self.target, self.root = target, root
        self.precision = target.get("precision", "fp32")
        self.threads = target.get("threads")

    @abstractmethod
    def prepare(self, graph: Graph) -> tuple[Callable[[], object], Callable[[], None]]:
        """Load/build the graph and its input buffers."""

    def release(self) -> None:  # noqa: B027 - optional hook, most backends free on their own
        """Free the prepared graph (sessions, engines, buffers)."""

    def versions(self) -> dict[str, str]:
        return {}

    def clocks(self) -> dict[str, Any]:
        """Clock/throttle state where the backend can see it (GPU backends)."""
        return {}


def create_backend(name: str, target: dict[str, Any], root: Path) -> Backend:
    """Instantiate a backend by name, importing its module only now."""
    return BACKENDS.load(name, BackendUnavailable)(target, root)


def random_inputs(graph: Graph, dtype: Any) -> dict[str, Any]:
    """Deterministic inputs of the graph's static shapes (content does not change the shapes)."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for name, shape in graph.inputs.items():
        if name == "size":
            out[name] = np.ones(shape, dtype=dtype)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out
