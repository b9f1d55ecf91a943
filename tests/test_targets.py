import pytest

from hwsearch.errors import HwsearchError
from hwsearch.targets import available, load_target, validate

REQUIRED = {"jetson_orin", "jetson_orin_nano", "jetson_agx_xavier", "rtx4090_trt", "a100_trt", "h100_trt",
            "h100_torch", "cpu_onnxruntime", "cpu_torch"}


def test_shipped_targets_all_validate():
    assert REQUIRED <= set(available())
    for name in available():
        target = load_target(name)
        assert target.name == name and target.batch >= 1
        if target.power_meter == "tegrastats":
            assert target.raw["power"]["total"]["rule"] in ("rail", "sum")


def test_token_grid_rule():
    target = load_target("cpu_onnxruntime")
    grid = target.token_grid(197, 1)
    assert grid[0] == 197 and grid[-1] == 2 and grid[1] == 193


@pytest.mark.parametrize("change, needle", [
    ({"backend": "openvino"}, "'backend' must be one of"),
    ({"batch_sizes": [0]}, "'batch_sizes' is invalid"),
    ({"timing": {"warmup_s": 1}}, "'timing' is invalid"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"threads": "two"}, "'threads' has the wrong type"),
])
def test_bad_target_names_the_key(change, needle):
    data = dict(load_target("cpu_onnxruntime").raw, **change)
    with pytest.raises(HwsearchError, match=needle):
        validate(data, "t.yaml")


def test_missing_key_and_malformed_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HWSEARCH_TARGETS", str(tmp_path))
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(HwsearchError, match="malformed YAML"):
        load_target("broken")
    (tmp_path / "partial.yaml").write_text("name: partial\nbackend: torch\n")
    with pytest.raises(HwsearchError, match="missing key 'host'"):
        load_target("partial")
    with pytest.raises(HwsearchError, match="unknown target"):
        load_target("nope")
