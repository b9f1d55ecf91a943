"""Export and deploy: ONNX parity for several schedules and model sizes, the CPU deploy path,
the device-bundle path for TensorRT targets (TensorRT is not installable here), bad inputs."""
import json
import tarfile

import pytest
import torch
from conftest import make_vit
from test_profile import quick_targets  # noqa: F401 - fixture

from hwsearch.cli import main
from hwsearch.deploy import device as device_module
from hwsearch.deploy.device import may_measure, this_device
from hwsearch.deploy.onnx import DYNAMIC_OPS, batches, export_onnx
from hwsearch.deploy.tensorrt import tensorrt_available
from hwsearch.model.vit import CompressedViT, apply_schedule
from hwsearch.schedule import Schedule
from hwsearch.targets import load_target

SCHEDULES = {  # for 17 tokens (deit_tiny 64 px) and 37 tokens (deit_small 96 px), 4 and 3 blocks
    "deit_tiny": [[(17, 17), (13, 11), (11, 9), (6, 5)], [(17, 17), (17, 9), (9, 9), (9, 3)],
                  [(17, 14), (14, 14), (10, 7), (7, 7)]],
    "deit_small": [[(37, 37), (30, 25), (20, 12)], [(37, 29), (29, 29), (29, 10)], [(37, 37), (37, 21), (14, 2)]],
}


SIMILARITY = {  # similarity merging removes at most the A half per block
    "deit_tiny": [[(17, 17), (17, 11), (11, 9), (6, 5)], [(17, 17), (13, 9), (9, 9), (9, 5)],
                  [(17, 9), (9, 5), (5, 3), (3, 2)]],  # every A token merged: no empty gathers
    "deit_small": [[(37, 37), (37, 25), (20, 12)], [(37, 29), (29, 29), (29, 15)]],
}


@pytest.mark.parametrize("merging", ["rank", "similarity"])
@pytest.mark.parametrize("key", sorted(SCHEDULES))
def test_onnx_parity_for_three_schedules(key, merging, tmp_path):
    vit = make_vit(key)
    size = vit.patch_embed.img_size[0]
    images = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(1))
    for i, counts in enumerate(SCHEDULES[key] if merging == "rank" else SIMILARITY[key]):
        model = apply_schedule(vit, counts, merging)
        report = export_onnx(model, tmp_path / f"{key}{i}.onnx", batch=2, images=images)
        assert report.max_abs_diff <= 1e-3, (key, counts, report.max_abs_diff)
        assert report.parity_images == 5 and report.nodes > 0 and report.opset == 17
        assert not report.dynamic_ops and not set(report.op_types) & DYNAMIC_OPS
        assert "TopK" in report.op_types  # ranking exports as TopK (+ Gather), static shapes


def test_batches_pad_the_last_chunk():
    x = torch.arange(5.0).view(5, 1)
    chunks = batches(x, 2)
    assert [real for _, real in chunks] == [2, 2, 1] and chunks[-1][0].tolist() == [[4.0], [4.0]]


def _schedule(tmp_path, budget=None):
    vit = make_vit("deit_tiny", depth=12)
    model = CompressedViT(vit)
    counts = [(17, 17)] + [(15, 13), (13, 11), (11, 9)] + [(9, 9)] * 8
    s = Schedule.from_counts("deit_tiny_patch16_224", 64, model.num_tokens, model.num_prefix, counts,
                             budget=budget or {}, provenance={"target": "cpu_onnxruntime"})
    return s.save(tmp_path / "sched.yaml")


@pytest.mark.timing
def test_deploy_on_this_cpu_writes_onnx_optimized_graph_and_deploy_json(quick_targets, tmp_path, capsys):  # noqa: F811
    path = _schedule(tmp_path, {"kind": "latency_ms", "value": 50.0, "target": 50.0})
    out = tmp_path / "engines"
    assert main(["deploy", str(path), "--target", "cpu_onnxruntime", "--out-dir", str(out),
                 "--parity-images", "4"]) == 0
    printed = capsys.readouterr().out
    assert "ONNX Runtime vs PyTorch on 4 held-out images" in printed and "x budget" in printed
    info = json.loads((out / "sched.deploy.json").read_text())
    assert info["export"]["max_abs_diff"] <= 1e-3 and (out / "sched.onnx").is_file()
    assert (out / "sched.ort.onnx").is_file()
    measured = info["measured"]
    assert measured["compressed"]["median_ms"] > 0 and measured["dense"]["median_ms"] > 0
    assert measured["budget_ms"] == 50.0
    assert info["measured_on"] == this_device("cpu") and f"[measured on {this_device('cpu')}]" in printed


JETSON_MODELS = {  # /proc/device-tree/model as the boards write it (NUL-terminated)
    "agx_orin": b"NVIDIA Jetson AGX Orin Developer Kit\x00",
    "orin_nano": b"NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00",
}


def test_deploy_measures_only_on_the_device_its_target_names(tmp_path, monkeypatch):
    """Pure logic (no GPU or board here): the device's name against the target's device_name, --here."""
    board = tmp_path / "model"
    monkeypatch.setattr(device_module, "BOARD_MODEL", board)
    assert this_device("jetson").startswith("unknown")
    assert this_device("cuda") == "unknown (no CUDA device)" or torch.cuda.is_available()
    board.write_bytes(JETSON_MODELS["agx_orin"])
    agx = this_device("jetson")
    assert agx == "NVIDIA Jetson AGX Orin Developer Kit"
    assert may_measure(load_target("jetson_orin"), agx, here=False)[0]
    assert may_measure(load_target("jetson_orin_b1"), agx, here=False)[0]
    nano, why = may_measure(load_target("jetson_orin_nano"), agx, here=False)
    assert not nano and "not a device named like 'Orin Nano'" in why and "--here" in why
    board.write_bytes(JETSON_MODELS["orin_nano"])
    assert may_measure(load_target("jetson_orin_nano"), this_device("jetson"), here=False)[0]
    assert not may_measure(load_target("jetson_orin"), this_device("jetson"), here=False)[0]
    a100 = "NVIDIA A100-SXM4-80GB"
    assert not may_measure(load_target("h100_trt"), a100, here=False)[0]
    measure, why = may_measure(load_target("h100_trt"), a100, here=True)
    assert measure and "--here: measured on NVIDIA A100-SXM4-80GB, reported for h100_trt" == why
    assert may_measure(load_target("h100_torch"), "NVIDIA H100 80GB HBM3", here=False)[0]
    assert may_measure(load_target("cpu_onnxruntime"), "any", here=False)[0]


def test_deploy_for_another_device_makes_a_bundle_and_says_so(tmp_path, capsys):
    path = _schedule(tmp_path)
    out = tmp_path / "engines"
    assert main(["deploy", str(path), "--target", "h100_torch", "--out-dir", str(out), "--parity-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"this is {this_device('cuda')}, not a device named like 'H100'" in printed
    info = json.loads((out / "sched.deploy.json").read_text())
    assert "measured" not in info and "measured_on" not in info and info["device_bundle"]


@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed: the engine path runs instead")
def test_deploy_tensorrt_target_without_tensorrt_exports_plus_bundle(tmp_path, capsys):
    path = _schedule(tmp_path)
    out = tmp_path / "engines"
    assert main(["deploy", str(path), "--target", "jetson_orin", "--out-dir", str(out), "--parity-images", "2"]) == 0
    printed = capsys.readouterr().out
    assert "TensorRT is not installed on this host: exported ONNX only" in printed
    info = json.loads((out / "sched.deploy.json").read_text())
    assert info["engine"] is None and info["backend"] == "tensorrt"
    with tarfile.open(info["device_bundle"]) as tar:
        names = tar.getnames()
    assert "bundle/manifest.json" in names and "profilers/engines.py" in names
    assert any(n.endswith(".fp16.onnx") for n in names)  # fp16 graph for strongly-typed TensorRT


@pytest.mark.skipif(not tensorrt_available(), reason="TensorRT is not installed on this host (PyPI has only "
                                                     "placeholder packages); the engine path is unverified here")
def test_deploy_builds_a_tensorrt_engine(tmp_path):
    path = _schedule(tmp_path)
    assert main(["deploy", str(path), "--target", "h100_trt", "--out-dir", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "sched.engine").is_file()


def test_deploy_bad_inputs_are_one_line_errors(tmp_path, capsys):
    path = _schedule(tmp_path)
    assert main(["export", str(path), "--model", "deit_small_patch16_224"]) == 2
    assert "is a schedule for deit_tiny_patch16_224" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["export", str(path), "--out-dir", str(tmp_path / "file")]) == 2
    assert "is an existing file" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("blocks: [[1, 2]\n")
    assert main(["deploy", str(bad), "--target", "cpu_onnxruntime"]) == 2
    err = capsys.readouterr().err
    assert "corrupt schedule" in err and len(err.strip().splitlines()) == 1
    other = Schedule.from_counts("deit_tiny_patch16_224", 64, 50, 1, [(50, 50)] * 12)
    assert main(["export", str(other.save(tmp_path / "other.yaml"))]) == 2
    assert "does not fit this model" in capsys.readouterr().err


def test_export_only(tmp_path, capsys):
    path = _schedule(tmp_path)
    assert main(["export", str(path), "--out-dir", str(tmp_path / "x"), "--parity-images", "2", "--batch", "2"]) == 0
    assert "max abs diff" in capsys.readouterr().out and (tmp_path / "x" / "sched.onnx").is_file()


def test_parity_allows_selection_flips_no_larger_than_pytorchs_own():
    """Over the bound, an export passes only when it is no further from PyTorch than PyTorch is from
    itself under 1e-6 input noise (token selections flip); a wrong graph is further off."""
    from hwsearch.deploy.onnx import ExportReport

    def report(max_abs, cosine, noise):
        return ExportReport("m.onnx", 17, 1, 10, {}, [], max_abs, 16, cosine, None, noise)

    assert report(1e-5, 1.0, None).agrees
    assert not report(0.3, 0.9990, None).agrees
    assert report(0.37, 0.99951, 0.99923).agrees  # measured at 518 px (ONNX 0.99951, noise 0.99923)
    assert not report(0.9, 0.95, 0.99923).agrees
