"""TensorRT backend: pure parts tested here; the engine path needs TensorRT + a GPU."""
import sys
from types import SimpleNamespace

import pytest

from profilers.backends import BackendUnavailable
from profilers.backends.tensorrt_backend import (
    build_engine,
    build_plan,
    check_dla,
    execute,
    load_engine,
    trtexec_command,
    write_atomic,
)


def test_tensorrt10_uses_fp16_builder_flag():
    plan = build_plan("10.3.0", "fp16", {"workspace_mb": 2048})
    assert plan.fp16_flag and not plan.strongly_typed and plan.onnx_field == "onnx"
    assert plan.workspace_bytes == 2048 << 20
    cmd = trtexec_command(plan, "g.onnx", "g.engine", "timing.cache")
    assert "--fp16" in cmd and "--memPoolSize=workspace:2048M" in cmd and "--timingCacheFile=timing.cache" in cmd


def test_tensorrt11_is_strongly_typed_with_fp16_graph():
    plan = build_plan("11.0.0.1", "fp16", {"dla_core": 0})
    assert plan.strongly_typed and not plan.fp16_flag and plan.onnx_field == "onnx_fp16"
    cmd = trtexec_command(plan, "g.fp16.onnx", "g.engine")
    assert "--stronglyTyped" in cmd and "--fp16" not in cmd and "--useDLACore=0" in cmd


def test_missing_tensorrt_is_a_clear_error(tmp_path):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    from profilers.backends import create_backend

    with pytest.raises(BackendUnavailable, match="needs the TensorRT Python package"):
        create_backend("tensorrt", {"precision": "fp16"}, tmp_path)


def test_old_tensorrt_refused():
    with pytest.raises(BackendUnavailable, match="supports TensorRT 8.5 to 11"):
        build_plan("8.4.3", "fp16", {})


def test_tensorrt8_plans_for_jetpack5():
    """Jetson AGX Xavier stays on JetPack 5.1 (TensorRT 8.5): weakly typed, explicit batch, and no
    builder optimization level before 8.6; strongly typed networks need TensorRT 9."""
    p85 = build_plan("8.5.2.2", "fp16", {"builder_optimization_level": 3})
    assert p85.explicit_batch and p85.fp16_flag and not p85.strongly_typed and p85.optimization_level is None
    assert "--builderOptimizationLevel" not in trtexec_command(p85, "g.onnx", "g.engine")
    p86 = build_plan("8.6.1", "fp16", {"builder_optimization_level": 4})
    assert p86.optimization_level == 4 and "--builderOptimizationLevel=4" in trtexec_command(p86, "g.onnx", "e")
    assert not build_plan("10.3.0", "fp16", {}).explicit_batch
    with pytest.raises(BackendUnavailable, match="strongly typed networks need TensorRT 9"):
        build_plan("8.6.1", "fp16", {"strongly_typed": True})


def test_engine_names_and_cache_flags():
    a, b = build_plan("10.3.0", "fp16", {}), build_plan("10.4.0", "fp16", {})
    assert a.key().startswith("trt10.3.0.") and a.key() != b.key()
    assert a.key() != build_plan("10.3.0", "fp32", {}).key() and a.key() == build_plan("10.3.0", "fp16", {}).key()
    off = build_plan("10.3.0", "fp16", {"timing_cache": False})
    assert "--timingCacheFile" not in trtexec_command(off, "g.onnx", "g.engine", "timing.cache")


def test_dla_core_must_exist():
    check_dla(build_plan("10.3.0", "fp16", {}), 0)  # no DLA asked for
    with pytest.raises(BackendUnavailable, match="has no DLA"):
        check_dla(build_plan("11.0.0", "fp16", {"dla_core": 0}), 0)
    with pytest.raises(BackendUnavailable, match="has 2"):
        check_dla(build_plan("10.3.0", "fp16", {"dla_core": 2}), 2)
    check_dla(build_plan("10.3.0", "fp16", {"dla_core": 1}), 2)


class FakeTensorRT:
    """The ``tensorrt`` calls build_engine makes, recorded (the library boundary; TensorRT is not
    installable here). ``dla_cores`` and ``accept_cache`` set what the device answers."""

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    NetworkDefinitionCreationFlag = SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    MemoryPoolType = SimpleNamespace(WORKSPACE="workspace")
    BuilderFlag = SimpleNamespace(FP16="fp16", GPU_FALLBACK="gpu_fallback")
    DeviceType = SimpleNamespace(DLA="dla")

    def __init__(self, dla_cores=0, accept_cache=True):
        self.calls = {}
        fake = self

        class Config(SimpleNamespace):
            def set_memory_pool_limit(self, pool, size):
                fake.calls["workspace"] = size

            def set_flag(self, flag):
                fake.calls.setdefault("flags", []).append(flag)

            def create_timing_cache(self, blob):
                return SimpleNamespace(serialize=lambda: b"cache")

            def set_timing_cache(self, cache, ignore_mismatch):
                return accept_cache

            def __setattr__(self, name, value):
                fake.calls[name] = value
                super().__setattr__(name, value)

        class Builder:
            num_DLA_cores = dla_cores

            def __init__(self, logger):
                pass

            def create_network(self, flags):
                fake.calls["network_flags"] = flags
                return "network"

            def create_builder_config(self):
                return Config()

            def build_serialized_network(self, network, config):
                return b"plan"

        self.Builder = Builder
        self.OnnxParser = lambda network, logger: SimpleNamespace(parse_from_file=lambda path: True, num_errors=0)


def test_engine_build_answers_checked_against_a_fake_tensorrt(tmp_path, monkeypatch, capsys):
    fake = FakeTensorRT()
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    cache = tmp_path / "timing.cache"
    assert build_engine(tmp_path / "g.onnx", build_plan("8.5.2", "fp16", {}), cache) == b"plan"
    assert fake.calls["network_flags"] == 1 << 0 and "builder_optimization_level" not in fake.calls
    assert fake.calls["flags"] == ["fp16"] and cache.read_bytes() == b"cache"
    fake = FakeTensorRT(accept_cache=False)
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    cache.unlink()
    assert build_engine(tmp_path / "g.onnx", build_plan("10.3.0", "fp16", {}), cache) == b"plan"
    assert fake.calls["network_flags"] == 0 and fake.calls["builder_optimization_level"] == 3
    assert "did not accept the timing cache" in capsys.readouterr().err and not cache.exists()
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(dla_cores=0))
    with pytest.raises(BackendUnavailable, match="has no DLA"):
        build_engine(tmp_path / "g.onnx", build_plan("11.0.0", "fp16", {"dla_core": 0}), cache)
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT(dla_cores=2))
    build_engine(tmp_path / "g.onnx", build_plan("10.3.0", "fp16", {"dla_core": 1}), None)
    assert sys.modules["tensorrt"].calls["DLA_core"] == 1


def test_failed_inference_and_unreadable_engine_are_errors(tmp_path):
    with pytest.raises(RuntimeError, match="execute_async_v3 failed"):
        execute(SimpleNamespace(execute_async_v3=lambda stream: False), 0)
    execute(SimpleNamespace(execute_async_v3=lambda stream: True), 0)
    engine = tmp_path / "g.engine"
    write_atomic(engine, b"not an engine")
    assert engine.read_bytes() == b"not an engine" and not list(tmp_path.glob(".*tmp"))
    with pytest.raises(RuntimeError, match="could not deserialize"):
        load_engine(SimpleNamespace(deserialize_cuda_engine=lambda data: None), engine)


def test_engine_build_and_time_on_device(tmp_path):
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installable here (PyPI has placeholders "
                                                  "only): the engine path is unverified on this host")
    import torch

    from profilers.backends import create_backend
    from profilers.bundle import Graph
    from profilers.timing import measure_interleaved

    torch.onnx.export(torch.nn.Linear(16, 16), (torch.randn(4, 16),), str(tmp_path / "g.onnx"),
                      input_names=["x"], dynamo=False)
    target = {"name": "t", "precision": "fp32", "device": "cuda", "tensorrt": {"workspace_mb": 256}}
    backend = create_backend("tensorrt", target, tmp_path)
    run, sync = backend.prepare(Graph("g", "mlp", 16, 4, "g.onnx", {"x": [4, 16]}))
    stats = measure_interleaved({"g": run}, warmup_s=0.1, repeat_s=0.05, repeats=3, syncs={"g": sync})["g"]
    assert stats.median_ms > 0 and trt.__version__
