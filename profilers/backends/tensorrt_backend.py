"""TensorRT backend: one engine per static-shape graph (TensorRT 8.5/8.6, 10.x and 11 Python APIs).

Written against the documented TensorRT Python API; it has NOT run on hardware in this project
(TensorRT cannot be installed where it was developed). The pure parts (:func:`build_plan`,
:func:`trtexec_command`, :func:`check_dla`) are unit-tested, and the engine build and run against a
fake ``tensorrt`` module at the library boundary. Every library answer is checked: a None engine, a
False from ``execute_async_v3``, a refused timing cache, a failed CUDA-graph capture (then no graph,
as trtexec does); engines are written atomically and named by TensorRT version and plan. Buffers and
streams come from cuda-python (``cuda.bindings.runtime`` or the older ``cuda.cudart``) or, failing
that, pycuda.
"""
from __future__ import annotations

import os
import sys
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
    optimization_level: int | None  # builder_optimization_level exists from TensorRT 8.6
    dla_core: int | None
    timing_cache: bool
    explicit_batch: bool = False  # TensorRT 8.x parses ONNX only into explicit-batch networks (10: the default)
    version: str = ""

    def key(self) -> str:
        """Names cached engines: the TensorRT version and a hash of the plan (an engine of another
        version or plan is never loaded)."""
        import hashlib

        text = repr(sorted(vars(self).items()))
        return f"trt{self.version or self.major}.{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def build_plan(trt_version: str, precision: str, options: dict[str, Any]) -> BuildPlan:
    """TensorRT 11 builds strongly-typed networks only (fp16 comes from an fp16 ONNX graph);
    TensorRT 10 builds weakly-typed networks with the FP16 builder flag unless asked otherwise;
    TensorRT 8.5/8.6 (JetPack 5.1: Jetson AGX Xavier) weakly-typed explicit-batch networks, with a
    builder optimization level from 8.6 on."""
    try:
        major, minor = (int(v) for v in trt_version.split(".")[:2])
    except ValueError:
        raise BackendUnavailable(f"cannot read the TensorRT version {trt_version!r}") from None
    if (major, minor) < (8, 5):
        raise BackendUnavailable(f"TensorRT {trt_version}: hwsearch supports TensorRT 8.5 to 11 (the name-based "
                                 f"I/O API of execute_async_v3 came with 8.5)")
    asked = bool(options.get("strongly_typed", False))
    if asked and major < 9:
        raise BackendUnavailable(f"TensorRT {trt_version}: strongly typed networks need TensorRT 9 or newer "
                                 f"(set tensorrt.strongly_typed: false in the target file)")
    strongly = major >= 11 or asked
    fp16 = precision == "fp16"
    return BuildPlan(
        major=major, strongly_typed=strongly, fp16_flag=fp16 and not strongly,
        onnx_field="onnx_fp16" if (fp16 and strongly) else "onnx",
        workspace_bytes=int(options.get("workspace_mb", 4096)) << 20,
        optimization_level=int(options.get("builder_optimization_level", 3)) if (major, minor) >= (8, 6) else None,
        dla_core=options.get("dla_core"), timing_cache=bool(options.get("timing_cache", True)),
        explicit_batch=major < 10, version=trt_version)


def trtexec_command(plan: BuildPlan, onnx: str, engine: str, cache: str | None = None) -> str:
    """The equivalent trtexec command line (written beside engines for cross-checks)."""
    parts = ["trtexec", f"--onnx={onnx}", f"--saveEngine={engine}",
             f"--memPoolSize=workspace:{plan.workspace_bytes >> 20}M"]
    if plan.optimization_level is not None:
        parts.append(f"--builderOptimizationLevel={plan.optimization_level}")
    if plan.strongly_typed:
        parts.append("--stronglyTyped")
    elif plan.fp16_flag:
        parts.append("--fp16")
    if plan.dla_core is not None:
        parts += [f"--useDLACore={plan.dla_core}", "--allowGPUFallback"]
    if cache and plan.timing_cache:
        parts.append(f"--timingCacheFile={cache}")
    return " ".join(parts)


def check_dla(plan: BuildPlan, available: int) -> None:
    """A DLA core asked for must exist (TensorRT 11 releases before DLA returned report none)."""
    if plan.dla_core is None:
        return
    if available == 0:
        raise BackendUnavailable(f"the target asks for DLA core {plan.dla_core}, but this device has no DLA "
                                 f"(builder.num_DLA_cores == 0; TensorRT {plan.version or plan.major})")
    if not 0 <= int(plan.dla_core) < available:
        raise BackendUnavailable(f"DLA core {plan.dla_core} asked for; this device has {available} "
                                 f"(0..{available - 1})")


def build_engine(onnx_path: Path, plan: BuildPlan, cache_path: Path | None = None) -> bytes:
    """Parse ONNX and build a serialized engine with the TensorRT Python API."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    check_dla(plan, int(builder.num_DLA_cores))
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan.strongly_typed else 0
    if plan.explicit_batch:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    if plan.optimization_level is not None:
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
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            print(f"warning: TensorRT did not accept the timing cache {cache_path} (another TensorRT or device?): "
                  f"building without it", file=sys.stderr, flush=True)
            cache = None
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine for {onnx_path}")
    if cache is not None and cache_path is not None:
        write_atomic(cache_path, bytes(cache.serialize()))
    return bytes(serialized)


def write_atomic(path: Path, data: bytes) -> None:
    """Temp file + rename: a killed build never leaves half an engine to be loaded later."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def load_engine(runtime: Any, path: Path) -> Any:
    """Deserialize an engine; None from TensorRT (a corrupt file, another version) is an error."""
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise RuntimeError(f"TensorRT could not deserialize {path} (built by another TensorRT version or device?)")
    return engine


def execute(context: Any, stream: int) -> None:
    """One inference; a False from execute_async_v3 is an error, never a timed no-op."""
    if not context.execute_async_v3(stream):
        raise RuntimeError("TensorRT execute_async_v3 failed (see TensorRT's log above)")


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
        try:
            self._ok(rt.cudaStreamBeginCapture(self.stream, rt.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal))
            try:
                enqueue()
            finally:
                graph = self._ok(rt.cudaStreamEndCapture(self.stream))
            exec_graph = self._ok(rt.cudaGraphInstantiate(graph, 0))
        except RuntimeError as exc:  # like trtexec: a graph that cannot be captured runs without one
            print(f"warning: CUDA graph capture failed ({exc}): timing without a CUDA graph", file=sys.stderr,
                  flush=True)
            self._ok(rt.cudaStreamSynchronize(self.stream))
            return None
        return lambda: self._ok(rt.cudaGraphLaunch(exec_graph, self.stream))

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
    engine = load_engine(runtime, Path(engine_path))
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
        execute(context, cuda.stream_handle)
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
        engine_path = self.engines / f"{graph.id}.{self.plan.key()}.engine"
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if self.plan.dla_core is not None:
            runtime.DLA_core = int(self.plan.dla_core)
        engine = None
        if engine_path.is_file():
            try:
                engine = load_engine(runtime, engine_path)
            except RuntimeError as exc:
                print(f"warning: {exc}: building it again", file=sys.stderr, flush=True)
        if engine is None:
            write_atomic(engine_path, build_engine(self.root / onnx, self.plan, self.engines / "timing.cache"))
            (self.engines / f"{graph.id}.trtexec.txt").write_text(
                trtexec_command(self.plan, onnx, str(engine_path), "timing.cache") + "\n")
            engine = load_engine(runtime, engine_path)
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

        def enqueue() -> None:
            execute(context, handle)

        enqueue()
        self.cuda.sync()
        use_graph = self.target.get("cuda_graphs") and self.plan.dla_core is None  # no CUDA graphs with DLA
        graph_launch = self.cuda.capture(enqueue) if use_graph else None
        return (graph_launch or enqueue), self.cuda.sync

    def release(self) -> None:
        self.live.clear()
        self.cuda.free()

    def versions(self) -> dict[str, str]:
        return {"tensorrt": self.trt.__version__, "strongly_typed": str(self.plan.strongly_typed)}
