"""The GPU check's path on the CPU (``--dry-run``), and the torch backend's graphs as CUDA will run them."""
import json
import re
import sys
from pathlib import Path

import pytest
import torch

from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.export import build_bundle
from hwsearch.targets import load_target
from profilers.backends.base import BackendUnavailable, random_inputs
from profilers.backends.torch_backend import check_device
from tests.conftest import make_vit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_check  # noqa: E402


def test_torchscript_graphs_keep_no_device_and_run_in_half(tmp_path):
    """A bundle is traced on the host's CPU and run on the device: no graph may bake the tracing
    device in (``torch.arange(device=...)`` would), and every part must run in fp16 (the CUDA
    targets' precision) with fp16 outputs."""
    model = CompressedViT(make_vit("deit_tiny"))
    bundle = build_bundle(tmp_path, model, "deit_tiny", load_target("cpu_torch"), [2], whole_models=2,
                          compress_samples=3)
    parts = set()
    for graph in bundle.graphs:
        module = torch.jit.load(str(tmp_path / graph.torchscript))
        code = module.code + "".join(m.code for _, m in module.named_modules() if hasattr(m, "code"))
        assert not re.search(r"torch\.device\(", code), graph.id
        check_device(graph.id, module, torch.device("cuda"))  # what the torch backend checks on the device
        # a tensor constant moves to the GPU with the graph: read back by int() it syncs the device,
        # which a CUDA graph capture refuses (seen on an H200 before the fix)
        from_constants = set(re.findall(r"(\w+) = [^\n]*CONSTANTS\.", code))
        assert not from_constants & set(re.findall(r"int\((\w+)\)", code)), graph.id
        inputs = [torch.from_numpy(a).half() for a in random_inputs(graph, "float32").values()]
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            out = module.eval().half()(*inputs)
        first = out[0] if isinstance(out, (tuple, list)) else out
        assert first.dtype == torch.float16 and torch.isfinite(first).all(), graph.id
        parts.add(graph.part)
    assert parts == {"embed", "attn", "mlp", "block", "compress", "compress_similarity", "head", "model"}


def test_a_graph_traced_with_a_baked_device_is_refused_on_another(tmp_path):
    """The device side refuses a TorchScript graph that a trace baked the CPU into (as hwsearch's graphs
    did before they became device-agnostic), with one clear error; on its own device it runs."""
    class Baked(torch.nn.Module):
        def forward(self, x):
            return x + torch.arange(x.shape[0], device=x.device).to(x.dtype)

    with pytest.warns(FutureWarning):
        traced = torch.jit.trace(Baked(), torch.zeros(3))
    check_device("baked", traced, torch.device("cpu"))
    with pytest.raises(BackendUnavailable, match="graph baked was traced with device cpu baked in and cannot run "
                                                 "on cuda"):
        check_device("baked", traced, torch.device("cuda"))


def test_jumps_lists_steps_above_the_threshold():
    rows = [{"tokens": n, "median_ms": ms} for n, ms in [(64, 1.0), (65, 1.01), (66, 1.10), (67, 1.11)]]
    assert gpu_check.jumps(rows) == [(65, 66, pytest.approx(1.10 / 1.01))]


@pytest.mark.timing
def test_dry_run_runs_every_stage_on_the_cpu(tmp_path, capsys):
    """The same stages as on a GPU, tiny sizes; asserts only what host noise cannot break."""
    gpu_check.main(["--dry-run", "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {s["stage"]: s for s in summary["stages"]}
    assert list(status) == list(gpu_check.STAGES)
    assert status["profile"]["status"] == "ok" and status["sweep"]["status"] == "ok"
    sweep = summary["results"]["sweep"]
    assert sweep["counts"] == list(range(gpu_check.DRY.sweep_from, 38))  # every count to 37 tokens (96 px)
    assert all(ms > 0 for ms in sweep["median_ms"])
    # no NVML on a CPU host: the stage names why; with NVML it measures
    assert status["energy"]["status"] == "ok" or "nvml" in status["energy"]["result"].lower()
    # the optimize stage runs the product's flow on a noisy tiny profile: it writes a measured
    # schedule, or refuses in one line as optimize does for a profile that reaches nothing
    opt = status["optimize"]
    assert opt["status"] == "ok" or opt["result"].startswith("HwsearchError: "), opt
    if opt["status"] == "ok":
        assert summary["results"]["optimize"]["measured"]["compressed"]["median_ms"] > 0
    table = (tmp_path / "gpu_check.txt").read_text()
    assert table.count("\n| ") == 1 + len(gpu_check.STAGES)  # header + one row per stage
