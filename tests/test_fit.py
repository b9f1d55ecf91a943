"""Cost-model fit from the recorded real profile of a small timm ViT (made on this CPU)."""
import json

import numpy as np
import pytest
import torch
from conftest import RECORDED, recorded_results
from test_profile import MODEL, quick_targets  # noqa: F401 - fixture

from hwsearch.cli import main
from hwsearch.cost import MeasuredCost
from hwsearch.cost.accuracy import choose_correction
from hwsearch.cost.fit import FORMAT, load_costmodel
from hwsearch.errors import HwsearchError
from hwsearch.search.rates import RateSchedule as Rates


@pytest.fixture
def costmodel(quick_targets, tmp_path):  # noqa: F811
    out = recorded_results(tmp_path / "results")
    assert main(["fit", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out", str(out)]) == 0
    return out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "costmodel.json"


def test_committed_costmodel_of_the_current_format_loads():
    data = load_costmodel(RECORDED / "costmodel.json")
    assert data["format"] == FORMAT and data["batch"] == 8
    cost = MeasuredCost(data)
    assert cost.cost([(17, 17)] + [(9, 5)] * 11) < cost.dense_cost(12)


def test_costmodel_json_round_trip_and_covers_every_count(costmodel):
    data = load_costmodel(costmodel)
    assert json.loads(json.dumps(data)) == data  # plain JSON, no pickle
    assert set(data["quantities"]) == {"latency"}  # no power meter on this CPU: no energy model
    latency = data["quantities"]["latency"]
    for part in ("attn", "mlp", "head"):
        p = latency["parts"][part]
        assert (p["low"], p["high"]) == (2, 17) and len(p["table"]) == 16
    assert latency["correction"]["models"] == 8 and len(data["rows_sha256"]) == 64
    cost = MeasuredCost(data)
    dense = [(17, 17)] * 12
    assert cost.cost(dense) > cost.cost([(17, 17)] + [(9, 5)] * 11) > 0
    with pytest.raises(HwsearchError, match="covers attn at 2..17"):
        cost.lookup("attn", 30)


def _peak(rates, counts, height):
    """Logits peaked at each block's (prune, merge) candidate."""
    with torch.no_grad():
        for j, (p, m) in enumerate(counts[1:]):
            for ddp, kept in ((rates.prune[j], p), (rates.merge[j], m)):
                ddp.logits.zero_()
                ddp.logits[(ddp.candidates == kept).nonzero()[0, 0]] = height


@pytest.mark.parametrize("merging", ["rank", "similarity"])
@pytest.mark.parametrize("step_scale", [None, 3.0])
def test_expected_cost_equals_the_schedule_cost_at_integer_counts(costmodel, merging, step_scale):
    """What the search optimizes is what the schedule will cost: at peaked distributions the
    differentiable expected cost equals cost(counts) of the integer schedule the rates give (also
    when the whole-model correction scales compression steps on their own)."""
    data = load_costmodel(costmodel)
    if step_scale is not None:
        data["quantities"]["latency"]["correction"]["step_scale"] = step_scale
    cost = MeasuredCost(data, "latency", merging)
    rates = Rates(12, 17, 1, granularity=4, merging=merging)
    for counts in ([(17, 17), (17, 13), (13, 13), (13, 13), (13, 9)] + [(9, 9)] * 7,
                   [(17, 17)] + [(13, 9), (9, 5)] + [(5, 5)] * 9, [(17, 17)] * 12):
        _peak(rates, counts, 60.0)
        keeps = rates()
        assert Rates.counts(keeps) == counts
        assert float(cost.expected_cost(keeps).detach()) == pytest.approx(cost.cost(counts), rel=1e-5)


def test_expected_cost_gradient_points_to_fewer_tokens(costmodel):
    """At integer counts, moving probability to larger kept counts raises the predicted token costs (the
    compression-step gate, which pulls towards keep-all, is tested in test_cost.py: left out here)."""
    import dataclasses

    cost = MeasuredCost(load_costmodel(costmodel))
    rates = Rates(12, 17, 1, granularity=4)
    _peak(rates, [(17, 17)] + [(13, 9)] * 11, 2.0)  # peaked, not saturated
    cost.expected_cost([dataclasses.replace(k, step_probs=None) for k in rates()]).backward()
    for ddp in rates.merge:
        centred = ddp.candidates - ddp.candidates.mean()
        assert float((ddp.logits.grad * centred).sum()) > 0
    # numerical check of the differentiable MLP expectation (float64 finite differences)
    cands = rates.merge[0].candidates.double()
    logits = torch.randn(len(cands), dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda z: cost.expected_mlp(z.softmax(-1), cands, 17.0), (logits,))
    # at an integer count the table's slope is the step to the next count
    n = torch.tensor(7.0, dtype=torch.float64, requires_grad=True)
    cost.lookup("attn", n).backward()
    assert float(n.grad) == pytest.approx(float(cost.lookup("attn", 8.0) - cost.lookup("attn", 7.0)))


def test_corrupt_costmodel_is_one_error(tmp_path):
    bad = tmp_path / "costmodel.json"
    bad.write_text('{"format": 2, "quantities": {')
    with pytest.raises(HwsearchError, match="corrupt cost model"):
        load_costmodel(bad)
    with pytest.raises(HwsearchError, match="cost model not found"):
        load_costmodel(tmp_path / "none.json")


@pytest.mark.timing
def test_fit_measures_whole_models_for_accuracy(costmodel, capsys):
    out = costmodel.parent.parent.parent
    assert main(["fit", "--target", "cpu_onnxruntime", *MODEL, "--measure", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy on 7 whole models measured here" in printed and "Spearman" in printed  # 6 and dense
    assert "whole-model correction: " in printed and "leave-one-out mean absolute error one scale" in printed
    data = load_costmodel(costmodel)
    latency = data["quantities"]["latency"]
    acc = latency["accuracy"]
    assert acc["models"] == 7 and len(acc["pairs_ms"]) == 7 and -1 <= acc["spearman"] <= 1
    assert acc["merging"] == "similarity" and acc["schedules"][-1] == [[17, 17]] * 12  # dense measured too
    assert 0 <= acc["within_5pct"] <= acc["within_10pct"] <= 1 and latency["correction"]["models"] == 7
    png = costmodel.parent / "report" / "costmodel_scatter.png"
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_compression_steps_get_a_scale_of_their_own_only_when_it_beats_the_noise():
    """Whole models whose steps cost 3x their profiled time (as measured at batch 1 here) get a step
    scale, recovered; where steps and blocks scale alike, one scale stays (the one-standard-error rule);
    where the steps add nothing, they are free."""
    rng = np.random.default_rng(0)
    blocks = rng.uniform(20.0, 60.0, 30)
    steps = rng.uniform(0.5, 6.0, 30)
    noise = rng.normal(0.0, 0.3, 30)
    correction, predicted, mae = choose_correction(blocks, steps, 2.0 + 0.9 * blocks + 2.7 * steps + noise)
    assert correction["step_scale"] == pytest.approx(2.7, abs=0.15)
    assert correction["scale"] == pytest.approx(0.9, abs=0.02)
    assert mae["step scale"] < mae["one scale"] and len(predicted) == 30
    correction, _, mae = choose_correction(blocks, steps, 2.0 + 0.9 * (blocks + steps) + noise)
    assert "step_scale" not in correction and correction["scale"] == pytest.approx(0.9, abs=0.02)
    # steps that add nothing (or less than nothing) inside whole models, as at batch 8 here: free (scale 0),
    # never a negative scale
    for extra in (0.0, -0.3):
        correction, _, mae = choose_correction(blocks, steps, 2.0 + 0.9 * blocks + extra * steps + noise)
        assert correction["step_scale"] == 0 and correction["scale"] == pytest.approx(0.9, abs=0.03)
        assert mae["steps free"] < mae["one scale"]
    data = load_costmodel(RECORDED / "costmodel.json")
    data["quantities"]["latency"]["correction"] = {"overhead": 2.0, "scale": 0.9, "step_scale": 2.7}
    cost = MeasuredCost(data)
    counts = [(17, 17)] + [(13, 9)] + [(9, 9)] * 10
    parts, step = cost.split_parts(counts)
    assert step > 0 and cost.cost(counts) == pytest.approx(2.0 + 0.9 * parts + 2.7 * step)
    assert sum(b["compress"] for b in cost.block_parts(counts)) == pytest.approx(2.7 * step)


def test_the_compression_step_model_prices_no_work_below_zero():
    """On the recorded real profile, unconstrained least squares gives the similarity step negative
    coefficients (a merge that saves time); the fitted model has none, and a merge costs more the more
    tokens it matches."""
    from hwsearch.profiling.additivity import COMPRESS_PARTS, compress_features, compress_fit
    from hwsearch.profiling.table import read_profile

    rows = [r for r in read_profile(RECORDED / "profile.csv") if r["part"] == COMPRESS_PARTS["similarity"]]
    feats = np.array([compress_features(int(r["tokens"]), int(r["prune_kept"]), int(r["merge_kept"]), "similarity")
                      for r in rows])
    unconstrained = np.linalg.lstsq(feats, np.array([float(r["median_ms"]) for r in rows]), rcond=None)[0]
    assert unconstrained.min() < 0  # what the fit used to store
    coef = compress_fit(read_profile(RECORDED / "profile.csv"), 8, merging="similarity")
    assert coef is not None and coef.min() >= 0
    merge_ms = [np.dot(coef, compress_features(p, p, p // 2, "similarity")) for p in range(3, 18)]
    assert all(b >= a for a, b in zip(merge_ms, merge_ms[1:], strict=False))


def test_a_refit_keeps_the_whole_models_the_last_fit_measure_measured(costmodel, capsys):
    """``hwsearch fit`` after ``fit --measure``: the correction is fitted again on the models measured
    then, with the new parts (it used to fall back to the profile's few whole models); a cost model of
    another model measured nothing that applies."""
    from hwsearch.schedule import random_schedules

    out = costmodel.parent.parent.parent
    data = load_costmodel(costmodel)
    cost = MeasuredCost(data, merging="similarity")
    schedules = random_schedules(17, 1, 12, 12, seed=3, start=0) + [[(17, 17)] * 12]
    measured = [2.0 + 1.2 * sum(cost.split_parts(s)) for s in schedules]  # a host 20% slower, 2 ms of overhead
    data["quantities"]["latency"]["accuracy"] = {"merging": "similarity", "schedules": [list(map(list, s))
                                                 for s in schedules], "pairs_ms": [[0.0, m] for m in measured]}
    costmodel.write_text(json.dumps(data))
    assert main(["fit", "--target", "cpu_onnxruntime", *MODEL, "--out", str(out)]) == 0
    assert "the 13 whole models measured by the last fit --measure, with this fit" in capsys.readouterr().out
    latency = load_costmodel(costmodel)["quantities"]["latency"]
    assert latency["correction"]["scale"] == pytest.approx(1.2, abs=1e-6)
    assert latency["correction"]["overhead"] == pytest.approx(2.0, abs=1e-4)
    assert latency["accuracy"]["models"] == 13 and latency["accuracy"]["mape"] < 1e-6

    data = load_costmodel(costmodel)
    data["model_hash"] = "another model"
    costmodel.write_text(json.dumps(data))
    assert main(["fit", "--target", "cpu_onnxruntime", *MODEL, "--out", str(out)]) == 0
    assert "measured by the last fit --measure" not in capsys.readouterr().out
    assert "accuracy" not in load_costmodel(costmodel)["quantities"]["latency"]


def test_fit_without_profile(tmp_path, capsys):
    assert main(["fit", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out",
                 str(tmp_path)]) == 2
    assert "profile not found" in capsys.readouterr().err


def test_fit_says_when_no_schedule_is_predicted_cheaper_than_dense(quick_targets, tmp_path, capsys):  # noqa: F811
    """A profile whose block times do not fall with the token count (noise) cannot make a cost model
    that any schedule beats: fit says so with the noise figures, optimize gives one line, not an
    inverted reachable range."""
    import csv

    out = recorded_results(tmp_path / "results")
    path = out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "profile.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows, fields = list(reader), reader.fieldnames
    for part in ("attn", "mlp"):  # flat in the token count: the largest count's time everywhere
        top = max((r for r in rows if r["part"] == part), key=lambda r: int(r["tokens"]))["median_ms"]
        for r in rows:
            if r["part"] == part:
                r["median_ms"] = top
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    assert main(["fit", "--target", "cpu_onnxruntime", *MODEL, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "cheapest schedule" in printed and "warning: no schedule is predicted cheaper than dense" in printed
    assert "row CV median" in printed
    assert main(["optimize", "--target", "cpu_onnxruntime", *MODEL, "--latency-ms", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "predicts no schedule cheaper than dense" in err and len(err.strip().splitlines()) == 1


def test_fit_counts_the_rows_the_profile_flagged(quick_targets, tmp_path, capsys):  # noqa: F811
    """Rows still above the CV bound (cv_ok false) and rows measured while throttled are counted."""
    import csv

    from hwsearch.cost.fit import describe_flags

    rows = list(csv.DictReader((RECORDED / "profile.csv").open(newline="")))
    over = sum(r["cv_ok"] == "False" for r in rows)
    out = recorded_results(tmp_path / "results")
    capsys.readouterr()
    assert main(["fit", "--target", "cpu_onnxruntime", *MODEL, "--out", str(out)]) == 0
    assert f"note: {over} of {len(rows)} profile rows stayed above the target's CV bound" in capsys.readouterr().out
    hot = [{"part": "attn", "cv_ok": "True", "throttle": "SM clock 1980->1500 MHz, reasons 0x20"},
           {"part": "mlp", "cv_ok": "True", "throttle": ""}]
    assert describe_flags(hot) == ["note: 1 of 2 profile rows were measured while the device throttled (attn 1); "
                                   "kept, their noise is in the CV errors above"]


def test_a_staircase_is_kept_only_when_it_beats_the_noise():
    """The search follows the table's slopes: on a noisy line the smooth quadratic is chosen (an
    isotonic staircase of noise would price tokens at random); a real staircase (TensorRT tiles)
    beats it by far more than the CV error's standard error and is kept."""
    import numpy as np

    from hwsearch.cost.fit import choose_regressor

    rng = np.random.default_rng(0)
    x = np.arange(2, 258, 4).astype(float)
    noisy_line = 0.012 * x * (1 + 0.12 * rng.standard_normal(len(x)))
    chosen, mae, _ = choose_regressor(x, noisy_line)
    assert chosen == "quadratic" and mae["quadratic"] > min(mae.values())  # chosen although not the lowest
    stairs = 0.5 * np.floor(x / 64) + 0.2 + 0.002 * rng.standard_normal(len(x))
    chosen, mae, _ = choose_regressor(x, stairs)
    assert chosen != "quadratic" and mae[chosen] < 0.5 * mae["quadratic"]
