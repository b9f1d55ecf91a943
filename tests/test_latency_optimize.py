"""optimize --latency-ms on a real quick profile of a small timm ViT (this CPU)."""
import json
import subprocess
import sys
import tarfile

import pytest
from test_profile import MODEL, quick_targets  # noqa: F401 - fixture

from hwsearch.cli import main
from hwsearch.cost import MeasuredCost
from hwsearch.fit import load_costmodel
from hwsearch.schedule import load

SEARCH = ["--epochs", "1", "--batch-size", "8", "--num-images", "16", "--no-progress"]


@pytest.fixture
def profiled(quick_targets, tmp_path):  # noqa: F811
    out = tmp_path / "results"
    assert main(["profile", "--target", "cpu_onnxruntime", *MODEL, "--whole-models", "4", "--out", str(out),
                 "--no-progress"]) == 0
    return out


def test_latency_budget_searched_then_measured(profiled, capsys):
    assert main(["fit", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out",
                 str(profiled)]) == 0
    folder = profiled / "cpu_onnxruntime" / "deit_tiny_patch16_224"
    cost = MeasuredCost(load_costmodel(folder / "costmodel.json"))
    budget = 0.8 * cost.dense_cost(12)
    assert main(["optimize", "--target", "cpu_onnxruntime", *MODEL, "--latency-ms", f"{budget:.4f}",
                 "--refine", "0", *SEARCH, "--out", str(profiled)]) == 0
    printed = capsys.readouterr().out
    assert "measured on cpu_onnxruntime (onnxruntime, batch 8, same run)" in printed
    schedule = load(next((folder / "schedules").glob("latency*.yaml")))
    assert schedule.budget["kind"] == "latency_ms" and schedule.predicted["unit"] == "ms"
    measured = schedule.provenance["measured"]
    assert measured["compressed"]["median_ms"] > 0 and measured["dense"]["median_ms"] > 0


def test_latency_budget_errors(profiled, capsys, tmp_path):
    args = ["optimize", "--target", "cpu_onnxruntime", *MODEL, *SEARCH, "--out", str(profiled)]
    assert main(args + ["--latency-ms", "0.0001"]) == 2
    assert "reachable range" in capsys.readouterr().err
    assert main(["optimize", "--target", "cpu_onnxruntime", *MODEL, *SEARCH, "--latency-ms", "5", "--out",
                 str(tmp_path / "empty")]) == 2
    assert "no profile" in capsys.readouterr().err
    path = profiled / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "costmodel.json"
    assert main(["fit", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out",
                 str(profiled)]) == 0
    data = json.loads(path.read_text())
    data["model_hash"] = "0000000000000000"
    path.write_text(json.dumps(data))
    assert main(args + ["--latency-ms", "50"]) == 2
    assert "stale" in capsys.readouterr().err
    path.write_text("{not json")
    assert main(args + ["--latency-ms", "50"]) == 2
    assert "corrupt cost model" in capsys.readouterr().err


def test_gpu_target_runs_predicted_only(quick_targets, tmp_path, capsys):  # noqa: F811
    """A GPU target's profile made by the real profiler on this CPU (labelled by its backend
    column, onnxruntime); written under tmp_path, never to results/ as that device's data."""
    tar = tmp_path / "b.tar.gz"
    assert main(["profile", "--target", "h100_torch", *MODEL, "--whole-models", "3", "--bundle", str(tar)]) == 0
    with tarfile.open(tar) as t:
        t.extractall(tmp_path / "u", filter="data")
    run = subprocess.run([sys.executable, "-m", "profilers", "run", "bundle", "--backend", "onnxruntime"],
                         cwd=tmp_path / "u", capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-1500:]
    out = tmp_path / "cpu-measured"
    assert main(["profile", "--target", "h100_torch", *MODEL, "--import",
                 str(tmp_path / "u" / "bundle" / "measurements.csv"), "--out", str(out)]) == 0
    capsys.readouterr()
    cost = MeasuredCost(json.loads(json.dumps(_fit(out))))
    budget = 0.8 * cost.dense_cost(12)
    assert main(["optimize", "--target", "h100_torch", *MODEL, "--latency-ms", f"{budget:.4f}", *SEARCH,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "predicted only: h100_torch is not this host" in printed and "measured on" not in printed


def _fit(out):
    from hwsearch.fit import fit_costmodel

    return fit_costmodel(out / "h100_torch" / "deit_tiny_patch16_224" / "profile.csv")
