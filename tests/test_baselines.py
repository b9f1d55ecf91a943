import pytest
from conftest import make_vit

from hwsearch.cost import FlopsCost
from hwsearch.schedule import Schedule
from hwsearch.search.baselines import METHODS, evit, solve, solve_method, tome, tome_every2, uniform


@pytest.mark.parametrize("kind", ["uniform", "evit", "tome", "tome-every2"])
def test_solved_baselines_hit_budget_and_are_valid(kind):
    vit = make_vit("deit_small", depth=12)  # 37 tokens, 12 blocks
    cost = FlopsCost.from_model(vit)
    goal = 0.7 * cost.dense_cost(12)
    counts = solve(kind, cost, goal, 12, 1, start=1)
    assert counts[0] == (37, 37)
    assert cost.cost(counts) == pytest.approx(goal, rel=0.03)
    Schedule.from_counts("m", 96, 37, 1, counts)  # validates monotone counts


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_is_solved_on_its_own_merge_operators_cost(method):
    """schedules_vs_uniform's hand rows: each method's shape, on the GMACs of its merge operator."""
    vit = make_vit("deit_small", depth=12)
    costs = {m: FlopsCost.from_model(vit, m) for m in ("rank", "similarity")}
    goal = 0.7 * costs["rank"].dense_cost(12)
    counts, merging = solve_method(method, costs.__getitem__, goal, 12, 1)
    assert merging == METHODS[method][1] and costs[merging].cost(counts) == pytest.approx(goal, rel=0.03)
    Schedule.from_counts("m", 96, 37, 1, counts, merging=merging)


def test_builders_shapes():
    assert tome(17, 1, 4, 2.0) == [(17, 17), (17, 15), (15, 13), (13, 11)]
    assert all(p == m for p, m in evit(17, 1, 12, 0.5))
    assert uniform(17, 1, 3, 0.5)[1] == (13, 9)
    # every second block merges 2r (fractional: the first merging blocks one more); the others keep all
    assert tome_every2(17, 1, 5, 1.5) == [(17, 17), (17, 14), (14, 14), (14, 11), (11, 11)]
    assert tome_every2(17, 1, 4, 1.25, 0) == [(17, 14), (14, 14), (14, 12), (12, 12)]
    assert tome(257, 1, 12, 18.5, 0, every=1) == tome(257, 1, 12, 18.5, 0)


def test_tome_caps_r_at_half_the_patches_as_tome_does():
    """r = 30 from block 0 on 257 tokens: blocks merge 30 until half the patches is less, then half
    (ToMe's ``min(r, (t - protected) // 2)``); every block stays within similarity merging's limit."""
    from hwsearch.schedule import min_merge_kept
    from hwsearch.search.baselines import tome

    counts = tome(257, 1, 12, 30.0, 0)
    entering = 257
    for p, m in counts:
        assert p == entering and entering - m == min(30, (entering - 1) // 2)
        assert m >= min_merge_kept(p, 1, "similarity")
        entering = m


def test_solved_tome_reaches_its_fastest_schedules():
    """r above patches / blocks still saves (later blocks merge their cap instead of everything): the
    solver reaches such budgets too, as the warm start for a deep budget must."""
    vit = make_vit("deit_small", depth=12)  # 37 tokens, 12 blocks: patches / blocks = 3
    cost = FlopsCost.from_model(vit)
    goal = cost.cost(tome(37, 1, 12, 5.0, 0))
    assert goal < cost.cost(tome(37, 1, 12, 3.0, 0))
    assert cost.cost(solve("tome", cost, goal, 12, 1, start=0)) == pytest.approx(goal, rel=0.01)


def test_tome_r_finds_the_r_of_a_tome_schedule_and_nothing_else():
    """vs_tome matches a searched schedule that is ToMe's own by identity: tome_r inverts tome."""
    from hwsearch.search.baselines import tome_r

    for r in (10.75, 15.25, 16 + 9 / 12, 21.0):  # at 21 the cap makes 20 11/12 build the same schedule
        found = tome_r(tome(257, 1, 12, r, 0), 257, 1, 12)
        assert found is not None and found <= r and tome(257, 1, 12, found, 0) == tome(257, 1, 12, r, 0)
    assert tome_r(tome(257, 1, 12, 15.25, 0), 257, 1, 12) == pytest.approx(15.25)
    assert tome_r([list(c) for c in tome(257, 1, 12, 11.25, 0)], 257, 1, 12) == pytest.approx(11.25)  # YAML lists
    not_tome = [(257, 221), (221, 196), (196, 174), (174, 162)] + tome(162, 1, 8, 15.0, 0)
    assert tome_r(not_tome, 257, 1, 12) is None
    pruned = [(p - 2, m - 2) if i == 3 else (p, m) for i, (p, m) in enumerate(tome(257, 1, 12, 11.0, 0))]
    assert tome_r(pruned, 257, 1, 12) is None
