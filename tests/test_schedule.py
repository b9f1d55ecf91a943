import pytest

from hwsearch.errors import HwsearchError
from hwsearch.schedule import Schedule, load


def make(counts=((17, 17), (13, 9), (9, 9))):
    return Schedule.from_counts("deit_tiny_patch16_224", 64, 17, 1, list(counts),
                                budget={"kind": "flops_ratio", "value": 0.7}, predicted={"gmacs": 0.1})


def test_yaml_round_trip(tmp_path):
    path = make().save(tmp_path / "s.yaml")
    again = load(path)
    assert again == make()
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


@pytest.mark.parametrize("counts", [((17, 18),), ((13, 14),), ((13, 9), (10, 9)), ((1, 1),)])
def test_invalid_counts_refused(counts):
    with pytest.raises(HwsearchError):
        make(counts)


@pytest.mark.parametrize("text", ["blocks: [[1, 2]", "just a string", "model: x\nimg_size: 64\n",
                                  "model: x\nimg_size: 64\nnum_tokens: 17\nnum_prefix: 1\nblocks: [[17, 'a']]\n"])
def test_corrupt_yaml_is_one_clear_error(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(HwsearchError) as info:
        load(path)
    assert "\n" not in str(info.value)


def test_schedule_for_other_model_refused():
    from conftest import make_vit

    from hwsearch import apply_schedule

    vit = make_vit("deit_small")  # 37 tokens, 3 blocks
    with pytest.raises(HwsearchError, match="does not fit"):
        apply_schedule(vit, make())


@pytest.mark.parametrize("grid", [None, list(range(257, 1, -4))])
def test_random_schedules_respect_the_similarity_merge_cap(grid):
    """``fit --measure`` draws whole models with the search's merge operator; similarity merging removes at
    most a block's A half, and a draw past it (block 3: 37 of 74) stopped ``hwsearch fit`` on DINOv2."""
    from hwsearch.schedule import min_merge_kept, random_schedules

    schedules = random_schedules(257, 1, 12, 60, seed=0, start=0, grid=grid, merging="similarity")
    heavy = [m for s in schedules for p, m in s if m == min_merge_kept(p, 1, "similarity")]
    assert heavy  # the heavy end of the list reaches the cap, so the test would see a draw past it
    for counts in schedules:
        assert all(p >= m >= min_merge_kept(p, 1, "similarity") for p, m in counts)
