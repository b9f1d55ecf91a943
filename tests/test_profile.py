"""hwsearch profile end to end on this CPU: a small real timm ViT, a quick timing protocol."""
import csv
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
import yaml

from hwsearch.cli import main
from hwsearch.model.build import create_vit
from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.export import build_bundle
from hwsearch.targets import load_target, targets_dir
from profilers.runner import run_bundle

REPO = Path(__file__).resolve().parent.parent
MODEL = ["--model", "deit_tiny_patch16_224", "--img-size", "64"]  # 17 tokens, 12 blocks
QUICK = {"warmup_s": 0.02, "repeat_s": 0.01, "repeats": 3, "max_cv": 1.0, "max_attempts": 1}


@pytest.fixture
def quick_targets(tmp_path, monkeypatch):
    """Copies of the shipped targets with a quick timing protocol (same schema, same backends)."""
    folder = tmp_path / "targets"
    folder.mkdir()
    for path in targets_dir().glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        data["timing"] = QUICK
        (folder / path.name).write_text(yaml.safe_dump(data))
    monkeypatch.setenv("HWSEARCH_TARGETS", str(folder))
    return folder


@pytest.mark.timing
def test_local_profile_writes_csv_meta_and_report(quick_targets, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["profile", "--target", "cpu_onnxruntime", *MODEL, "--whole-models", "3", "--out", str(out),
                 "--no-progress"]) == 0
    folder = out / "cpu_onnxruntime" / "deit_tiny_patch16_224"
    rows = list(csv.DictReader((folder / "profile.csv").open()))
    parts = {r["part"] for r in rows}
    assert parts == {"embed", "attn", "mlp", "block", "compress", "compress_similarity", "head", "model"}
    assert {int(r["tokens"]) for r in rows if r["part"] == "attn"} == {17, 13, 9, 5, 2}
    for r in rows:
        assert float(r["p10_ms"]) <= float(r["median_ms"]) <= float(r["p90_ms"]) and float(r["cv"]) >= 0
        assert r["energy_mj"] == ""  # no power meter on this CPU
        assert float(r["drift"]) > 0 and float(r["reference_ms"]) > 0
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["additivity"]["batch8"]["whole_models"] == 3 and meta["device"]["backend"] == "onnxruntime"
    assert not (folder / ".profile-work").exists()
    assert main(["report", "--profile", str(folder / "profile.csv")]) == 0
    assert (folder / "report" / "profile.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.timing
def test_interrupted_run_resumes_without_remeasuring(quick_targets, tmp_path):
    target = load_target("cpu_onnxruntime")
    model = CompressedViT(create_vit("deit_tiny_patch16_224", img_size=64))
    bundle = build_bundle(tmp_path / "b", model, "deit_tiny_patch16_224", target, [2], whole_models=2)
    out = tmp_path / "m.csv"
    calls = []

    def interrupt(i, total, name):  # Ctrl-C while the third chunk is being measured
        calls.append(i)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bundle(bundle.root, out, progress=interrupt, chunk=8)
    first = list(csv.DictReader(out.open()))
    assert len(first) == 16
    resumed_at = []
    run_bundle(bundle.root, out, progress=lambda i, t, name: resumed_at.append(i), chunk=8)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(bundle.graphs) and len({r["graph_id"] for r in rows}) == len(rows)
    assert rows[:16] == first  # nothing already done was measured again
    assert resumed_at[0] == 16


def test_bundle_runs_in_a_fresh_venv_and_imports(quick_targets, tmp_path, capsys):
    """cpu_onnxruntime bundle -> venv with only numpy, pyyaml, onnxruntime -> --import; the same rows
    are no jetson_orin profile, and rows run with another backend are no profile of the target."""
    tar = tmp_path / "b.tar.gz"
    assert main(["profile", "--target", "cpu_onnxruntime", *MODEL, "--whole-models", "2", "--bundle", str(tar)]) == 0
    unpack = tmp_path / "unpacked"
    with tarfile.open(tar) as t:
        t.extractall(unpack, filter="data")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    pip = subprocess.run([py, "-m", "pip", "install", "-q", "numpy", "pyyaml", "onnxruntime"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        pytest.skip(f"could not install numpy/pyyaml/onnxruntime into a fresh venv: {pip.stderr[-300:]}")
    run = subprocess.run([py, "-m", "profilers", "run", "bundle", "--timing", "repeats=4"], cwd=unpack,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    csv_path = unpack / "bundle" / "measurements.csv"
    out = tmp_path / "results"
    assert main(["profile", "--target", "cpu_onnxruntime", *MODEL, "--import", str(csv_path), "--out", str(out)]) == 0
    folder = out / "cpu_onnxruntime" / "deit_tiny_patch16_224"
    rows = list(csv.DictReader((folder / "profile.csv").open()))
    assert rows and {(r["target"], r["backend"]) for r in rows} == {("cpu_onnxruntime", "onnxruntime")}
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["device"]["timing"]["repeats"] == 4  # the protocol actually used, override included
    capsys.readouterr()
    assert main(["profile", "--target", "jetson_orin", *MODEL, "--import", str(csv_path), "--out", str(out)]) == 2
    assert "not jetson_orin" in capsys.readouterr().err
    # the same rows relabelled as jetson_orin (a bundle of jetson_orin run with --backend onnxruntime)
    relabelled = tmp_path / "relabelled.csv"
    relabelled.write_text(csv_path.read_text().replace(",cpu_onnxruntime,", ",jetson_orin,"))
    assert main(["profile", "--target", "jetson_orin", *MODEL, "--import", str(relabelled), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "measured with backend onnxruntime" in err and len(err.splitlines()) == 1
    assert not (out / "jetson_orin").exists() or not list((out / "jetson_orin").rglob("profile.csv"))


def test_profilers_import_without_torch_timm_optuna_sklearn(tmp_path):
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'timm', 'optuna', 'sklearn', 'hwsearch'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import profilers, profilers.runner, profilers.backends.ort, profilers.meters.tegrastats\n"
        "import profilers.meters.rapl, profilers.backends.tensorrt_backend, profilers.__main__\n"
        "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@pytest.mark.parametrize("case", ["unknown_target", "malformed_target", "other_model", "missing_columns"])
def test_bad_inputs_exit_2_nothing_written(case, quick_targets, tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["profile", "--target", "cpu_onnxruntime", *MODEL, "--out", str(out)]
    if case == "unknown_target":
        argv[2] = "no_such_board"
    elif case == "malformed_target":
        (quick_targets / "cpu_onnxruntime.yaml").write_text("name: cpu_onnxruntime\nbackend: [\n")
    else:
        bad = tmp_path / "m.csv"
        header = "model,model_hash,target,part,tokens,batch,median_ms,p10_ms,p90_ms,cv\n"
        if case == "other_model":
            bad.write_text(header + "vit_x,0123456789abcdef,cpu_onnxruntime,attn,17,8,1.0,0.9,1.1,0.01\n")
        else:
            bad.write_text("model,target,part\nx,cpu_onnxruntime,attn\n")
        argv += ["--import", str(bad)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("hwsearch: error:")
    assert not out.exists() or not list(out.rglob("profile.csv"))
    shutil.rmtree(out, ignore_errors=True)


def _edit_recorded(rows, case):
    """The recorded profile's rows made partial or malformed the way an interrupted or damaged device run is."""
    if case == "no_embed":
        return [r for r in rows if r["part"] != "embed"]
    if case == "attn_missing_a_count":
        return [r for r in rows if not (r["part"] == "attn" and r["tokens"] == "9")]
    if case == "few_compress_samples":
        kept = [r for r in rows if r["part"] == "compress"][:5]
        return [r for r in rows if r["part"] != "compress"] + kept
    if case in ("nan", "inf", "zero", "negative"):
        value = {"nan": "nan", "inf": "inf", "zero": "0", "negative": "-1.5"}[case]
        return [dict(r, median_ms=value) if i == 3 else r for i, r in enumerate(rows)]
    if case == "duplicate":
        return rows + [rows[4]]
    raise AssertionError(case)


IMPORT_CASES = {"no_embed": "no embed", "attn_missing_a_count": "no attn at 9 tokens",
                "few_compress_samples": "compression samples (5 of the 6", "nan": "not a positive number",
                "inf": "not a positive number", "zero": "not a positive number",
                "negative": "not a positive number", "duplicate": "again (duplicate rows",
                "truncated": "(a truncated or corrupt file?)", "corrupt_host_json": "not a readable JSON object"}


@pytest.mark.parametrize("case", sorted(IMPORT_CASES))
def test_partial_or_malformed_import_is_one_error(case, quick_targets, tmp_path, capsys):
    """The recorded real profile (a complete one: it imports) with one defect: one line naming it, exit 2,
    no profile written."""
    from conftest import RECORDED

    good = tmp_path / "good.csv"
    shutil.copy(RECORDED / "profile.csv", good)
    out = tmp_path / "results"
    argv = ["profile", "--target", "cpu_onnxruntime", *MODEL, "--out", str(out), "--import"]
    assert main([*argv, str(good)]) == 0
    shutil.rmtree(out)
    bad = tmp_path / "measurements.csv"
    if case == "truncated":  # the last line cut in the middle, as a copy interrupted by a full disk
        text = good.read_text()
        bad.write_text(text[:text.rstrip("\n").rfind("\n") + 40])
    elif case == "corrupt_host_json":  # the rows are fine; the device run's host description beside them is cut
        shutil.copy(good, bad)
        bad.with_suffix(".host.json").write_text('{"machine": "aarch64", "cpu')
    else:
        rows = list(csv.DictReader(good.open()))
        with bad.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(_edit_recorded(rows, case))
    capsys.readouterr()
    assert main([*argv, str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and IMPORT_CASES[case] in err, err
    assert not list(out.rglob("profile.csv"))


def test_empty_host_description_imports(quick_targets, tmp_path):
    """A device run's host description that is an empty JSON object is valid (nothing known), not corrupt."""
    from conftest import RECORDED

    run = tmp_path / "measurements.csv"
    shutil.copy(RECORDED / "profile.csv", run)
    run.with_suffix(".host.json").write_text("{}")
    out = tmp_path / "results"
    assert main(["profile", "--target", "cpu_onnxruntime", *MODEL, "--out", str(out), "--import", str(run)]) == 0
    assert len(list(out.rglob("profile.csv"))) == 1


def test_onnxruntime_backend_flushes_denormals(tmp_path):
    """CPU time on denormal floats depends on the data: the profile's sessions flush them to zero."""
    from torch import nn

    from hwsearch.profiling.export import export_onnx_graph
    from profilers.backends import create_backend
    from profilers.bundle import Graph

    export_onnx_graph(nn.Linear(4, 4), (torch.zeros(1, 4),), tmp_path / "g.onnx", ["x"])
    backend = create_backend("onnxruntime", {"name": "t", "precision": "fp32", "threads": 1}, tmp_path)
    run, _ = backend.prepare(Graph("g", "mlp", 4, 1, "g.onnx", {"x": [1, 4]}))
    run()
    assert backend.session.get_session_options().get_session_config_entry("session.set_denormal_as_zero") == "1"


@pytest.mark.parametrize("case", ["climbs_out", "absolute", "symlink_out", "fp16_climbs_out", "bad_id"])
def test_bundle_manifest_paths_stay_inside_the_bundle(case, tmp_path):
    """The device side checks the manifest before it reads or writes anything: file names inside the
    bundle only, graph ids plain (engines are named after them)."""
    from profilers.bundle import MANIFEST, BundleError, load_bundle

    root = tmp_path / "bundle"
    root.mkdir()
    (root / "g.onnx").write_bytes(b"onnx")
    (tmp_path / "outside.onnx").write_bytes(b"onnx")
    graph = {"id": "attn_17_b8", "part": "attn", "tokens": 17, "batch": 8, "onnx": "g.onnx", "inputs": {}}

    def manifest(**change):
        (root / MANIFEST).write_text(json.dumps({"format": 1, "model": "m", "model_hash": "h", "target": {},
                                                 "graphs": [{**graph, **change}]}))

    manifest()
    assert load_bundle(root).graphs[0].onnx == "g.onnx"
    if case == "symlink_out":
        (root / "link.onnx").symlink_to(tmp_path / "outside.onnx")
    change = {"climbs_out": {"onnx": "../outside.onnx"}, "absolute": {"onnx": str(tmp_path / "outside.onnx")},
              "symlink_out": {"onnx": "link.onnx"}, "fp16_climbs_out": {"onnx_fp16": "../../etc/passwd"},
              "bad_id": {"id": "../../x"}}[case]
    manifest(**change)
    with pytest.raises(BundleError, match="outside the bundle|not a file inside|not a plain name"):
        load_bundle(root)
    run = subprocess.run([sys.executable, "-m", "profilers", "run", str(root)], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
