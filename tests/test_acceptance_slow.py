"""The core acceptance run on the embedded default (minutes): pytest -m slow."""
import json
import time

import pytest

from hwsearch.cli import main
from hwsearch.schedule import load


@pytest.mark.slow
def test_default_optimize_then_evaluate(tmp_path):
    start = time.perf_counter()
    assert main(["optimize", "--flops-ratio", "0.6", "--out", str(tmp_path), "--no-progress"]) == 0
    assert time.perf_counter() - start < 15 * 60
    path = next(tmp_path.rglob("flops0.6.yaml"))
    schedule = load(path)
    assert abs(schedule.predicted["flops_ratio"] / 0.6 - 1) <= 0.03
    assert main(["evaluate", str(path)]) == 0
    report = json.loads(path.with_suffix(".eval.json").read_text())
    assert report["batch"] == 8 and report["speedup"] >= 1.3
    assert report["fidelity"]["feature_cosine"] > 0.9
