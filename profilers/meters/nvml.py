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
        reasons = pynvml.nvmlDeviceGetCurrentClocksEventReasons(self.handle) \
            if hasattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons") \
            else pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(self.handle)
        throttle = ""
        if clock < self.start_clock or reasons & ~(pynvml.nvmlClocksThrottleReasonGpuIdle
                                                   | pynvml.nvmlClocksThrottleReasonApplicationsClocksSetting):
            throttle = f"SM clock {self.start_clock}->{clock} MHz, reasons 0x{reasons:x}"
        temp = pynvml.nvmlDeviceGetTemperature(self.handle, pynvml.NVML_TEMPERATURE_GPU)
        return joules, {"temperature_c": float(temp), "throttle": throttle, "sm_clock_mhz": clock}
