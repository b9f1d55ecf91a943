import itertools

import pytest

from hwsearch.schedule import Schedule
from hwsearch.search.local import measured_search, shift

COUNTS = [(197, 197), (180, 160), (150, 130), (120, 100), (90, 70)]


def tokens(counts):
    """The tokens a schedule processes: the fake measurements' latency."""
    return float(sum(p + m for p, m in counts))


def proportional(dense, speeds=None, calls=None):
    """A fake ``measure_fn``: latency proportional to the tokens processed, ``dense`` alongside, times
    the host's speed of that run (``speeds``: an iterator; 1 without); each schedule measured is
    appended to ``calls``."""
    from hwsearch.profiling.measure import Measurement

    def measure(target, counts):
        if calls is not None:
            calls.append(list(counts))
        speed = next(speeds) if speeds is not None else 1.0
        stats = {"dense": tokens(dense) * speed, "compressed": tokens(counts) * speed}
        return {k: Measurement(v, v, v, v, 0.0, 3, 3, 1, True, samples_ms=[v] * 3, backend="fake")
                for k, v in stats.items()}

    return measure


def test_shift_keeps_schedules_valid_and_reaches_the_ends():
    for t in (-1.0, -0.3, 0.0, 0.4, 1.0):
        Schedule.from_counts("m", 224, 197, 1, shift(COUNTS, t, 197, 2))
    assert shift(COUNTS, 0.0, 197, 2) == COUNTS
    assert shift(COUNTS, 1.0, 197, 2) == [(197, 197)] * 5
    heavy = shift(COUNTS, -1.0, 197, 2)
    assert all(a <= b for x, y in zip(heavy, COUNTS, strict=True) for a, b in zip(x, y, strict=True))
    assert heavy[-1] == (2, 2)


def test_shift_keeps_the_shape_a_merge_only_schedule_stays_merge_only():
    merge_only = [(197, 197), (197, 181), (181, 165), (165, 149), (149, 133)]
    for t in (-1.0, -0.4, 0.3):
        shifted = shift(merge_only, t, 197, 2, merging="similarity")
        assert all(p == (197 if i == 0 else shifted[i - 1][1]) for i, (p, _) in enumerate(shifted))  # no pruning
        Schedule.from_counts("m", 224, 197, 1, shifted, merging="similarity")
    assert shift(merge_only, -0.4, 197, 2)[1] == (197, 197 - round(16 * 2.2))  # 2.2 x the removed tokens


def test_bisection_lands_in_band_on_a_monotone_latency():
    def latency(counts):  # a deterministic monotone stand-in for a measurement: tokens processed
        return float(sum(p + m for p, m in counts))

    budget = 0.8 * latency(COUNTS)
    counts, ms = measured_search(COUNTS, latency, budget, 197, 2, steps=8, log=lambda m: None)
    assert 0.90 <= ms / budget <= 1.03 and ms == latency(counts)


def test_a_small_miss_is_mended_by_a_small_first_step_from_the_dense_cost():
    """A schedule 6% over budget, latency = tokens processed: with the dense cost known the first step
    is the guess from the measured speedup (in band at once: aiming at 0.98 x budget is a 7.5% cut,
    about 18% more removed tokens), where halving [-1, 1] first tried 2.5x every decision's removed
    tokens."""
    def latency(counts):
        return float(sum(p + m for p, m in counts))

    steps, full = [], latency([(197, 197)] * 5)
    budget = latency(COUNTS) / 1.06
    counts, ms = measured_search(COUNTS, latency, budget, 197, 2, steps=6, log=steps.append, full=full)
    assert 0.90 <= ms / budget <= 1.03 and len(steps) == 1
    t = float(steps[0].split("shift ")[1].split(" ")[0])
    assert -0.065 < t < 0  # at most ~20% more removed tokens (MAX_GROWTH 3 x 0.065)
    halving: list[str] = []
    measured_search(COUNTS, latency, budget, 197, 2, steps=6, log=halving.append)
    assert "shift -0.500" in halving[0]  # without the dense cost: the bracket's middle


def test_a_guess_that_falls_just_short_is_followed_by_another_small_guess_not_a_jump():
    """Measured 0.934 x budget (under SETTLED), the first guess reads 0.948 (noise: 3% low). Bisecting
    [guess, 1] next tried half way to dense (1.36 x budget on batch 8); the linear model from the
    latest measurement takes a small step again and lands in SETTLED."""
    from hwsearch.search.local import SETTLED

    bias = iter([0.97] + [1.0] * 10)  # the first guess reads 3% low

    def measure(counts):
        return tokens(counts) * next(bias)

    full = tokens([(197, 197)] * 5)
    budget = tokens(COUNTS) / 0.934
    steps: list[str] = []
    counts, ms = measured_search(COUNTS, measure, budget, 197, 2, steps=6, log=steps.append, full=full,
                                 first=tokens(COUNTS))
    ratios = [float(line.split("= ")[1].split(" x")[0]) for line in steps]
    assert ratios[0] < SETTLED[0] and all(r < 1.03 for r in ratios)  # no jump far over the budget
    assert len(steps) == 2 and SETTLED[0] <= ms / budget <= SETTLED[1]


def test_optimize_latency_check_runs_the_local_search_until_in_band(capsys):
    """optimize's measured check: the first measurement misses the band, the local search moves the
    schedule until a (deterministic, fake) measurement lands in it, and that measurement is kept."""
    from conftest import make_vit

    from hwsearch.cost.base import LatencyBudget
    from hwsearch.model.vit import CompressedViT
    from hwsearch.search.latency_check import check_latency
    from hwsearch.targets import load_target

    model = CompressedViT(make_vit("deit_tiny"))  # 17 tokens, 4 blocks
    start = [(17, 17), (17, 15), (13, 11), (9, 7)]

    calls = []
    fake_measure = proportional([(17, 17)] * 4, calls=calls)  # latency proportional to the tokens processed

    budget = 0.75 * tokens(start)  # the searched schedule measures 1.33 x budget: outside [0.90, 1.03]
    target = load_target("cpu_onnxruntime")
    check = check_latency([LatencyBudget(target, budget)], model, start, refine=6, compress_from=1,
                          measure_fn=fake_measure)
    counts, measured = check.counts, check.measured[target.name]
    assert len(calls) >= 2 and counts != start
    assert 0.90 <= measured["compressed"].median_ms / budget <= 1.03
    assert measured["compressed"].median_ms == tokens(counts)  # the kept measurement is of the kept schedule
    assert "measured local search around the schedule" in capsys.readouterr().out
    Schedule.from_counts("m", 64, 17, 1, counts)


def test_a_missed_budget_is_searched_again_on_the_budget_the_measurement_allows(capsys):
    """optimize's measured check with the search: the first schedule measures 1.33 x budget, the
    search runs again on budget / 1.33 (the ratio measured), and its schedule, in the band, is kept
    without a local search; when the second schedule still misses, the local search starts from it."""
    from conftest import make_vit

    from hwsearch.cost.base import LatencyBudget
    from hwsearch.model.vit import CompressedViT
    from hwsearch.search.latency_check import check_latency
    from hwsearch.targets import load_target

    model = CompressedViT(make_vit("deit_tiny"))
    start = [(17, 17), (17, 15), (13, 11), (9, 7)]
    fake_measure = proportional([(17, 17)] * 4)
    budget = 0.75 * tokens(start)
    asked = []
    on_budget = [(17, 13), (13, 9), (9, 7), (7, 5)]  # 1.006 x budget
    target = load_target("cpu_onnxruntime")
    check = check_latency([LatencyBudget(target, budget)], model, start, refine=6, compress_from=0,
                          measure_fn=fake_measure, search_again=lambda r: asked.append(r) or on_budget)
    assert asked == [pytest.approx(1 / 0.75)] and check.counts == on_budget
    out = capsys.readouterr().out
    assert "the search again on the budget / 1.333" in out and "local search" not in out

    still_over = [(17, 17), (17, 15), (13, 11), (9, 5)]  # the search's error again: 1.31 x budget
    check = check_latency([LatencyBudget(target, budget)], model, start, refine=6, compress_from=0,
                          measure_fn=fake_measure, search_again=lambda r: still_over)
    assert 0.90 <= tokens(check.counts) / budget <= 1.03
    assert "measured local search around the schedule" in capsys.readouterr().out


def test_latency_check_judges_candidates_at_the_first_runs_host_speed(capsys):
    """The host changes speed between measurements (x1, x0.7, x1.4, ...): the raw medians of later runs
    would move the local search by the drift; their paired ratio to dense, at the first run's dense
    latency, sees only the schedule. The kept schedule's drift-free latency lands in the band."""
    from conftest import make_vit

    from hwsearch.cost.base import LatencyBudget
    from hwsearch.model.vit import CompressedViT
    from hwsearch.search.latency_check import check_latency
    from hwsearch.search.local import BAND
    from hwsearch.targets import load_target

    model = CompressedViT(make_vit("deit_tiny"))
    start = [(17, 17), (17, 15), (13, 11), (9, 7)]

    drifting_measure = proportional([(17, 17)] * 4, speeds=iter([1.0, 0.7, 1.4, 0.6, 1.5, 0.8, 1.3, 0.9] * 2))

    budget = 0.75 * tokens(start)
    target = load_target("cpu_onnxruntime")
    check = check_latency([LatencyBudget(target, budget)], model, start, refine=6, compress_from=1,
                          measure_fn=drifting_measure)
    counts = check.counts
    assert counts != start and BAND[0] <= tokens(counts) / budget <= BAND[1]
    assert check.at_first_speed[target.name] == pytest.approx(tokens(counts))  # first run's speed: x1.0
    assert check.first_dense[target.name] == tokens([(17, 17)] * 4)
    out = capsys.readouterr().out
    assert "at the first run's host speed" in out and "(paired over 3 rounds, 95% " in out


def test_a_speedup_budget_is_judged_against_dense_measured_in_the_checks_own_run(capsys):
    """--speedup S: the budget is dense / S with dense from the check's first run, not from the run in
    which the user timed dense (here the host is 30% faster by the time the check runs)."""
    from conftest import make_vit

    from hwsearch.cost.base import LatencyBudget
    from hwsearch.model.vit import CompressedViT
    from hwsearch.search.latency_check import check_latency, measured_record
    from hwsearch.search.local import SETTLED
    from hwsearch.targets import load_target

    model = CompressedViT(make_vit("deit_tiny"))
    start = [(17, 17), (17, 15), (13, 11), (9, 7)]
    dense = [(17, 17)] * 4

    faster_host = proportional(dense, speeds=itertools.repeat(0.7))

    speedup = 1.25  # the searched schedule runs at 1.31 x dense's speed: 0.95 x budget, in SETTLED
    target = load_target("cpu_onnxruntime")
    check = check_latency([LatencyBudget(target, speedup=speedup)], model, start, refine=6, compress_from=1,
                          measure_fn=faster_host)
    assert check.counts == start  # in the band by the paired speedup; an absolute budget of the slower host's
    assert check.budget_ms[target.name] == pytest.approx(0.7 * tokens(dense) / speedup)  # dense / 1.25 would not be
    assert SETTLED[0] <= tokens(start) / tokens(dense) * speedup <= SETTLED[1]
    assert measured_record(check)["budget_ms"] == pytest.approx(0.7 * tokens(dense) / speedup)


def test_a_measurement_whose_interval_reaches_into_the_band_is_measured_again_not_moved(capsys):
    """The first run reads 1.033 x budget with a 95% interval reaching below 1.03: the check measures
    the same schedule again and pools the rounds (in band then) instead of moving the schedule."""
    from conftest import make_vit

    from hwsearch.cost.base import LatencyBudget
    from hwsearch.model.vit import CompressedViT
    from hwsearch.profiling.measure import Measurement
    from hwsearch.search.latency_check import check_latency
    from hwsearch.targets import load_target

    model = CompressedViT(make_vit("deit_tiny"))
    start = [(17, 17), (17, 15), (13, 11), (9, 7)]
    runs = iter([[60.0, 62.0, 63.0, 62.4, 70.0, 55.0, 61.9], [59.0, 60.0, 61.0, 60.0, 60.0, 58.0, 61.0]])
    calls = []

    def noisy_measure(target, counts):
        calls.append(list(counts))
        samples = {"dense": [100.0] * 7, "compressed": next(runs)}
        return {k: Measurement(sorted(v)[3], min(v), max(v), sum(v) / 7, 0.04, 7, 7, 1, True, samples_ms=v,
                               backend="fake") for k, v in samples.items()}

    target = load_target("cpu_onnxruntime")
    check = check_latency([LatencyBudget(target, 60.0)], model, start, refine=6, compress_from=1,
                          measure_fn=noisy_measure)
    counts, measured = check.counts, check.measured
    out = capsys.readouterr().out
    assert counts == start and len(calls) == 2 and calls[1] == start  # measured again, not moved
    assert measured[target.name]["compressed"].repeats == 14 and "rounds pooled" in out
    assert "local search" not in out


def test_a_schedule_in_the_band_that_leaves_budget_unused_is_moved_up(capsys):
    """Measured 0.92 x budget: within [0.90, 1.03] but 8% of the budget unused; the check moves the
    schedule towards fewer removed tokens until it uses at least 95% of the budget."""
    from conftest import make_vit

    from hwsearch.cost.base import LatencyBudget
    from hwsearch.model.vit import CompressedViT
    from hwsearch.search.latency_check import check_latency
    from hwsearch.search.local import BAND, SETTLED
    from hwsearch.targets import load_target

    model = CompressedViT(make_vit("deit_tiny", img_size=224, depth=5))  # 197 tokens: fine steps
    start = COUNTS
    fake_measure = proportional([(197, 197)] * 5)

    budget = tokens(start) / 0.92
    assert BAND[0] <= tokens(start) / budget < SETTLED[0]
    target = load_target("cpu_onnxruntime")
    check = check_latency([LatencyBudget(target, budget)], model, start, refine=6, compress_from=1,
                          measure_fn=fake_measure)
    assert check.counts != start and tokens(check.counts) > tokens(start)
    assert SETTLED[0] <= tokens(check.counts) / budget <= SETTLED[1]
    assert "measured local search" in capsys.readouterr().out


def test_a_first_reading_outside_the_band_is_confirmed_by_a_second_run_before_the_search_moves(capsys):
    """One run reads 1.042 x budget with a tight interval (its bias, not its noise: on this VM the paired
    ratio moves 4-15% between runs), the next 0.992: pooled, the schedule is in the band and kept, where
    acting on the first run alone searched again on a budget 4% too deep."""
    from conftest import make_vit

    from hwsearch.cost.base import LatencyBudget
    from hwsearch.model.vit import CompressedViT
    from hwsearch.profiling.measure import Measurement
    from hwsearch.search.latency_check import check_latency
    from hwsearch.targets import load_target

    model = CompressedViT(make_vit("deit_tiny"))
    start = [(17, 17), (17, 15), (13, 11), (9, 7)]
    runs = iter([[62.4, 62.5, 62.5, 62.6, 62.5, 62.4, 62.6], [59.5, 59.6, 59.4, 59.5, 59.5, 59.6, 59.4]])
    asked: list[float] = []

    def biased_runs(target, counts):
        samples = {"dense": [100.0] * 7, "compressed": next(runs)}
        return {k: Measurement(sorted(v)[3], min(v), max(v), sum(v) / 7, 0.001, 7, 7, 1, True, samples_ms=v,
                               backend="fake") for k, v in samples.items()}

    target = load_target("cpu_onnxruntime")
    check = check_latency([LatencyBudget(target, 60.0)], model, start, refine=6, compress_from=1,
                          measure_fn=biased_runs, search_again=lambda r: asked.append(r) or start)
    out = capsys.readouterr().out
    assert check.counts == start and asked == []  # neither searched again nor moved
    assert check.measured[target.name]["compressed"].repeats == 14 and "is one run's reading, outside" in out
    assert "local search" not in out
