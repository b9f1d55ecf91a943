"""ONNX Runtime backend (CPU execution provider, or CUDA where the target device is a GPU)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort

from profilers.backends.base import BACKENDS, Backend, random_inputs
from profilers.bundle import Graph


@BACKENDS.register("onnxruntime")
class OnnxRuntimeBackend(Backend):
    def prepare(self, graph: Graph) -> tuple[Callable[[], object], Callable[[], None]]:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # flush denormals to zero: a CPU's time on denormal floats depends on the data (seen at 518 px:
        # 3% of block 0's attention weights denormal on the profile's inputs made it 3x slower than
        # blocks 1-11); the cost model must not depend on the inputs. Deploy sessions should set it too.
        opts.add_session_config_entry("session.set_denormal_as_zero", "1")
        if self.threads:
            opts.intra_op_num_threads = int(self.threads)
            opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if self.target.get("device") in ("cuda", "jetson") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = session = ort.InferenceSession(str(self.root / graph.onnx), opts, providers=providers)
        # inputs bound once (no per-call copies, like trtexec's device buffers)
        binding = session.io_binding()
        feeds: dict[str, Any] = random_inputs(graph, np.float32)
        for name, array in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array))
        for out in session.get_outputs():
            binding.bind_output(out.name)
        return (lambda: session.run_with_iobinding(binding)), (lambda: None)

    def release(self) -> None:
        self.session = None

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": ort.__version__}
