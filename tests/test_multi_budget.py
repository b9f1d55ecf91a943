"""Several budgets met together (``--budget TARGET:KIND=VALUE``): the worst-ratio constraint, the search
on two targets' recorded cost models, the YAML round trip, and malformed budget strings."""
import pytest
import yaml
from conftest import recorded_results
from test_latency_optimize import SEARCH
from test_profile import MODEL, quick_targets  # noqa: F401 - fixture

from hwsearch.cli import main
from hwsearch.cost import MeasuredCost
from hwsearch.cost.base import Budget, WorstRatio, constraint
from hwsearch.cost.fit import load_costmodel
from hwsearch.cost.flops import FlopsCost
from hwsearch.model.tokens import fixed_keep
from hwsearch.schedule import load
from tests.conftest import make_vit


def test_worst_ratio_is_the_largest_cost_over_budget_and_its_gradient_flows_there():
    vit = make_vit("deit_tiny")
    flops = FlopsCost.from_model(vit)
    dense = flops.dense_cost(len(vit.blocks))
    loose, tight = Budget(flops, 0.9 * dense, "a"), Budget(flops, 0.6 * dense, "b")
    worst = WorstRatio([loose, tight])
    counts = [(17, 17), (17, 13), (13, 9), (9, 5)]
    assert worst.cost(counts) == pytest.approx(flops.cost(counts) / (0.6 * dense))
    assert worst.unit == "x budget" and worst.num_tokens == flops.num_tokens
    keeps = [fixed_keep(p, m, 17) for p, m in counts]
    expected = worst.expected_cost(keeps)
    assert float(expected) == pytest.approx(float(flops.expected_cost(keeps)) / (0.6 * dense), rel=1e-5)
    assert constraint([loose]) is loose and isinstance(constraint([loose, tight]).cost, WorstRatio)
    assert constraint([loose, tight]).target == 1.0


@pytest.fixture
def two_targets(quick_targets, tmp_path):  # noqa: F811
    """Two test targets with this CPU's cpu_onnxruntime settings marked remote, each with the recorded
    profile (predicted only: nothing is timed)."""
    data = yaml.safe_load((quick_targets / "cpu_onnxruntime.yaml").read_text())
    out = tmp_path / "results"
    for name in ("edge_a", "edge_b"):
        (quick_targets / f"{name}.yaml").write_text(yaml.safe_dump({**data, "name": name, "host": "remote"}))
        recorded_results(out, files=("profile.csv", "meta.json"), target=name)
    return out


def test_two_targets_one_schedule_binding_budget_met_yaml_round_trip(two_targets, capsys):
    out = two_targets
    assert main(["fit", "--target", "edge_a", "--model", "deit_tiny_patch16_224", "--out", str(out)]) == 0
    folder = out / "edge_a" / "deit_tiny_patch16_224"
    cost = MeasuredCost(load_costmodel(folder / "costmodel.json"), "latency", "similarity")
    dense = cost.dense_cost(12)
    a_ms, b_ms = round(0.85 * dense, 4), round(0.7 * dense, 4)  # b binds
    assert main(["optimize", *MODEL, "--budget", f"edge_a:latency-ms={a_ms}", "--budget", f"edge_b:latency-ms={b_ms}",
                 *SEARCH, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "target: edge_a (first --budget)" in printed and "the search meets the worst" in printed
    assert "predicted only: edge_a" in printed and "predicted only: edge_b" in printed
    path = folder / "schedules" / f"latency{a_ms:g}_edge_a-latency{b_ms:g}_edge_b.yaml"
    schedule = load(path)  # under the first --budget target's folder
    assert schedule.budget["on"] == "edge_a" and schedule.budget["value"] == pytest.approx(a_ms)
    assert schedule.budget["also"][0]["on"] == "edge_b" and schedule.budget["also"][0]["value"] == pytest.approx(b_ms)
    ratio_a = schedule.predicted["value"] / a_ms
    ratio_b = schedule.predicted["also"]["edge_b:latency_ms"]["value"] / b_ms
    assert ratio_b == pytest.approx(1.0, abs=0.1) and ratio_a < ratio_b  # the worst budget is the constraint
    assert schedule.predicted["also"]["edge_b:latency_ms"]["value"] == pytest.approx(cost.cost(schedule.counts()))
    again = load(schedule.save(path.with_name("copy.yaml")))
    assert again.budget == schedule.budget and again.predicted == schedule.predicted
    assert again.counts() == schedule.counts()


@pytest.mark.parametrize("text, needle", [
    ("edge_a:latency=5", "expected TARGET:latency-ms=X"),
    ("latency-ms=5", "expected TARGET:latency-ms=X"),
    ("edge_a:latency-ms=-1", "expected TARGET:latency-ms=X"),
    ("edge_a:latency-ms=fast", "expected TARGET:latency-ms=X"),
    ("../x:latency-ms=5", "expected TARGET:latency-ms=X"),
    ("no_such_board:latency-ms=5", "unknown target"),
])
def test_wrong_budget_string_is_one_line_exit_2(text, needle, two_targets, capsys):
    assert main(["optimize", *MODEL, "--budget", text, *SEARCH, "--out", str(two_targets)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(two_targets.rglob("*.yaml"))


def test_budget_mixes_refused(two_targets, capsys):
    base = ["optimize", *MODEL, *SEARCH, "--out", str(two_targets)]
    assert main(base + ["--target", "edge_a", "--budget", "edge_b:latency-ms=5"]) == 2
    assert "each --budget names its own target" in capsys.readouterr().err
    assert main(base + ["--target", "edge_a", "--flops-ratio", "0.6", "--budget", "edge_b:latency-ms=5"]) == 2
    assert "cannot be combined" in capsys.readouterr().err
    assert main(base + ["--budget", "edge_a:latency-ms=5", "--budget", "edge_a:latency-ms=6"]) == 2
    assert "given twice" in capsys.readouterr().err
