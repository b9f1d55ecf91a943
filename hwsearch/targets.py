"""Target files (``targets/<name>.yaml``): which device, backend, batch, timing protocol.

The profilers issue extends the schema; here: finding, loading and checking the common keys.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hwsearch.errors import HwsearchError
from hwsearch.io import safe_name

DEFAULT_TARGET = "cpu_onnxruntime"
BACKENDS = ("tensorrt", "onnxruntime", "torch")
METERS = ("tegrastats", "nvml", "rapl", "jtop", "none")

# key: (type, required, check or allowed values)
_SCHEMA: dict[str, tuple[type | tuple[type, ...], bool, Any]] = {
    "name": (str, True, None),
    "description": (str, False, None),
    "host": (str, True, ("local", "remote")),
    "backend": (str, True, BACKENDS),
    "device": (str, True, ("cpu", "cuda", "jetson")),
    "device_name": (str, False, None),  # part of the GPU's name / the board's model (case-insensitive)
    "precision": (str, True, ("fp32", "fp16", "int8")),
    "batch_sizes": (list, True, lambda v: v and all(isinstance(b, int) and b > 0 for b in v)),
    "threads": ((int, type(None)), False, None),
    "cuda_graphs": (bool, False, None),
    "tensorrt": (dict, False, None),
    "token_grid": (dict, True, lambda v: v.get("rule") in ("ddp_candidates", "every")
                   and isinstance(v.get("granularity", 1), int) and v.get("granularity", 1) > 0),
    "timing": (dict, True, lambda v: all(isinstance(v.get(k), (int, float)) and v[k] > 0
                                         for k in ("warmup_s", "repeat_s", "repeats", "max_cv"))
               and v["repeats"] >= 3 and v.get("max_attempts", 1) >= 1),  # noise bounds stay on
    "power_meter": (str, True, METERS),
    "power": (dict, False, None),
    "setup": (list, True, lambda v: all(isinstance(c, str) for c in v)),
}
GRID_RULES = {"ddp_candidates": "counts N, N-g, ... (the DDP candidates) plus the smallest count",
              "every": "every count from the smallest to N"}


def targets_dir() -> Path:
    """``$HWSEARCH_TARGETS``, else ``./targets``, else the repository's ``targets/``."""
    env = os.environ.get("HWSEARCH_TARGETS")
    if env:
        return Path(env)
    local = Path.cwd() / "targets"
    return local if local.is_dir() else Path(__file__).resolve().parent.parent / "targets"


def available() -> list[str]:
    return sorted(p.stem for p in targets_dir().glob("*.yaml"))


@dataclass
class Target:
    """One device: how to run and time graphs there (``targets/<name>.yaml``)."""

    name: str
    backend: str
    precision: str
    batch_sizes: list[int]
    power_meter: str
    threads: int | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def batch(self) -> int:
        return int(self.batch_sizes[0])

    @property
    def device(self) -> str:
        """``cpu``, ``cuda`` or ``jetson``."""
        return str(self.raw["device"])

    @property
    def is_local(self) -> bool:
        """Runs on this host (the CPU targets); others need a bundle or --remote."""
        return self.raw.get("host") == "local"

    @property
    def granularity(self) -> int:
        return int(self.raw["token_grid"].get("granularity", 1))

    def token_grid(self, num_tokens: int, num_prefix: int) -> list[int]:
        """Token counts to profile, largest first (the rule is in the target file)."""
        rule = self.raw["token_grid"]["rule"]
        low = num_prefix + 1
        if rule == "every":
            return list(range(num_tokens, low - 1, -1))
        counts = list(range(num_tokens, low - 1, -self.granularity))
        return counts if counts[-1] == low else counts + [low]


def validate(data: Any, where: str) -> dict[str, Any]:
    """Check a parsed target file against the schema; the error names the key."""
    if not isinstance(data, dict):
        raise HwsearchError(f"{where}: expected a mapping of target keys")
    unknown = sorted(set(data) - set(_SCHEMA))
    if unknown:
        raise HwsearchError(f"{where}: unknown key {unknown[0]!r}")
    for key, (typ, required, check) in _SCHEMA.items():
        if key not in data:
            if required:
                raise HwsearchError(f"{where}: missing key {key!r}")
            continue
        value = data[key]
        if not isinstance(value, typ) or (isinstance(value, bool) and typ is int):
            raise HwsearchError(f"{where}: key {key!r} has the wrong type ({type(value).__name__})")
        if isinstance(check, tuple) and value not in check:
            raise HwsearchError(f"{where}: key {key!r} must be one of {', '.join(check)} (got {value!r})")
        if callable(check) and not check(value):
            raise HwsearchError(f"{where}: key {key!r} is invalid ({value!r})")
    return data


def load_target(name: str) -> Target:
    """Load and validate ``targets/<name>.yaml``."""
    safe_name(name, "target")  # a folder name under results/
    path = targets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise HwsearchError(f"unknown target {name!r} (known: {', '.join(available()) or 'none'})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HwsearchError(f"{path}: malformed YAML ({str(exc).splitlines()[0]})") from None
    data = validate(data, str(path))
    if data["name"] != name:
        raise HwsearchError(f"{path}: name {data['name']!r} must equal the file name {name!r} (results go under it)")
    return Target(data["name"], data["backend"], data["precision"], data["batch_sizes"], data["power_meter"],
                  data.get("threads"), data["timing"], data, path)


def run_setup(target: Target, apply: bool) -> None:
    """Run the target's setup steps only when asked (they change clocks/power modes)."""
    import subprocess

    steps = target.raw.get("setup") or []
    if steps and not apply:
        print(f"note: setup steps not applied (use --apply-setup): {'; '.join(steps)}")
    for step in steps if apply else []:
        print(f"setup: {step}")
        if subprocess.run(step, shell=True).returncode != 0:
            raise HwsearchError(f"setup step failed: {step}")


def resolve_target(name: str | None, results: Path) -> tuple[str, str]:
    """The target to use and why: flag, ``$HWSEARCH_TARGET``, newest profile, or the default."""
    if name:
        return name, "--target"
    env = os.environ.get("HWSEARCH_TARGET")
    if env:
        return env, "$HWSEARCH_TARGET"
    profiles = sorted(results.glob("*/*/profile.csv"), key=lambda p: p.stat().st_mtime)
    if profiles:
        return profiles[-1].parent.parent.name, f"newest profile {profiles[-1]}"
    return DEFAULT_TARGET, "default"
