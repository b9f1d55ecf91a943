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

DEFAULT_TARGET = "cpu_onnxruntime"
_REQUIRED = {"name": str, "backend": str, "precision": str, "batch_sizes": list, "power_meter": str}


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
    name: str
    backend: str
    precision: str
    batch_sizes: list[int]
    power_meter: str
    threads: int | None = None
    timing: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return int(self.batch_sizes[0])

    @property
    def is_host_cpu(self) -> bool:
        return self.raw.get("device") == "cpu"


def load_target(name: str) -> Target:
    """Load and check ``targets/<name>.yaml``; errors name the file and key."""
    path = targets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise HwsearchError(f"unknown target {name!r} (known: {', '.join(available()) or 'none'})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise HwsearchError(f"{path}: malformed YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise HwsearchError(f"{path}: expected a mapping")
    for key, typ in _REQUIRED.items():
        if not isinstance(data.get(key), typ):
            raise HwsearchError(f"{path}: key {key!r} missing or not a {typ.__name__}")
    if not data["batch_sizes"] or not all(isinstance(b, int) and b > 0 for b in data["batch_sizes"]):
        raise HwsearchError(f"{path}: key 'batch_sizes' must be positive integers")
    return Target(data["name"], data["backend"], data["precision"], data["batch_sizes"], data["power_meter"],
                  data.get("threads"), data.get("timing") or {}, data)


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
