"""tegrastats parsing on recorded lines from several board families and JetPack versions."""
from pathlib import Path

import pytest

from profilers.meters import MeterUnavailable
from profilers.meters.tegrastats import module_total_mw, parse_line, unlocked_clocks

LINES = dict(line.split("|", 1) for line in (Path(__file__).parent / "fixtures" / "tegrastats_lines.txt")
             .read_text().splitlines() if line and not line.startswith("#"))


def test_agx_orin_sums_module_rails():
    s = parse_line(LINES["agx_orin_jp5_root"])
    assert s.rails_mw == {"VDD_GPU_SOC": 3150, "VDD_CPU_CV": 14312, "VIN_SYS_5V0": 4968, "VDDQ_VDD2_1V8AO": 1091}
    rule = {"rule": "sum", "rails": ["VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"]}
    assert module_total_mw(s, rule) == 3150 + 14312 + 4968 + 1091
    assert s.gpu_load == 14 and s.gpu_mhz == [407, 407] and s.emc_mhz == 2133
    assert s.temps_c["tj"] == pytest.approx(77.281)


@pytest.mark.parametrize("key, total", [("orin_nano_jp6", 5832), ("orin_nano_noroot", 5263), ("xavier_nx", 4067)])
def test_input_rail_is_the_total(key, total):
    s = parse_line(LINES[key])
    assert module_total_mw(s, {"rule": "rail", "rails": ["VDD_IN"]}) == total


def test_no_root_line_lacks_frequencies():
    s = parse_line(LINES["orin_nano_noroot"])
    assert s.gpu_load == 0 and s.gpu_mhz == [] and s.emc_mhz is None


def test_nano_jetpack4_pom_rails():
    s = parse_line(LINES["nano_jp4"])
    assert s.rails_mw == {"POM_5V_IN": 3129, "POM_5V_GPU": 160, "POM_5V_CPU": 922}
    assert module_total_mw(s, {"rule": "rail", "rails": ["VDD_IN", "POM_5V_IN"]}) == 3129
    assert "PMIC" not in s.temps_c  # fixed 100C placeholder


def test_agx_xavier_sum_of_module_rails():
    s = parse_line(LINES["agx_xavier_jp4"])
    rails = ["GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"]
    assert module_total_mw(s, {"rule": "sum", "rails": rails}) == 0 + 311 + 932 + 0 + 621 + 1482
    assert s.gpu_mhz == [318]


def test_three_value_rails_take_the_instantaneous_value():
    # JetPack 7 prints three numbers per rail; format check built from the recorded Orin Nano line
    line = LINES["orin_nano_jp6"].replace("VDD_IN 5832mW/5852mW", "VDD_IN 5832mW/5852mW/6010mW")
    assert parse_line(line).rails_mw["VDD_IN"] == 5832


def test_missing_rails_are_a_clear_error():
    s = parse_line(LINES["orin_nano_jp6"])
    with pytest.raises(MeterUnavailable, match="input rails"):
        module_total_mw(s, {"rule": "rail", "rails": ["POM_5V_IN"]})


def test_unlocked_gpu_clocks_detected(tmp_path):
    # sysfs devfreq layout of an AGX Orin GPU (17000000.ga10b), values in Hz
    node = tmp_path / "17000000.ga10b"
    node.mkdir()
    (node / "min_freq").write_text("306000000\n")
    (node / "max_freq").write_text("1300500000\n")
    (tmp_path / "3d00000.pcie").mkdir()  # not a GPU node
    assert unlocked_clocks(tmp_path) == ["17000000.ga10b: 306-1300 MHz"]
    (node / "min_freq").write_text("1300500000\n")  # after jetson_clocks: min == max
    assert unlocked_clocks(tmp_path) == []
