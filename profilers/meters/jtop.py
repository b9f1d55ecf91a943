"""Jetson power through jetson-stats' Python API (no root needed where jtop's service runs)."""
from __future__ import annotations

import sys
import threading
import time
from typing import Any

from jtop import jtop

from profilers.meters.base import METERS, MeterUnavailable, PowerMeter


@METERS.register("jtop")
class JtopMeter(PowerMeter):
    """Samples jtop's total power (``power['tot']['power']``, mW) in a background thread."""

    def check(self) -> None:
        asked = float(self.config.get("interval_ms", 100)) / 1000.0  # the target's sampling interval
        self.jetson = jtop(interval=asked)
        try:
            self.jetson.start()
        except Exception as exc:  # jtop raises its own exception types
            raise MeterUnavailable(f"jtop service unavailable: {exc}") from None
        self.interval_s = float(self.jetson.interval)  # the service's: another client may have set it
        if abs(self.interval_s - asked) > 1e-6:
            print(f"note: jtop's service samples every {self.interval_s:g} s, not the {asked:g} s the target asks "
                  f"(another jtop client set it); windows must hold at least two samples", file=sys.stderr,
                  flush=True)
        self.samples: list[tuple[float, float, float | None]] = []
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while self.jetson.ok():
            power = self.jetson.power.get("tot", {}).get("power")
            temps = [t.get("temp") for t in self.jetson.temperature.values() if isinstance(t, dict)]
            temps = [t for t in temps if isinstance(t, (int, float)) and t > -200]
            if power is not None:
                self.samples.append((time.perf_counter(), float(power), max(temps) if temps else None))

    def begin(self) -> None:
        self.start = time.perf_counter()

    def end(self) -> tuple[float, dict[str, Any]]:
        stop = time.perf_counter()
        window = [s for s in self.samples if self.start <= s[0] <= stop]
        if len(window) < 2:
            raise MeterUnavailable("jtop gave fewer than 2 samples in the window: lengthen it")
        watts = sum(p for _, p, _ in window) / len(window) / 1e3
        temps = [t for _, _, t in window if t is not None]
        return watts * (stop - self.start), {"temperature_c": max(temps) if temps else None,
                                             "interval_s": self.interval_s}

    def close(self) -> None:
        self.jetson.close()
