"""Bad inputs: one line on stderr, exit code 2, no traceback, nothing half-written."""
import subprocess
import sys

import pytest
from test_schedule import make

from hwsearch.cli import main

TINY = ["--model", "deit_tiny_patch16_224", "--img-size", "64", "--num-images", "8", "--no-progress"]


def run(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("argv, needle", [
    (["optimize", "--flops-ratio", "0.6", "--model", "not_a_model"], "unknown model"),
    (["optimize", "--flops-ratio", "1.5"] + TINY, "not reachable"),
    (["optimize", "--flops-ratio", "0.01"] + TINY, "not reachable"),
    (["optimize", "--flops-ratio", "0.6", "--data", "/nonexistent/dir"] + TINY, "data directory not found"),
    (["optimize", "--flops-ratio", "0.6", "--target", "no_such_device"] + TINY, "unknown target"),
    (["optimize", "--flops-ratio", "0.6", "--checkpoint", "/nonexistent.pth"] + TINY, "checkpoint not found"),
    (["evaluate", "/nonexistent/schedule.yaml"], "schedule not found"),
    (["optimize", "--flops-ratio", "0.6", "--img-size", "500"], "multiple of 14"),
    (["optimize", "--flops-ratio", "0.6", "--img-size", "532"], "multiple of 14"),
    (["optimize", "--flops-ratio", "0.6", "--init-sharpness", "0"] + TINY, "must be positive"),
    (["optimize", "--flops-ratio", "0.6", "--accumulate", "0"] + TINY, "must be positive"),  # 0 is not "unset"
])
def test_user_errors_exit_2_one_line(argv, needle, capsys, tmp_path):
    code, err = run(argv + ["--out", str(tmp_path)] if argv[0] == "optimize" else argv, capsys)
    assert code == 2
    assert needle in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.rglob("*.yaml"))


def test_corrupt_schedule(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text("model: [unclosed\n")
    code, err = run(["evaluate", str(bad)], capsys)
    assert code == 2 and "corrupt schedule YAML" in err and len(err.splitlines()) == 1


def test_schedule_for_another_model(tmp_path, capsys):
    path = make().save(tmp_path / "s.yaml")
    text = path.read_text().replace("num_tokens: 17", "num_tokens: 37")
    path.write_text(text)
    code, err = run(["evaluate", str(path)], capsys)
    assert code == 2 and len(err.splitlines()) == 1


def test_checkpoint_of_another_model(tmp_path, capsys):
    import torch
    from conftest import make_vit

    torch.save(make_vit("deit_tiny").state_dict(), tmp_path / "w.pth")  # 4 blocks, not 12
    code, err = run(["optimize", "--flops-ratio", "0.6", "--checkpoint", str(tmp_path / "w.pth"), *TINY,
                     "--out", str(tmp_path)], capsys)
    assert code == 2 and "missing keys" in err and len(err) < 300


def test_console_script_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "hwsearch.cli", "optimize", "--flops-ratio", "2", *TINY,
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("hwsearch: error:") and "Traceback" not in proc.stderr
