"""Locks: a results folder has one writer (a second profile/fit exits 2 naming the holder's PID), timing
on this host waits for the running measurement, and a lock left by a dead process is taken over."""
import subprocess
import sys
import time

import pytest
from conftest import recorded_results
from test_profile import MODEL, quick_targets  # noqa: F401 - fixture

from hwsearch.cli import main
from hwsearch.locks import file_lock, timing_lock

HOLD = ("import sys, time\nfrom pathlib import Path\nfrom hwsearch.locks import file_lock\n"
        "with file_lock(Path(sys.argv[1]), 'test', wait=False):\n"
        "    print('held', flush=True)\n    time.sleep(float(sys.argv[2]))\n")


def hold(path, seconds):
    """A second process holding ``path``'s lock for ``seconds``; returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_profile_or_fit_on_a_held_results_folder_exits_2_naming_the_pid(quick_targets, tmp_path,  # noqa: F811
                                                                              capsys):
    out = recorded_results(tmp_path / "results")
    folder = out / "cpu_onnxruntime" / "deit_tiny_patch16_224"
    before = (folder / "profile.csv").read_bytes()
    holder = hold(folder / ".lock", 60)
    try:
        for argv in (["profile", "--target", "cpu_onnxruntime", *MODEL, "--out", str(out), "--no-progress"],
                     ["fit", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out", str(out)]):
            assert main(argv) == 2
            err = capsys.readouterr().err.strip()
            assert f"in use by PID {holder.pid}" in err and len(err.splitlines()) == 1, err
        assert (folder / "profile.csv").read_bytes() == before and not (folder / "costmodel.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock is taken over, saying so
    assert main(["fit", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out", str(out)]) == 0
    assert f"took over the results folder {folder} from PID {holder.pid}" in capsys.readouterr().err
    assert (folder / "costmodel.json").is_file() and (folder / ".lock").read_text() == ""  # released cleanly


def test_timing_waits_for_the_host_lock(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HWSEARCH_CACHE", str(tmp_path))
    holder = hold(tmp_path / "timing.lock", 1.5)
    started = time.perf_counter()
    with timing_lock():
        waited = time.perf_counter() - started
    holder.wait()
    assert waited > 0.5
    assert f"waiting for this host's timing lock: in use by PID {holder.pid}" in capsys.readouterr().err


def test_locks_are_reentrant_in_one_process(tmp_path):
    with file_lock(tmp_path / "x.lock", "x", wait=False), file_lock(tmp_path / "x.lock", "x", wait=False):
        pass
    with pytest.raises(Exception, match="in use by PID"):
        holder = hold(tmp_path / "y.lock", 30)
        try:
            with file_lock(tmp_path / "y.lock", "y", wait=False):
                pass
        finally:
            holder.kill()
            holder.wait()
