"""NVIDIA GPU energy from NVML's total-energy counter (nvidia-ml-py), windows >= 1 s."""
from __future__ import annotations

import time
from typing import Any

import pynvml

from profilers.meters.base import METERS, MeterUnavailable, PowerMeter


@METERS.register("nvml")
class NvmlMeter(PowerMeter):
    def check(self) -> None:
        try:
            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(int(self.config.get("device_index", 0)))
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        except pynvml.NVMLError as exc:
            raise MeterUnavailable(f"NVML energy counter unavailable: {exc}") from None

    def begin(self) -> None:
        self.start_mj = pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        self.start_clock = pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_SM)
        self.start = time.perf_counter()

    def end(self) -> tuple[float, dict[str, Any]]:
        if time.perf_counter() - self.start < 1.0:
            time.sleep(1.0 - (time.perf_counter() - self.start))  # the counter updates too slowly below 1 s
        joules = (pynvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - self.start_mj) / 1e3
        clock = pynvml.nvmlDeviceGetClockInfo(self.handle, pynvml.NVML_CLOCK_SM)
        reasons = self._clock_reasons()
        throttle = ""
        if clock < self.start_clock or (reasons or 0) & ~(pynvml.nvmlClocksThrottleReasonGpuIdle
                                                          | pynvml.nvmlClocksThrottleReasonApplicationsClocksSetting):
            why = f"reasons 0x{reasons:x}" if reasons is not None else "reasons not readable on this driver"
            throttle = f"SM clock {self.start_clock}->{clock} MHz, {why}"
        temp = pynvml.nvmlDeviceGetTemperature(self.handle, pynvml.NVML_TEMPERATURE_GPU)
        return joules, {"temperature_c": float(temp), "throttle": throttle, "sm_clock_mhz": clock}

    def _clock_reasons(self) -> int | None:
        """Why clocks are held down: the event-reasons call (drivers >= R535), else the older throttle
        call, else None (the throttle check then rests on the clock alone)."""
        for name in ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"):
            call = getattr(pynvml, name, None)
            if call is None:
                continue
            try:
                return int(call(self.handle))
            except pynvml.NVMLError:
                continue
        return None

    def close(self) -> None:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
