"""CPU package energy from Linux powercap (RAPL): ``energy_uj`` counters with wrap-around."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from profilers.meters.base import METERS, MeterUnavailable, PowerMeter

POWERCAP = Path("/sys/class/powercap")


def rapl_domains(root: Path = POWERCAP) -> list[Path]:
    """The CPU packages: top-level ``intel-rapl:N`` zones (also AMD's driver) named ``package-*``.

    Not sub-zones (core, uncore, dram: parts of a package), not ``psys`` (the whole platform, which
    contains the packages), not ``intel-rapl-mmio:N`` (the same package counter read over MMIO):
    summing those would count the same joules twice. A zone without a ``name`` file (old kernels)
    is taken as a package."""
    def name(zone: Path) -> str:
        try:
            return (zone / "name").read_text().strip()
        except OSError:
            return "package-?"

    return sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1 and (p / "energy_uj").exists()
                  and name(p).startswith("package-"))


def delta_uj(before: int, after: int, max_range: int) -> int:
    """Counter difference, handling one wrap-around of ``max_energy_range_uj``."""
    return after - before if after >= before else after + max_range - before


@METERS.register("rapl")
class RaplMeter(PowerMeter):
    def check(self) -> None:
        self.domains = rapl_domains(Path(self.config.get("powercap", POWERCAP)))
        if not self.domains:
            raise MeterUnavailable(f"no RAPL domains under {self.config.get('powercap', POWERCAP)}")
        try:
            self.ranges = [int((d / "max_energy_range_uj").read_text()) for d in self.domains]
            self._read()
        except PermissionError:
            raise MeterUnavailable("RAPL energy_uj is not readable (needs root since Linux 5.10)") from None

    def _read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def begin(self) -> None:
        self.before, self.start = self._read(), time.perf_counter()

    def end(self) -> tuple[float, dict[str, Any]]:
        after = self._read()
        micro = sum(delta_uj(b, a, m) for b, a, m in zip(self.before, after, self.ranges, strict=True))
        return micro / 1e6, {"domains": [d.name for d in self.domains]}
