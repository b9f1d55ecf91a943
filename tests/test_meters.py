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


def test_rapl_domains_from_sysfs_layout(tmp_path):
    for name, energy in (("intel-rapl:0", "5000"), ("intel-rapl:0:0", "10"), ("intel-rapl:1", "7000")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "energy_uj").write_text(energy + "\n")
        (tmp_path / name / "max_energy_range_uj").write_text("262143328850\n")
    assert [d.name for d in rapl_domains(tmp_path)] == ["intel-rapl:0", "intel-rapl:1"]


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
