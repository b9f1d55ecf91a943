"""torchrun data-parallel gradient search (2 CPU processes, gloo) matches one process."""
import json
import os
import shutil
import subprocess
import sys

import pytest

ARGS = ["optimize", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--img-size", "64",
        "--flops-ratio", "0.6", "--num-images", "40", "--batch-size", "8", "--epochs", "2", "--no-progress",
        "--name", "ddp"]


def _run(cmd, out):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([*cmd, *ARGS, "--out", str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    folder = out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "schedules"
    return json.loads((folder / "ddp.history.json").read_text()), run.stdout


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_torchrun_two_processes_match_one(tmp_path):
    single, _ = _run([sys.executable, "-m", "hwsearch"], tmp_path / "one")
    ddp, printed = _run(["torchrun", "--standalone", "--nproc-per-node", "2", "-m", "hwsearch"], tmp_path / "two")
    assert printed.count("wrote ") == 2 and printed.count("report/ddp.html") == 1  # rank 0 alone: schedule + page
    for key, logits in single["logits"].items():
        assert ddp["logits"][key] == pytest.approx(logits, abs=1e-4), key  # float summation order only
    assert ddp["history"][-1]["cost"] == pytest.approx(single["history"][-1]["cost"], rel=1e-3)
    pairs = zip(_counts(tmp_path / "one"), _counts(tmp_path / "two"), strict=True)
    assert all(abs(a - b) <= 4 for x, y in pairs for a, b in zip(x, y, strict=True))  # within one candidate step


def _counts(out):
    import yaml

    path = out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "schedules" / "ddp.yaml"
    return yaml.safe_load(path.read_text())["blocks"]
