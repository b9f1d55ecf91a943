import pytest

from hwsearch.errors import HwsearchError
from hwsearch.targets import available, load_target, validate

REQUIRED = {"jetson_orin", "jetson_orin_nano", "jetson_agx_xavier", "rtx4090_trt", "a100_trt", "h100_trt",
            "h100_torch", "cpu_onnxruntime", "cpu_torch", "cpu_onnxruntime_b1", "jetson_orin_b1", "jetson_orin_nano_b1"}


def test_shipped_targets_all_validate():
    assert REQUIRED <= set(available())
    for name in available():
        target = load_target(name)
        assert target.name == name and target.batch >= 1
        if target.power_meter == "tegrastats":
            assert target.raw["power"]["total"]["rule"] in ("rail", "sum")


@pytest.mark.parametrize("board", ["jetson_orin", "jetson_orin_nano"])
def test_batch1_board_targets_differ_only_in_batch(board):
    """Edge deployments run batch 1: the _b1 twin measures the same board the same way, at batch 1."""
    base, b1 = load_target(board).raw, load_target(f"{board}_b1").raw
    assert b1["batch_sizes"] == [1] and base["batch_sizes"] != [1]
    same = {k for k in base if k not in ("name", "description", "batch_sizes")}
    assert {k: b1[k] for k in same} == {k: base[k] for k in same}


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
    ({"timing": {"warmup_s": 1, "repeat_s": 1, "repeats": 1, "max_cv": 0.05}}, "'timing' is invalid"),
    ({"timing": {"warmup_s": 1, "repeat_s": 1, "repeats": 7, "max_cv": 0.05, "max_attempts": 0}},
     "'timing' is invalid"),
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


def test_target_name_must_be_its_file_stem_and_a_plain_folder_name(tmp_path, monkeypatch):
    import yaml

    data = dict(load_target("cpu_onnxruntime").raw)
    monkeypatch.setenv("HWSEARCH_TARGETS", str(tmp_path))
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({**data, "name": "cpu_onnxruntime"}))
    with pytest.raises(HwsearchError, match="must equal the file name 'mine'"):
        load_target("mine")
    for bad in ("../cpu_onnxruntime", "a/b", "", ".hidden"):
        with pytest.raises(HwsearchError, match="not a plain name"):
            load_target(bad)


def test_timing_overrides_cannot_switch_the_noise_bounds_off():
    from profilers.runner import timing_protocol

    timing = load_target("cpu_onnxruntime").timing
    assert timing_protocol(timing, {"repeats": 3})["repeats"] == 3
    for override in ({"repeats": 2}, {"max_attempts": 0}):
        with pytest.raises(ValueError, match="must be at least"):
            timing_protocol(timing, override)


def test_write_json_refuses_nan(tmp_path):
    from hwsearch.io import write_json

    with pytest.raises(HwsearchError, match="NaN or infinity"):
        write_json(tmp_path / "x.json", {"median_ms": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_names_are_plain_and_storage_passwords_are_not_printed():
    from hwsearch.io import redact, safe_name

    assert safe_name("latency12.5-energy30", "--name") == "latency12.5-energy30"
    for bad in ("../x", "a/b", "", "..", "x" * 101):
        with pytest.raises(HwsearchError, match="not a plain name"):
            safe_name(bad, "--name")
    assert redact("postgresql://me:s3cret@db:5432/hw") == "postgresql://me:***@db:5432/hw"
    assert redact("results/studies/a.journal") == "results/studies/a.journal"
