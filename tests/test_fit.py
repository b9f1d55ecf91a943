"""Cost-model fit from a real (quick) profile of a small timm ViT on this CPU."""
import json

import pytest
import torch
from test_profile import MODEL, quick_targets  # noqa: F401 - fixture

from hwsearch.cli import main
from hwsearch.cost import MeasuredCost
from hwsearch.cost.fit import load_costmodel
from hwsearch.errors import HwsearchError
from hwsearch.search.rates import RateSchedule


@pytest.fixture
def costmodel(quick_targets, tmp_path):  # noqa: F811
    out = tmp_path / "results"
    assert main(["profile", "--target", "cpu_onnxruntime", *MODEL, "--whole-models", "4", "--out", str(out),
                 "--no-progress"]) == 0
    assert main(["fit", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out", str(out)]) == 0
    return out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "costmodel.json"


def test_costmodel_json_round_trip_and_covers_every_count(costmodel):
    data = load_costmodel(costmodel)
    assert json.loads(json.dumps(data)) == data  # plain JSON, no pickle
    assert set(data["quantities"]) == {"latency"}  # no power meter on this CPU: no energy model
    latency = data["quantities"]["latency"]
    for part in ("attn", "mlp", "head"):
        p = latency["parts"][part]
        assert (p["low"], p["high"]) == (2, 17) and len(p["table"]) == 16
    assert latency["correction"]["models"] == 4 and len(data["rows_sha256"]) == 64
    cost = MeasuredCost(data)
    dense = [(17, 17)] * 12
    assert cost.cost(dense) > cost.cost([(17, 17)] + [(9, 5)] * 11) > 0
    with pytest.raises(HwsearchError, match="covers attn at 2..17"):
        cost.lookup("attn", 30)


def test_expected_cost_gradients(costmodel):
    cost = MeasuredCost(load_costmodel(costmodel))
    rates = RateSchedule(12, 17, 1, granularity=4)
    keeps = rates()
    cost.expected_cost(keeps).backward()
    assert all(ddp.logits.grad is not None and ddp.logits.grad.abs().sum() > 0 for ddp in rates.merge)
    # numerical check of the differentiable expectation (float64 finite differences)
    cands = rates.merge[0].candidates.double()
    logits = torch.randn(len(cands), dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda z: cost.expected_mlp(z.softmax(-1), cands, 17.0), (logits,))
    n = torch.tensor(7.3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda v: cost.lookup("attn", v), (n,))


def test_corrupt_costmodel_is_one_error(tmp_path):
    bad = tmp_path / "costmodel.json"
    bad.write_text('{"format": 2, "quantities": {')
    with pytest.raises(HwsearchError, match="corrupt cost model"):
        load_costmodel(bad)
    with pytest.raises(HwsearchError, match="cost model not found"):
        load_costmodel(tmp_path / "none.json")


def test_fit_measures_whole_models_for_accuracy(costmodel, capsys):
    out = costmodel.parent.parent.parent
    assert main(["fit", "--target", "cpu_onnxruntime", *MODEL, "--measure", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy on 6 whole models measured now" in printed and "Spearman" in printed
    data = load_costmodel(costmodel)
    latency = data["quantities"]["latency"]
    acc = latency["accuracy"]
    assert acc["models"] == 6 and len(acc["pairs_ms"]) == 6 and -1 <= acc["spearman"] <= 1
    assert 0 <= acc["within_5pct"] <= acc["within_10pct"] <= 1 and latency["correction"]["models"] == 6
    png = costmodel.parent / "report" / "costmodel_scatter.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_fit_without_profile(tmp_path, capsys):
    assert main(["fit", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out",
                 str(tmp_path)]) == 2
    assert "profile not found" in capsys.readouterr().err
