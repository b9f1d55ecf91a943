"""PyTorch backend: TorchScript graphs from the bundle, on CPU or CUDA (CUDA graphs optional)."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch

from profilers.backends.base import BACKENDS, Backend, BackendUnavailable, random_inputs
from profilers.bundle import Graph

BAKED_DEVICE = re.compile(r'Device = prim::Constant\[value="([^"]+)"\]')


def check_device(graph_id: str, module: Any, device: Any) -> None:
    """Refuse a TorchScript graph that has another device baked in (a trace of ``torch.arange(...,
    device=x.device)`` on the CPU keeps ``cpu`` as a constant): it would fail, or silently copy to that
    device, inside the timed calls. hwsearch exports device-agnostic graphs; older bundles may not be."""
    baked = set(BAKED_DEVICE.findall(str(module.inlined_graph)))
    other = sorted(d for d in baked if torch.device(d).type != device.type)
    if other:
        raise BackendUnavailable(f"graph {graph_id} was traced with device {', '.join(other)} baked in and cannot "
                                 f"run on {device.type}: make the bundle again with this hwsearch (its graphs hold "
                                 f"no device)")


@BACKENDS.register("torch")
class TorchBackend(Backend):
    def __init__(self, target: dict[str, Any], root: Any) -> None:
        super().__init__(target, root)
        self.device = torch.device("cuda" if target.get("device") in ("cuda", "jetson") else "cpu")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("torch backend: target needs CUDA, torch.cuda.is_available() is False")
        if self.threads and self.device.type == "cpu":
            torch.set_num_threads(int(self.threads))
        self.dtype = torch.float16 if self.precision == "fp16" and self.device.type == "cuda" else torch.float32

    def prepare(self, graph: Graph) -> tuple[Callable[[], object], Callable[[], None]]:
        if not graph.torchscript:
            raise BackendUnavailable(f"graph {graph.id} has no TorchScript file in this bundle")
        module = torch.jit.load(str(self.root / graph.torchscript), map_location=self.device)
        check_device(graph.id, module, self.device)
        module = module.eval().to(self.dtype)
        inputs = [torch.from_numpy(a).to(self.device, self.dtype) for a in random_inputs(graph, "float32").values()]
        if self.device.type == "cpu":
            def run() -> object:
                with torch.inference_mode():
                    return module(*inputs)
            return run, (lambda: None)
        return self._cuda_runner(module, inputs)

    def _cuda_runner(self, module: Any, inputs: list[Any]) -> tuple[Callable[[], object], Callable[[], None]]:
        """Eager CUDA, or one CUDA graph of the module (PyTorch's recipe: warm up on a side stream, then
        capture). The graph executor's profiling/fusion passes stay off, so the first calls compile
        nothing and the captured kernels are the ones eager PyTorch runs."""
        def call() -> object:
            with torch.inference_mode(), torch.jit.optimized_execution(False):
                return module(*inputs)

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                call()
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        if not self.target.get("cuda_graphs"):
            return call, torch.cuda.synchronize
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            call()
        torch.cuda.synchronize()

        def replay(held: tuple[Any, ...] = (module, inputs)) -> None:  # the graph reads their memory in place
            graph.replay()

        return replay, torch.cuda.synchronize

    def versions(self) -> dict[str, str]:
        info = {"torch": torch.__version__}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name()
        return info
