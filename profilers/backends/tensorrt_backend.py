"""TensorRT backend: one engine per static-shape graph (TensorRT 10.x and 11 Python APIs).

Written against the documented TensorRT Python API; it has NOT run on hardware in this project
(TensorRT cannot be installed where it was developed). The pure parts (:func:`build_plan`,
:func:`trtexec_command`) are unit-tested. Buffers and streams come from cuda-python
(``cuda.bindings.runtime`` or the older ``cuda.cudart``) or, failing that, pycuda.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profilers.backends.base import BACKENDS, Backend, BackendUnavailable, random_inputs
from profilers.bundle import Graph


@dataclass
class BuildPlan:
    """How to build an engine, decided from the TensorRT version and the target file."""

    major: int
    strongly_typed: bool
    fp16_flag: bool
    onnx_field: str
    workspace_bytes: int
    optimization_level: int
    dla_core: int | None
    timing_cache: bool


def build_plan(trt_version: str, precision: str, options: dict[str, Any]) -> BuildPlan:
    """TensorRT 11 builds strongly-typed networks only (fp16 comes from an fp16 ONNX graph);
    TensorRT 10 builds weakly-typed networks with the FP16 builder flag unless asked otherwise."""
    major = int(trt_version.split(".")[0])
    if major < 10:
        raise BackendUnavailable(f"TensorRT {trt_version}: hwsearch supports TensorRT 10 and 11")
    strongly = major >= 11 or bool(options.get("strongly_typed", False))
    fp16 = precision == "fp16"
    return BuildPlan(
        major=major, strongly_typed=strongly, fp16_flag=fp16 and not strongly,
        onnx_field="onnx_fp16" if (fp16 and strongly) else "onnx",
        workspace_bytes=int(options.get("workspace_mb", 4096)) << 20,
        optimization_level=int(options.get("builder_optimization_level", 3)),
        dla_core=options.get("dla_core"), timing_cache=bool(options.get("timing_cache", True)))


def trtexec_command(plan: BuildPlan, onnx: str, engine: str, cache: str | None = None) -> str:
    """The equivalent trtexec command line (written beside engines for cross-checks)."""
    parts = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}",
             f"--memPoolSize=workspace:{plan.workspace_bytes >> 20}M",
             f"--builderOptimizationLevel={plan.optimization_level}"]
    if plan.strongly_typed:
        parts.append("--stronglyTyped")
    elif plan.fp16_flag:
        parts.append("--fp16")
    if plan.dla_core is not None:
        parts += [f"--useDLACore={plan.dla_core}", "--allowGPUFallback"]
    if cache:
        parts.append(f"--timingCacheFile={cache}")
    return " ".join(parts)


def build_engine(onnx_path: Path, plan: BuildPlan, cache_path: Path | None = None) -> bytes:
    """Parse ONNX and build a serialized engine with the TensorRT Python API."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.optimization_level
    if plan.fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(plan.dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    cache = None
    if plan.timing_cache:
        blob = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
        cache = config.create_timing_cache(blob)
        config.set_timing_cache(cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path}")
    if cache is not None and cache_path is not None:
        cache_path.write_bytes(bytes(cache.serialize()))
    return bytes(serialized)


class _Cuda:
    """Device memory and streams through cuda-python, else pycuda."""

    def __init__(self) -> None:
        try:
            try:
                from cuda.bindings import runtime as cudart
            except ImportError:
                from cuda import cudart  # type: ignore[no-redef]
            self.cudart, self.pycuda = cudart, None
            self.stream = self._ok(cudart.cudaStreamCreate())
        except ImportError:
            try:
                import pycuda.autoinit  # noqa: F401
                import pycuda.driver as cuda
            except ImportError as exc:
                raise BackendUnavailable("tensorrt backend needs cuda-python or pycuda") from exc
            self.cudart, self.pycuda = None, cuda
            self.stream = cuda.Stream()
        self.allocations: list[Any] = []

    @staticmethod
    def _ok(result: Any) -> Any:
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise RuntimeError(f"CUDA error {err}")
        return rest[0] if len(rest) == 1 else rest

    @property
    def stream_handle(self) -> int:
        return int(self.stream) if self.cudart is not None else self.stream.handle

    def upload(self, array: Any) -> int:
        if self.cudart is not None:
            ptr = self._ok(self.cudart.cudaMalloc(array.nbytes))
            self._ok(self.cudart.cudaMemcpy(ptr, array.ctypes.data, array.nbytes,
                                            self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice))
            self.allocations.append(ptr)
            return int(ptr)
        buf = self.pycuda.to_device(array)
        self.allocations.append(buf)
        return int(buf)

    def empty(self, nbytes: int) -> int:
        if self.cudart is not None:
            ptr = self._ok(self.cudart.cudaMalloc(nbytes))
            self.allocations.append(ptr)
            return int(ptr)
        buf = self.pycuda.mem_alloc(nbytes)
        self.allocations.append(buf)
        return int(buf)

    def download(self, ptr: Any, array: Any) -> None:
        """Copy device memory into the (contiguous) host ``array``."""
        if self.cudart is not None:
            self._ok(self.cudart.cudaMemcpy(array.ctypes.data, ptr, array.nbytes,
                                            self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost))
        else:
            self.pycuda.memcpy_dtoh(array, ptr)

    def sync(self) -> None:
        if self.cudart is not None:
            self._ok(self.cudart.cudaStreamSynchronize(self.stream))
        else:
            self.stream.synchronize()

    def capture(self, enqueue: Callable[[], object]) -> Callable[[], object] | None:
        """A CUDA graph of one inference (cuda-python only); None where unsupported."""
        if self.cudart is None:
            return None
        rt = self.cudart
        self._ok(rt.cudaStreamBeginCapture(self.stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
        enqueue()
        graph = self._ok(rt.cudaStreamEndCapture(self.stream))
        exec_graph = self._ok(rt.cudaGraphInstantiate(graph, 0))
        return lambda: rt.cudaGraphLaunch(exec_graph, self.stream)

    def free(self) -> None:
        for a in self.allocations:
            if self.cudart is not None:
                self.cudart.cudaFree(a)
            else:
                a.free()
        self.allocations.clear()


def run_engine(engine_path: Path, feeds: dict[str, Any]) -> dict[str, Any]:
    """One inference of a serialized engine on host arrays; outputs as float32 host arrays
    (for accuracy checks after deploy, not for timing)."""
    import numpy as np
    import tensorrt as trt

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    context = engine.create_execution_context()
    cuda = _Cuda()
    outputs: dict[str, tuple[Any, int]] = {}
    try:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = trt.nptype(engine.get_tensor_dtype(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                ptr = cuda.upload(np.ascontiguousarray(feeds[name].astype(dtype)))
            else:
                host = np.empty(tuple(engine.get_tensor_shape(name)), dtype=dtype)
                ptr = cuda.empty(host.nbytes)
                outputs[name] = (host, ptr)
            context.set_tensor_address(name, ptr)
        context.execute_async_v3(cuda.stream_handle)
        cuda.sync()
        for host, ptr in outputs.values():
            cuda.download(ptr, host)
    finally:
        cuda.free()
    return {name: host.astype(np.float32) for name, (host, _) in outputs.items()}


@BACKENDS.register("tensorrt")
class TensorRTBackend(Backend):
    def __init__(self, target: dict[str, Any], root: Path) -> None:
        super().__init__(target, root)
        try:
            import tensorrt as trt
        except ImportError:
            raise BackendUnavailable("backend 'tensorrt' needs the TensorRT Python package (JetPack's "
                                     "python3-libnvinfer or NVIDIA's wheels): not installed on this host") from None

        self.trt = trt
        self.plan = build_plan(trt.__version__, self.precision, target.get("tensorrt") or {})
        self.cuda = _Cuda()
        self.engines = root / "engines"
        self.engines.mkdir(exist_ok=True)
        self.live: list[Any] = []  # engines/contexts of prepared graphs stay alive until release()

    def prepare(self, graph: Graph) -> tuple[Callable[[], object], Callable[[], None]]:
        trt = self.trt
        onnx = getattr(graph, self.plan.onnx_field, None) or graph.onnx
        engine_path = self.engines / f"{graph.id}.engine"
        if not engine_path.is_file():
            engine_path.write_bytes(build_engine(self.root / onnx, self.plan, self.engines / "timing.cache"))
            (self.engines / f"{graph.id}.trtexec.txt").write_text(
                trtexec_command(self.plan, onnx, str(engine_path), "timing.cache") + "\n")
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
        context = engine.create_execution_context()
        self.live.append((runtime, engine, context))
        import numpy as np

        feeds = random_inputs(graph, np.float32)
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = trt.nptype(engine.get_tensor_dtype(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                ptr = self.cuda.upload(np.ascontiguousarray(feeds[name].astype(dtype)))
            else:
                shape = tuple(engine.get_tensor_shape(name))
                ptr = self.cuda.empty(int(np.prod(shape)) * np.dtype(dtype).itemsize)
            context.set_tensor_address(name, ptr)
        handle = self.cuda.stream_handle

        def enqueue() -> object:
            return context.execute_async_v3(handle)

        enqueue()
        self.cuda.sync()
        graph_launch = self.cuda.capture(enqueue) if self.target.get("cuda_graphs") else None
        return (graph_launch or enqueue), self.cuda.sync

    def release(self) -> None:
        self.live.clear()
        self.cuda.free()

    def versions(self) -> dict[str, str]:
        return {"tensorrt": self.trt.__version__, "strongly_typed": str(self.plan.strongly_typed)}
