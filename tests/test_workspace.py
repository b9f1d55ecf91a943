"""Workspace: results paths, and when a profile or cost model is stale (on the recorded profile)."""
import json

import pytest
import yaml
from conftest import make_vit, recorded_results

from hwsearch.cost.fit import FORMAT
from hwsearch.model.vit import CompressedViT
from hwsearch.targets import load_target, targets_dir
from hwsearch.workspace import Workspace


@pytest.fixture
def workspace(tmp_path):
    out = recorded_results(tmp_path / "results")
    return Workspace(out, load_target("cpu_onnxruntime"), "deit_tiny_patch16_224")


@pytest.fixture
def tiny():
    return CompressedViT(make_vit("deit_tiny", depth=12))  # deit_tiny_patch16_224 at 64 px: the recorded model


def test_paths_live_under_target_and_model(workspace):
    assert workspace.folder.parts[-2:] == ("cpu_onnxruntime", "deit_tiny_patch16_224")
    assert workspace.schedule("flops0.6") == workspace.folder / "schedules" / "flops0.6.yaml"
    assert {p.name for p in (workspace.studies, workspace.engines, workspace.report)} == {"studies", "engines",
                                                                                        "report"}


def test_costmodel_fitted_when_missing_and_refitted_when_older_or_stale(workspace, tiny, capsys):
    data = workspace.ensure_costmodel(tiny)
    assert "(missing)" in capsys.readouterr().out and data["format"] == FORMAT
    assert workspace.ensure_costmodel(tiny) == data and "fitting" not in capsys.readouterr().out  # fresh: kept
    for change, why in (({"format": FORMAT - 1}, "older format"), ({"batch": 2}, "fitted at batch 2"),
                        ({"target_settings_hash": "other"}, "target settings changed")):
        workspace.costmodel_json.write_text(json.dumps({**data, **change}))
        assert workspace.ensure_costmodel(tiny)["batch"] == 8
        assert why in capsys.readouterr().out


def test_profile_stale_when_the_target_settings_change(workspace, tmp_path, monkeypatch):
    assert workspace.profile_stale_reason() is None
    folder = tmp_path / "targets"
    folder.mkdir()
    data = yaml.safe_load((targets_dir() / "cpu_onnxruntime.yaml").read_text())
    (folder / "cpu_onnxruntime.yaml").write_text(yaml.safe_dump({**data, "timing": {**data["timing"], "repeats": 3}}))
    monkeypatch.setenv("HWSEARCH_TARGETS", str(folder))
    assert Workspace(workspace.out, load_target("cpu_onnxruntime"), workspace.model).profile_stale_reason() is None
    (folder / "cpu_onnxruntime.yaml").write_text(yaml.safe_dump({**data, "threads": 1}))  # changes what is measured
    stale = Workspace(workspace.out, load_target("cpu_onnxruntime"), workspace.model)
    assert "other settings" in stale.profile_stale_reason()
