"""Optuna studies of sampled schedules: exact parameterization, the CLI, workers, kill and resume.

The model is a real timm DeiT-Tiny at 64 px (random weights: quality is top-1 agreement with the
dense model); the cost is GMACs so no profile is needed (the latency path is shared with optimize).
"""
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import time

import optuna
import pytest

from hwsearch.cli import main
from hwsearch.report.compare import hypervolume
from hwsearch.schedule import Schedule, load_schedule
from hwsearch.search import sampled
from hwsearch.search import study as study_storage
from hwsearch.search.sampled import Space

MODEL = ["--model", "deit_tiny_patch16_224", "--img-size", "64"]
QUICK = ["--num-images", "24", "--eval-images", "4", "--no-progress", "--flops-ratio", "0.6"]


def test_space_round_trips_any_schedule_and_samples_valid_ones():
    space = Space(num_tokens=197, num_prefix=1, depth=12, compress_from=1)
    rng = random.Random(0)
    for _ in range(200):
        counts, cur = [(197, 197)], 197
        for _ in range(11):
            p = rng.randint(2, cur)
            m = rng.randint(2, p)
            counts.append((p, m))
            cur = m
        assert space.counts(space.params(counts)) == counts
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        counts = space.suggest(study.ask())
        Schedule.from_counts("m", 224, 197, 1, counts)  # validates: monotone, within range


def test_budget_space_keeps_similarity_merging_within_its_half():
    """Budget-space trials with similarity merging never merge more than a block's A half (deploy mode
    would silently keep more tokens than the trial's counts and predicted cost say); the deploy-mode
    model refuses such counts with one error."""
    from conftest import make_vit

    from hwsearch.cost import FlopsCost
    from hwsearch.errors import HwsearchError
    from hwsearch.model.vit import apply_schedule
    from hwsearch.schedule import min_merge_kept

    vit = make_vit("deit_tiny")  # 17 tokens, 4 blocks
    cost = FlopsCost.from_model(vit, "similarity")
    space = sampled.BudgetSpace(17, 1, 4, 0, cost, 0.3 * cost.dense_cost(4), "similarity")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(40):
        counts = space.suggest(study.ask())
        assert all(m >= min_merge_kept(p, 1, "similarity") for p, m in counts)
        apply_schedule(vit, counts, "similarity")
    with pytest.raises(HwsearchError, match="block 1: similarity merging keeps at least 9 of 17 tokens"):
        apply_schedule(vit, [(17, 17), (17, 5), (5, 5), (5, 5)], "similarity")


def test_hypervolume_of_known_points():
    # (quality, cost) with reference (0, 10): swept by cost, 0.5 x (4 - 2) + 0.8 x (10 - 4) = 5.8
    assert hypervolume([(0.5, 2.0), (0.8, 4.0)], (0.0, 10.0)) == pytest.approx(0.5 * 2 + 0.8 * 6)
    assert hypervolume([(0.5, 2.0), (0.4, 3.0)], (0.0, 10.0)) == pytest.approx(0.5 * 8)  # dominated point adds 0
    assert hypervolume([], (0.0, 10.0)) == 0.0


def _trials(path, name):
    storage = study_storage.journal_storage(str(path))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def test_sample_then_compare_puts_gradient_and_baselines_in_one_study(tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["sample", "--target", "cpu_onnxruntime", *MODEL, *QUICK, "--trials", "10", "--seed", "0",
                 "--out", str(out)]) == 0
    folder = out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "studies"
    trials = _trials(folder / "flops_ratio0.6.journal", "flops_ratio0.6")
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 10
    origins = [t.user_attrs["origin"] for t in complete]
    assert {"gradient", "baseline:tome", "baseline:evit", "baseline:uniform", "sampler:tpe"} <= set(origins)
    gradient = next(t for t in complete if t.user_attrs["origin"] == "gradient")
    assert gradient.user_attrs["search_seconds"] > 0 and "budget" in gradient.constraints
    assert main(["compare", "--target", "cpu_onnxruntime", "--model", "deit_tiny_patch16_224", "--out",
                 str(out)]) == 0
    printed = capsys.readouterr().out
    assert "hypervolume" in printed and "gradient" in printed and "reach gradient" in printed
    report = folder / "flops_ratio0.6"
    assert (report / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert (report / "history.png").read_bytes()[:4] == b"\x89PNG"
    index = (report / "index.html").read_text()
    assert "<img" in index
    # a schedule and a page per reference schedule and Pareto-front trial, linked from the study page
    pages = sorted((report / "report").glob("*.html"))
    assert {"gradient", "baseline-tome", "baseline-evit", "baseline-uniform"} <= \
        {p.stem.split("_", 1)[1] for p in pages}
    for page in pages:
        assert f'href="report/{page.name}"' in index
        assert load_schedule(report / "schedules" / f"{page.stem}.yaml").model == "deit_tiny_patch16_224"
    data = json.loads((report / "compare.json").read_text())
    assert data["summary"]["gradient"]["trials"] == 1 and len(data["trials"]) == 10
    # rerun with a larger cap continues the same study (no second gradient search, no duplicate baselines)
    assert main(["sample", "--target", "cpu_onnxruntime", *MODEL, *QUICK, "--trials", "13", "--seed", "1",
                 "--out", str(out)]) == 0
    complete = [t for t in _trials(folder / "flops_ratio0.6.journal", "flops_ratio0.6")
                if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 13 and [t.user_attrs["origin"] for t in complete].count("gradient") == 1


def _worker(out, trials, study, extra=()):
    return subprocess.Popen([sys.executable, "-m", "hwsearch", "sample", "--target", "cpu_onnxruntime", *MODEL,
                             *QUICK, "--trials", str(trials), "--study", study, "--gradient", "none",
                             "--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_two_workers_share_one_journal_study_with_a_global_cap(tmp_path):
    out = tmp_path / "results"
    workers = [_worker(out, 16, "shared", ["--seed", str(i), "--sampler", "random"]) for i in range(2)]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs
    trials = _trials(out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "studies" / "shared.journal", "shared")
    states = [t.state for t in trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 16
    assert optuna.trial.TrialState.RUNNING not in states
    assert len({t.number for t in trials}) == len(trials)
    # which worker ran how many trials is a race between two cold processes: only the global cap is asserted,
    # and that every complete trial names the worker that ran it
    assert all(t.user_attrs.get("worker") for t in trials if t.state == optuna.trial.TrialState.COMPLETE)


def test_dead_worker_trial_is_failed_and_retried(tmp_path):
    storage = study_storage.journal_storage(str(tmp_path / "s.journal"))
    study = optuna.create_study(study_name="s", storage=storage)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = study.ask()
    trial.suggest_float("prune_1", 0, 0.5)
    trial.set_user_attr("worker", f"{sampled.socket.gethostname()}:{dead.pid}")
    trial.set_user_attr("origin", "sampler:tpe")
    assert study_storage.fail_dead_local_trials(study) == [trial.number]
    trials = study.get_trials()
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert trials[1].state == optuna.trial.TrialState.WAITING and trials[1].user_attrs["retry_of"] == trial.number
    assert trials[1].params == trials[0].params or trials[1].system_attrs["fixed_params"] == trials[0].params


def test_a_trial_killed_before_its_worker_named_itself_is_failed_after_the_grace(tmp_path):
    """A RUNNING trial with no worker attribute (killed between Optuna creating it and the objective's
    first line): left alone while young (a live worker is about to name itself), failed and retried
    once it is older than the grace, so that the trial cap does not count it as running for ever."""
    study = optuna.create_study(study_name="s", storage=study_storage.journal_storage(str(tmp_path / "s.journal")))
    trial = study.ask()
    trial.set_user_attr("origin", "sampler:tpe")
    assert study_storage.fail_dead_local_trials(study) == []  # young: its worker may be alive
    assert study_storage.fail_dead_local_trials(study, orphan_after_s=0.0) == [trial.number]
    states = [t.state for t in study.get_trials()]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]


def test_retry_keeps_queued_counts_and_origin_and_two_workers_retry_once(tmp_path):
    """A budget-space trial (queued as counts, no parameters) left running by a killed worker: its retry
    keeps the counts and origin; a second worker that saw the same dead trial (before the first failed
    it) neither fails it again nor queues a second retry."""
    path = str(tmp_path / "s.journal")
    first = optuna.create_study(study_name="s", storage=study_storage.journal_storage(path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    counts = json.dumps([[17, 17], [13, 9], [9, 5], [5, 2]])
    first.enqueue_trial({}, user_attrs={"origin": "baseline:tome", "queued_counts": counts})
    trial = first.ask()
    trial.set_user_attr("worker", f"{sampled.socket.gethostname()}:{dead.pid}")
    trial.set_user_attr("quality", 0.5)
    second = optuna.load_study(study_name="s", storage=study_storage.journal_storage(path))
    seen = second.get_trials(deepcopy=False)  # the second worker's view, taken at the same moment
    second.get_trials = lambda deepcopy=False, states=None: [t for t in seen if states is None or t.state in states]
    assert study_storage.fail_dead_local_trials(first) == [trial.number]
    assert study_storage.fail_dead_local_trials(second) == []
    trials = optuna.load_study(study_name="s", storage=study_storage.journal_storage(path)).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]
    retry = trials[1].user_attrs
    assert retry == {"origin": "baseline:tome", "queued_counts": counts, "retry_of": trial.number}


def test_killed_run_resumes_the_study(tmp_path):
    out = tmp_path / "results"
    journal = out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "studies" / "resume.journal"
    first = _worker(out, 40, "resume", ["--seed", "0"])
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(0.5)
        if journal.is_file() and sum(t.state == optuna.trial.TrialState.COMPLETE
                                     for t in _trials(journal, "resume")) >= 3:
            break
    first.send_signal(signal.SIGKILL)
    first.communicate()
    before = _trials(journal, "resume")
    done_before = sum(t.state == optuna.trial.TrialState.COMPLETE for t in before)
    assert 3 <= done_before < 40
    unnamed = [t.datetime_start for t in before
               if t.state == optuna.trial.TrialState.RUNNING and "worker" not in t.user_attrs]
    if unnamed:  # killed between asking for a trial and naming itself: failed once ORPHAN_AFTER_S old, as a user sees
        age = (datetime.datetime.now() - min(unnamed)).total_seconds()
        time.sleep(max(0.0, study_storage.ORPHAN_AFTER_S - age) + 1)
    second = _worker(out, done_before + 4, "resume", ["--seed", "1"])
    log = second.communicate(timeout=600)[0]
    assert second.returncode == 0, log
    after = _trials(journal, "resume")
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in after) == done_before + 4
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in after]
    killed = [t for t in before if t.state == optuna.trial.TrialState.RUNNING]
    failed = [t for t in after if t.state == optuna.trial.TrialState.FAIL]
    assert [t.number for t in failed] == [t.number for t in killed]  # the killed trial is recorded, not lost


@pytest.mark.skipif(not os.environ.get("HWSEARCH_TEST_POSTGRES_URL"),
                    reason="PostgreSQL not available: .ci/run starts a local server and sets "
                           "HWSEARCH_TEST_POSTGRES_URL when it can (it printed why not)")
def test_postgresql_storage_two_workers():
    url = os.environ["HWSEARCH_TEST_POSTGRES_URL"]
    name = f"pg-{os.getpid()}-{int(time.time())}"
    workers = [subprocess.Popen([sys.executable, "-m", "hwsearch", "sample", "--target", "cpu_onnxruntime", *MODEL,
                                 *QUICK, "--trials", "8", "--study", name, "--gradient", "none", "--storage", url,
                                 "--sampler", "random", "--seed", str(i), "--out", "/tmp/hwsearch-pg-test"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = [w.communicate(timeout=600)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), logs
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    assert [t.state for t in trials].count(optuna.trial.TrialState.COMPLETE) == 8
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in trials]


def test_budget_space_puts_every_trial_at_the_budget():
    from conftest import make_vit

    from hwsearch.cost import FlopsCost
    from hwsearch.search.sampled import BudgetSpace

    vit = make_vit("deit_small", depth=6)
    cost = FlopsCost.from_model(vit)
    dense = cost.dense_cost(6)
    space = BudgetSpace(num_tokens=37, num_prefix=1, depth=6, compress_from=1, cost=cost, budget=0.6 * dense)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        counts = space.suggest(study.ask())
        Schedule.from_counts("m", 96, 37, 1, counts)
        assert 0.5 * dense < cost.cost(counts) <= 0.6 * dense  # at (just under) the budget, never above


def test_sample_in_budget_space_single_objective(tmp_path):
    out = tmp_path / "results"
    assert main(["sample", "--target", "cpu_onnxruntime", *MODEL, *QUICK, "--trials", "8", "--space", "budget",
                 "--objective", "quality", "--sampler", "tpe", "--study", "b", "--out", str(out)]) == 0
    trials = _trials(out / "cpu_onnxruntime" / "deit_tiny_patch16_224" / "studies" / "b.journal", "b")
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 8 and "gradient" in {t.user_attrs["origin"] for t in complete}
    sampled_costs = [t.user_attrs["cost"] for t in complete if t.user_attrs["origin"] == "sampler:tpe"]
    limit = complete[0].user_attrs["cost"] - complete[0].constraints["budget"]  # constraint = cost - limit
    assert sampled_costs and all(c <= limit for c in sampled_costs)


def test_importances_of_trials_that_all_scored_the_same_are_none_not_a_crash(capsys):
    """fANOVA raises on zero variance (e.g. every trial of a random-weight model at one fidelity)."""
    from hwsearch.search.study import print_importances

    study = optuna.create_study(directions=["maximize"])
    for x in range(6):
        study.add_trial(optuna.trial.create_trial(params={"x": float(x)}, values=[1.0],
                                                  distributions={"x": optuna.distributions.FloatDistribution(0, 10)}))
    assert print_importances(study) == {}
    assert "parameter importances for quality: none" in capsys.readouterr().out
