"""Where everything lives under ``results/<target>/<model>/``, and keeping its profile and cost model
fresh (``ensure_profile``, ``ensure_costmodel``).

A profile is stale when the target's measured settings changed since it was measured (meta.json);
a cost model is stale when its profile, batch size or target settings changed, or it is of an older
format. Stale or missing files are remade on this host when the target is local, saying why; for
a remote target the error names the command to run on the device.
"""
from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwsearch.cost.fit import FORMAT, fit_costmodel, load_costmodel, save_costmodel
from hwsearch.errors import HwsearchError
from hwsearch.io import read_json_object, safe_name
from hwsearch.locks import file_lock
from hwsearch.model.build import model_hash
from hwsearch.model.vit import CompressedViT
from hwsearch.profiling.measure import profile_here
from hwsearch.profiling.table import settings_hash
from hwsearch.targets import Target


@dataclass(frozen=True)
class Workspace:
    """Paths of one (target, model) pair under the results root ``out``."""

    out: Path
    target: Target
    model: str

    @property
    def folder(self) -> Path:
        return Path(self.out) / self.target.name / self.model

    profile_csv = property(lambda self: self.folder / "profile.csv")
    meta_json = property(lambda self: self.folder / "meta.json")
    costmodel_json = property(lambda self: self.folder / "costmodel.json")
    schedules = property(lambda self: self.folder / "schedules")
    studies = property(lambda self: self.folder / "studies")
    engines = property(lambda self: self.folder / "engines")
    report = property(lambda self: self.folder / "report")

    def lock(self, wait: bool = False) -> AbstractContextManager[None]:
        """This results folder's lock (:mod:`hwsearch.locks`): a second holder exits 2 naming the first,
        or waits with ``wait``."""
        return file_lock(self.folder / ".lock", f"the results folder {self.folder}", wait)

    def schedule(self, label: str) -> Path:
        return self.schedules / f"{safe_name(label, 'schedule name')}.yaml"

    def bundle_hint(self, explicit_model: bool) -> str:
        name = self.target.name
        return (f"make a bundle with hwsearch profile --target {name}" + (f" --model {self.model}" if explicit_model
                                                                          else "")
                + " --bundle OUT.tar.gz, run it on the device, then --import its measurements.csv")

    def profile_stale_reason(self) -> str | None:
        """Why the profile cannot be used as it is (missing, other target settings), or None."""
        if not self.profile_csv.is_file():
            return "missing"
        recorded = read_json_object(self.meta_json).get("target_settings_hash")
        if recorded is not None and recorded != settings_hash(self.target):
            return f"measured with other settings of {self.target.name} ({self.target.path})"
        return None

    def ensure_profile(self, model: CompressedViT, explicit_model: bool = False, progress: bool = True,
                       whole_models: int = 8) -> None:
        """Profile here when missing or stale and the target is this host; else one error."""
        why = self.profile_stale_reason()
        if why is None:
            return
        if not self.target.is_local:
            state = "no profile" if why == "missing" else f"the profile is {why}, no fresh profile"
            raise HwsearchError(f"{state} of {self.model} on {self.target.name}: " + self.bundle_hint(explicit_model))
        print(f"no profile of {self.model} on {self.target.name} yet ({why}): profiling it here first "
              f"(hwsearch profile)" if why == "missing" else
              f"profile of {self.model} on {self.target.name} {why}: profiling it here again", flush=True)
        with self.lock():
            path, _ = profile_here(self.target, model, self.model, list(self.target.batch_sizes), self.folder,
                                   whole_models, progress)
        print(f"wrote {path}", flush=True)

    def fit_batch(self) -> int | None:
        """The target's batch when the profile has it, else None (the smallest profiled)."""
        batches = read_json_object(self.meta_json).get("batches") or []
        return self.target.batch if not batches or self.target.batch in batches else None

    def costmodel_stale_reason(self, data: dict[str, Any] | None) -> str | None:
        if data is None:
            return "missing"
        if data["rows_sha256"] != hashlib.sha256(self.profile_csv.read_bytes()).hexdigest():
            return "profile changed"
        wanted = self.fit_batch()
        if wanted is not None and int(data["batch"]) != wanted:
            return f"fitted at batch {data['batch']}, the target runs batch {self.target.batch}"
        if data.get("target_settings_hash") != read_json_object(self.meta_json).get("target_settings_hash"):
            return "target settings changed"
        return None

    def ensure_costmodel(self, model: CompressedViT, explicit_model: bool = False,
                         progress: bool = True) -> dict[str, Any]:
        """This target's fitted cost model, (re)fitted from the profile when missing or stale."""
        path = self.costmodel_json
        if self.profile_csv.is_file() or not path.is_file():
            self.ensure_profile(model, explicit_model, progress)
        if not self.profile_csv.is_file():  # remote target with a cost model but no profile: use it as is
            data = load_costmodel(path)
        else:
            fmt = read_json_object(path).get("format") if path.is_file() else None
            older = isinstance(fmt, int) and fmt < FORMAT  # refit older formats; corrupt files are errors
            data = load_costmodel(path) if path.is_file() and not older else None
            why = "older format" if older else self.costmodel_stale_reason(data)
            if why is not None:
                print(f"fitting {path} from {self.profile_csv} ({why}) ...", flush=True)
                with self.lock(wait=True):
                    data = save_fit(self, self.fit_batch())
        if data["model_hash"] != model_hash(model.vit, self.model):
            raise HwsearchError(f"{path} is stale: it was fitted for another architecture; profile and fit again")
        return data


def save_fit(ws: Workspace, batch: int | None) -> dict[str, Any]:
    """Fit costmodel.json from the workspace's profile (recording its target settings) and save it."""
    data = fit_costmodel(ws.profile_csv, batch, read_json_object(ws.meta_json).get("target_settings_hash"))
    save_costmodel(data, ws.costmodel_json)
    return load_costmodel(ws.costmodel_json)
