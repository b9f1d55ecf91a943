"""Jetson power from ``tegrastats`` (JetPack 4-7 formats), module total per board rule.

Rails print as ``NAME cur/avg`` (JetPack 4: plain mW numbers; 5/6: ``1234mW/1200mW``) or, on
JetPack 7, three values. Which rails make the module total is board data from the target file:
``{rule: rail, rails: [VDD_IN]}`` (Orin NX/Nano, Nano/TX2's POM_5V_IN: input rail = total) or
``{rule: sum, rails: [...]}`` (AGX Orin, AGX Xavier: no input rail, sum the module rails).
Lines taken without root lack the EMC/GPU frequency fields; parsing does not depend on them.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profilers.meters.base import METERS, MeterUnavailable, PowerMeter

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?:/(\d+(?:\.\d+)?)(?:mW)?)?")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_GPU = re.compile(r"GR3D_FREQ (\d+)%(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"EMC_FREQ (\d+)%(?:@(\d+))?")
_NOT_RAILS = {"RAM", "SWAP", "IRAM"}


@dataclass
class TegraSample:
    """One tegrastats line: rails (current mW), temperatures (C), GPU load/frequency."""

    rails_mw: dict[str, float] = field(default_factory=dict)
    temps_c: dict[str, float] = field(default_factory=dict)
    gpu_load: int | None = None
    gpu_mhz: list[int] = field(default_factory=list)
    emc_mhz: int | None = None


def parse_line(line: str) -> TegraSample:
    """Parse one tegrastats line; the first number of each rail is the instantaneous value."""
    sample = TegraSample()
    for name, cur, _avg, _third in _RAIL.findall(line):
        if name not in _NOT_RAILS:
            sample.rails_mw[name] = float(cur)
    for name, value in _TEMP.findall(line):
        if name not in ("PMIC",):  # PMIC@100C is a fixed placeholder on several boards
            sample.temps_c[name] = float(value)
    gpu = _GPU.search(line)
    if gpu:
        sample.gpu_load = int(gpu.group(1))
        sample.gpu_mhz = [int(v) for v in gpu.group(2).split(",")] if gpu.group(2) else []
    emc = _EMC.search(line)
    if emc and emc.group(2):
        sample.emc_mhz = int(emc.group(2))
    return sample


def module_total_mw(sample: TegraSample, total: dict[str, Any]) -> float:
    """The module's total power by the board's rule (see the module docstring)."""
    rule, rails = total.get("rule"), list(total.get("rails") or [])
    present = [r for r in rails if r in sample.rails_mw]
    if rule == "rail":
        if not present:
            raise MeterUnavailable(f"tegrastats line has none of the input rails {rails}")
        return sample.rails_mw[present[0]]
    if rule == "sum":
        if not present:
            raise MeterUnavailable(f"tegrastats line has none of the module rails {rails} (run as root?)")
        return sum(sample.rails_mw[r] for r in present)
    raise MeterUnavailable(f"unknown power total rule {rule!r} (use rail or sum)")


GPU_DEVFREQ = ("gpu", "ga10b", "gv11b", "gp10b", "gm20b")


def unlocked_clocks(devfreq: Path = Path("/sys/class/devfreq")) -> list[str]:
    """Jetson GPU devfreq nodes whose min and max frequency differ (jetson_clocks not applied)."""
    found = []
    for node in sorted(devfreq.glob("*")):
        if not any(key in node.name for key in GPU_DEVFREQ):
            continue
        try:
            low, high = int((node / "min_freq").read_text()), int((node / "max_freq").read_text())
        except (OSError, ValueError):
            continue
        if low < high:
            found.append(f"{node.name}: {low // 1_000_000}-{high // 1_000_000} MHz")
    return found


@METERS.register("tegrastats")
class TegrastatsMeter(PowerMeter):
    """Runs ``tegrastats --interval N`` in the background and integrates the module total."""

    def check(self) -> None:
        if shutil.which("tegrastats") is None:
            raise MeterUnavailable("tegrastats not found (not a Jetson?)")
        if "total" not in self.config:
            raise MeterUnavailable("target file lacks power.total (which rails make the module total)")
        unlocked = unlocked_clocks()
        if unlocked:
            print(f"profilers: warning: GPU clocks not locked ({'; '.join(unlocked)}): run 'sudo jetson_clocks' "
                  "or hwsearch profile --apply-setup, or latency and energy will vary", file=sys.stderr)

    def _start_process(self) -> None:
        interval = str(int(self.config.get("interval_ms", 100)))
        self.proc = subprocess.Popen(["tegrastats", "--interval", interval], stdout=subprocess.PIPE, text=True)
        self.samples: list[tuple[float, TegraSample]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.samples.append((time.perf_counter(), parse_line(line)))

    def begin(self) -> None:
        if not hasattr(self, "proc"):
            self._start_process()
            time.sleep(3 * int(self.config.get("interval_ms", 100)) / 1e3)
        self.start = time.perf_counter()

    def end(self) -> tuple[float, dict[str, Any]]:
        stop = time.perf_counter()
        window = [(t, s) for t, s in self.samples if self.start <= t <= stop]
        if len(window) < 2:
            raise MeterUnavailable("tegrastats gave fewer than 2 samples in the window: lengthen it")
        watts = [module_total_mw(s, self.config["total"]) / 1e3 for _, s in window]
        temps = [max(s.temps_c.values()) for _, s in window if s.temps_c]
        freqs = [max(s.gpu_mhz) for _, s in window if s.gpu_mhz]
        extra: dict[str, Any] = {"temperature_c": max(temps) if temps else None,
                                 "rule": self.config["total"].get("rule")}
        if freqs and min(freqs) < max(freqs):
            extra["throttle"] = f"GPU clock varied {min(freqs)}-{max(freqs)} MHz (jetson_clocks not locked?)"
        return sum(watts) / len(watts) * (stop - self.start), extra

    def close(self) -> None:
        if hasattr(self, "proc"):
            self.proc.terminate()
