"""Power meters: real hardware where present, otherwise skipped with the reason."""
import shutil
from pathlib import Path

import pytest

from profilers.meters import MeterUnavailable, create_meter
from profilers.meters.rapl import POWERCAP, delta_uj, rapl_domains


def test_none_meter_gives_no_energy():
    assert create_meter("none", {}) is None


def test_unknown_meter():
    with pytest.raises(MeterUnavailable, match="unknown power meter"):
        create_meter("wattmeter", {})


def test_rapl_wraparound():
    assert delta_uj(100, 250, 1000) == 150
    assert delta_uj(900, 50, 1000) == 150  # counter wrapped at max_energy_range_uj


def test_rapl_sums_packages_only(tmp_path):
    """The powercap layout of a two-socket Intel host with psys and the MMIO copy of package 0: only the
    package zones count (psys contains them, mmio repeats package 0, sub-zones are parts)."""
    zones = {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core", "intel-rapl:0:1": "dram",
             "intel-rapl:1": "package-1", "intel-rapl:2": "psys", "intel-rapl-mmio:0": "package-0"}
    for zone, name in zones.items():
        (tmp_path / zone).mkdir()
        (tmp_path / zone / "name").write_text(name + "\n")
        (tmp_path / zone / "energy_uj").write_text("5000\n")
        (tmp_path / zone / "max_energy_range_uj").write_text("262143328850\n")
    assert [d.name for d in rapl_domains(tmp_path)] == ["intel-rapl:0", "intel-rapl:1"]
    (tmp_path / "intel-rapl:1" / "name").unlink()  # an old kernel without name files: a package
    assert [d.name for d in rapl_domains(tmp_path)] == ["intel-rapl:0", "intel-rapl:1"]


def test_jtop_uses_the_targets_interval(monkeypatch, capsys):
    """jetson-stats at the library boundary (no Jetson here): jtop(interval=...) from the target's
    interval_ms, and the service's actual interval checked and recorded."""
    import sys
    import types

    made = []

    class FakeJtop:
        def __init__(self, interval):
            made.append(interval)
            self.interval = self.service_interval
            self.power, self.temperature = {"tot": {"power": 5000.0}}, {}

        def start(self):
            pass

        def ok(self):
            return False

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "jtop", types.SimpleNamespace(jtop=FakeJtop))
    monkeypatch.delitem(sys.modules, "profilers.meters.jtop", raising=False)
    from profilers.meters.jtop import JtopMeter

    FakeJtop.service_interval = 0.1
    meter = JtopMeter({"interval_ms": 100})
    meter.check()
    assert made == [0.1] and meter.interval_s == 0.1 and "note: jtop" not in capsys.readouterr().err
    FakeJtop.service_interval = 1.0
    meter = JtopMeter({"interval_ms": 100})
    meter.check()
    assert meter.interval_s == 1.0 and "samples every 1 s, not the 0.1 s" in capsys.readouterr().err


def test_real_rapl_or_reason():
    if not rapl_domains(POWERCAP):
        with pytest.raises(MeterUnavailable, match="no RAPL domains"):
            create_meter("rapl", {})
        pytest.skip(f"no RAPL on this host ({POWERCAP} has no domains)")
    try:
        meter = create_meter("rapl", {"idle_s": 0.2})
    except MeterUnavailable as exc:
        pytest.skip(str(exc))
    reading = meter.energy(lambda: sum(range(10000)), lambda: None, window_s=0.5)
    assert reading.avg_power_w > 0 and reading.method == "rapl"


def test_nvml_on_gpu_or_reason():
    pytest.importorskip("pynvml", reason="nvidia-ml-py not installed (no NVIDIA GPU here)")
    try:
        meter = create_meter("nvml", {"idle_s": 1.0})
    except MeterUnavailable as exc:
        pytest.skip(f"NVML not usable here: {exc}")
    reading = meter.energy(lambda: None, lambda: None, window_s=1.0)
    assert reading.avg_power_w > 0


def test_tegrastats_absent_is_a_reason():
    if shutil.which("tegrastats"):
        pytest.skip("this host has tegrastats: covered by the Jetson run")
    with pytest.raises(MeterUnavailable, match="not a Jetson"):
        create_meter("tegrastats", {"total": {"rule": "rail", "rails": ["VDD_IN"]}})
    assert not Path("/etc/nv_tegra_release").exists()


def test_nvml_meter_without_clock_reasons_and_shutdown(monkeypatch):
    """NVML faked at the library boundary (no NVIDIA GPU here): a driver older than R535 has no
    clock-event-reasons call and may refuse the throttle one; the meter still reads energy, reports a
    clock drop with the reason that reasons are unreadable, and shuts NVML down on close."""
    import sys
    import types

    calls = []

    class NVMLError(Exception):
        pass

    def refuse(handle):
        raise NVMLError("Not Supported")

    energy = iter([1000, 3000, 5000, 9000])  # mJ counter readings: idle window, then the run window
    clocks = iter([1980, 1980, 1980, 1500])
    fake = types.SimpleNamespace(
        NVMLError=NVMLError, NVML_CLOCK_SM=0, NVML_TEMPERATURE_GPU=0,
        nvmlClocksThrottleReasonGpuIdle=1, nvmlClocksThrottleReasonApplicationsClocksSetting=2,
        nvmlInit=lambda: calls.append("init"), nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetHandleByIndex=lambda i: "gpu0",
        nvmlDeviceGetTotalEnergyConsumption=lambda h: next(energy, 9000),
        nvmlDeviceGetClockInfo=lambda h, kind: next(clocks, 1500),
        nvmlDeviceGetCurrentClocksThrottleReasons=refuse,
        nvmlDeviceGetTemperature=lambda h, kind: 50)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delitem(sys.modules, "profilers.meters.nvml", raising=False)
    import importlib

    nvml = importlib.import_module("profilers.meters.nvml")
    meter = nvml.NvmlMeter({"idle_s": 0.01})
    meter.check()
    reading = meter.energy(lambda: None, lambda: None, 0.01)
    assert reading.energy_mj >= 0 and "1980->1500 MHz" in reading.throttle
    assert "not readable" in reading.throttle
    meter.close()
    assert calls == ["init", "shutdown"]
