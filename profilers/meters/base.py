"""Meter interface: measure idle power once, then the energy of a window of inferences."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from profilers.registry import Registry

METERS = Registry("power meter", {"none": "profilers.meters.base", "tegrastats": "profilers.meters.tegrastats",
                                  "nvml": "profilers.meters.nvml", "rapl": "profilers.meters.rapl",
                                  "jtop": "profilers.meters.jtop"})


class MeterUnavailable(Exception):
    """The meter cannot read power on this host (missing tool, device or permission)."""


@dataclass
class EnergyReading:
    """Energy of one inference: (window energy - idle power x window time) / iterations."""

    energy_mj: float
    avg_power_w: float
    idle_power_w: float
    seconds: float
    iterations: int
    method: str
    temperature_c: float | None = None
    throttle: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_row(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return data


class PowerMeter(ABC):
    """Start/stop a window; subclasses return the window's energy in joules."""

    name = ""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.idle_w: float | None = None

    def check(self) -> None:  # noqa: B027 - meters with nothing to check
        """Raise MeterUnavailable (with the reason) when this host cannot read power."""

    @abstractmethod
    def begin(self) -> None:
        """Start a measurement window."""

    @abstractmethod
    def end(self) -> tuple[float, dict[str, Any]]:
        """End the window: (joules, extras such as temperature/throttle)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the device/tool."""

    def measure_idle(self, seconds: float) -> float:
        """Average power with nothing running (subtracted from every window)."""
        self.begin()
        time.sleep(seconds)
        joules, _ = self.end()
        self.idle_w = joules / seconds
        return self.idle_w

    def energy(self, run: Callable[[], object], sync: Callable[[], None], window_s: float) -> EnergyReading:
        """Run inferences for at least ``window_s`` seconds inside one window."""
        if self.idle_w is None:
            self.measure_idle(float(self.config.get("idle_s", 2.0)))
        sync()
        self.begin()
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < window_s:
            run()
            count += 1
        sync()
        seconds = time.perf_counter() - start
        joules, extra = self.end()
        idle = float(self.idle_w or 0.0)
        per_inference = max(joules - idle * seconds, 0.0) / count
        return EnergyReading(per_inference * 1e3, joules / seconds, idle, seconds, count, self.name,
                             extra.pop("temperature_c", None), extra.pop("throttle", ""), extra)


@METERS.register("none")
class NoMeter(PowerMeter):
    """No power data: energy columns stay empty."""

    def begin(self) -> None:
        raise MeterUnavailable("no power meter configured")

    def end(self) -> tuple[float, dict[str, Any]]:
        raise MeterUnavailable("no power meter configured")


def create_meter(name: str, config: dict[str, Any]) -> PowerMeter | None:
    """A ready meter, or None for 'none'. Raises MeterUnavailable with the reason."""
    if name == "none":
        return None
    meter = METERS.load(name, MeterUnavailable)(config)
    meter.check()
    return meter
