"""TensorRT backend: pure parts tested here; the engine path needs TensorRT + a GPU."""
import pytest

from profilers.backends import BackendUnavailable
from profilers.backends.tensorrt_backend import build_plan, trtexec_command


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
    with pytest.raises(BackendUnavailable, match="TensorRT 10 and 11"):
        build_plan("8.6.1", "fp16", {})


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
