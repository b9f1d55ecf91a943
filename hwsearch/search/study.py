"""Optuna studies: the one storage factory (like ``optuna.storages.get_storage``), opening and
checking a study, failing trials of dead local workers, and reading results back.

Storage: a JournalStorage file (several local processes may share it; rerunning continues the
study), or an RDB URL (PostgreSQL for workers on many machines, with heartbeats and retried
failed trials). Only Optuna's public API is used.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import optuna

from hwsearch.errors import HwsearchError
from hwsearch.io import redact
from hwsearch.locks import pid_alive

QUESTION = "question"  # one user attr (one journal record), so a concurrent worker never sees half of it
ORPHAN_AFTER_S = 60.0  # a RUNNING trial naming no worker this long after its start: its worker was killed
RUN_ATTRS = ("worker", "quality", "cost", "seconds", "counts", "retry_of")  # one run's, not the trial's question
MODEL_SOURCE = "model_source"  # the checkpoint and input size the trials ran with (not part of the question)


def get_storage(storage: str | Path) -> optuna.storages.BaseStorage:
    """An RDB URL (``postgresql://...``, ``sqlite:///...``) or a JournalStorage file path."""
    text = str(storage)
    return rdb_storage(text) if "://" in text else journal_storage(text)


def journal_storage(path: str) -> optuna.storages.BaseStorage:
    """A local JournalStorage file (several processes may share it; resumable)."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return JournalStorage(JournalFileBackend(path))


def rdb_storage(url: str) -> optuna.storages.BaseStorage:
    """Optuna RDB storage (PostgreSQL for many machines) with heartbeats; a dead worker's trial
    is marked failed after the grace period and retried."""
    for attempt in range(3):  # workers starting together on a fresh database race to create its tables
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=10, grace_period=30,
                failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=2))
        except Exception as exc:  # sqlalchemy/driver errors: retried, then one line for the user
            if attempt == 2:
                raise HwsearchError(f"cannot open study storage {url.split('@')[-1]}: {type(exc).__name__}: "
                                    f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def fail_dead_local_trials(study: optuna.Study, orphan_after_s: float = ORPHAN_AFTER_S) -> list[int]:
    """RUNNING trials started on this host by processes that no longer exist -> FAIL, and
    re-enqueued with the same parameters (JournalStorage has no heartbeat; RDB storage uses its own).
    A RUNNING trial that names no worker and started ``orphan_after_s`` ago is one a worker was killed
    on before it could name itself (a live worker names itself first thing): failed too, or the
    trial cap would count it as running for ever (a resumed study then ended one trial short)."""
    host = socket.gethostname()
    failed = []
    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = str(t.user_attrs.get("worker", ""))
        if not worker:
            started = t.datetime_start
            if started is None or (now - started).total_seconds() < orphan_after_s:
                continue
        elif not worker.startswith(f"{host}:") or pid_alive(int(worker.rsplit(":", 1)[1])):
            continue
        try:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # public API (Optuna 5.0)
        except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker failed it first (and queued its retry): one retry per dead trial
        kept = {k: v for k, v in t.user_attrs.items() if k not in RUN_ATTRS}  # origin, queued counts, ...
        study.enqueue_trial(t.params, user_attrs={**kept, "retry_of": t.number})
        failed.append(t.number)
    return failed


def open_study(storage: str | Path, name: str, directions: list[str] | None,
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Create or continue a study (``directions=None``: it must exist)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = get_storage(storage)
    if directions is None:
        try:
            return optuna.load_study(study_name=name, storage=backend)
        except KeyError:
            raise HwsearchError(f"no study {name!r} in {redact(storage)}: run hwsearch sample first") from None
    return optuna.create_study(study_name=name, storage=backend, directions=directions, sampler=sampler,
                               load_if_exists=True)


def check_study(study: optuna.Study, expected: dict[str, Any]) -> None:
    """A continued study must be the same question (model, target, cost, budget, quality)."""
    current = study.user_attrs.get(QUESTION)
    if current is None:
        study.set_user_attr(QUESTION, expected)
        return
    differ = [k for k, v in expected.items() if current.get(k) != v]
    if differ:
        raise HwsearchError(f"study {study.study_name!r} was made for other settings ("
                            + ", ".join(f"{k}: {current.get(k)!r} != {expected[k]!r}" for k in differ)
                            + "): use another --study name")


def question(study: optuna.Study) -> dict[str, Any]:
    """The settings a study was made for (model, target, cost, unit, budget, quality, ...)."""
    q = study.user_attrs.get(QUESTION)
    if not isinstance(q, dict):
        raise HwsearchError(f"study {study.study_name!r} was not made by hwsearch sample")
    return q


def complete_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def print_importances(study: optuna.Study, top: int = 5) -> dict[str, float]:
    """fANOVA importances of the parameters for quality (needs a few complete trials)."""
    # trials whose parameters lie in the sampled space: queued schedules may carry none (budget
    # space) or drops beyond MAX_DROP, which fANOVA's space cannot hold
    view = optuna.create_study(directions=study.directions)
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        if trial.params:
            try:
                view.add_trial(trial)
            except ValueError:
                continue
    if len(view.trials) < 5:
        return {}
    try:
        importances = optuna.importance.get_param_importances(
            view, target=lambda t: t.values[0], evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except RuntimeError as exc:  # fANOVA: "zero total variance" when every trial scored the same
        print(f"parameter importances for quality: none ({exc})")
        return {}
    print("parameter importances for quality: "
          + ", ".join(f"{k} {v:.2f}" for k, v in list(importances.items())[:top]))
    return dict(importances)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """Complete trials as plain rows, in trial order."""
    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        rows.append({"number": t.number, "origin": t.user_attrs.get("origin", "?"),
                     "quality": float(t.user_attrs["quality"]), "cost": float(t.user_attrs["cost"]),
                     "seconds": float(t.user_attrs.get("seconds", 0.0)),
                     "search_seconds": t.user_attrs.get("search_seconds"),
                     "feasible": all(v <= 0 for v in t.constraints.values()),
                     "counts": json.loads(t.user_attrs["counts"])})
    return rows
