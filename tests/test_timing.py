import time
from collections import Counter
from itertools import pairwise

import pytest

from profilers.timing import balanced_orders, measure_interleaved, summarize


def test_summarize_statistics():
    stats = summarize([10.0, 11.0, 9.0, 10.0, 10.0], iterations=50, attempts=1, max_cv=0.2)
    assert stats.median_ms == 10.0 and stats.mean_ms == 10.0 and stats.repeats == 5
    assert stats.p10_ms == pytest.approx(9.4) and stats.p90_ms == pytest.approx(10.6)
    assert stats.cv == pytest.approx(0.0707, abs=1e-3) and stats.cv_ok


def test_high_cv_is_flagged():
    assert not summarize([1.0, 2.0, 1.0, 2.0], 4, 1, max_cv=0.02).cv_ok


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 6])
def test_balanced_orders_put_each_function_in_every_slot_and_after_every_other_equally(count):
    orders = balanced_orders(count)
    assert len(orders) == (2 * count if count % 2 else count)
    assert all(sorted(order) == list(range(count)) for order in orders)
    slots = Counter((slot, f) for order in orders for slot, f in enumerate(order))
    assert set(slots.values()) == {len(orders) // count} and len(slots) == count * count
    follows = Counter(pair for order in orders for pair in pairwise(order))
    assert len(follows) == count * (count - 1) and len(set(follows.values())) <= 1


@pytest.mark.timing
def test_interleaved_rounds_follow_the_balanced_orders():
    """Who ran when (timed calls only: the untimed warm call precedes each): dense, a, b rotate."""
    calls = []

    def make(name):
        return lambda: calls.append(name)

    measure_interleaved({k: make(k) for k in ("dense", "a", "b")}, warmup_s=0.0, repeat_s=0.0, repeats=6,
                        max_cv=1.0, max_attempts=1)
    timed = calls[3:][1::2]  # after the warm-up calls: (untimed, timed) pairs
    rounds = [tuple(timed[i:i + 3]) for i in range(0, 18, 3)]
    names = ("dense", "a", "b")
    assert rounds == [tuple(names[i] for i in order) for order in balanced_orders(3)]


@pytest.mark.timing
def test_interleaved_measures_real_work_in_one_run():
    def slow():
        time.sleep(0.004)

    def fast():
        time.sleep(0.001)

    stats = measure_interleaved({"slow": slow, "fast": fast}, warmup_s=0.01, repeat_s=0.02, repeats=5,
                                max_cv=1.0)
    assert stats["slow"].median_ms > stats["fast"].median_ms >= 1.0
    assert stats["slow"].repeats == 5 and stats["fast"].iterations >= 5


@pytest.mark.timing
def test_a_repeat_times_the_warm_function_not_the_switch():
    """Each function's first call after another ran is slow (cold); a repeat that fits one call
    must still time the warm call (10x effects only: host noise cannot flip them)."""
    last = [None]

    def make(name):
        def fn():
            time.sleep(0.05 if last[0] != name else 0.005)  # cold after a switch, warm otherwise
            last[0] = name
        return fn

    stats = measure_interleaved({"a": make("a"), "b": make("b")}, warmup_s=0.0, repeat_s=0.001, repeats=3,
                                max_cv=1.0, max_attempts=1)
    assert stats["a"].median_ms < 25 and stats["b"].median_ms < 25  # 5 ms warm, not 50 ms cold


def test_paired_ratio_is_exact_on_a_drifting_host_and_needs_paired_rounds():
    """The host slows 3x half-way through the run: a is 2x b in every round, so the paired ratio is
    exactly 2 with a zero-width interval, while each function's own CV is ~60%."""
    from profilers.timing import paired_ratio

    speed = [1, 1, 1, 3, 3, 3, 3]
    a = summarize([10.0 * s for s in speed], 7, 1, 0.05)
    b = summarize([5.0 * s for s in speed], 7, 1, 0.05)
    assert not a.cv_ok and paired_ratio(a, b) == (2.0, 2.0, 2.0)
    noisy = summarize([10.0, 12.0, 9.0, 30.0, 33.0, 28.0, 31.0], 7, 1, 1.0)
    ratio, low, high = paired_ratio(noisy, b)
    assert low <= ratio <= high and 1.8 <= ratio <= 2.4
    with pytest.raises(ValueError):
        paired_ratio(a, summarize([1.0, 2.0], 2, 1, 1.0))  # not the same rounds


@pytest.mark.timing
def test_together_keeps_every_function_on_the_same_rounds():
    """together=True: a noisy function makes every function re-measure, and all results come from one
    attempt with the same number of rounds (asserts structure only: no timing comparison)."""
    calls = [0]

    def noisy():
        calls[0] += 1
        time.sleep(0.004 if calls[0] % 2 else 0.0005)

    def steady():
        time.sleep(0.001)

    stats = measure_interleaved({"noisy": noisy, "steady": steady}, warmup_s=0.0, repeat_s=0.0, repeats=6,
                                max_cv=0.02, max_attempts=2, together=True)
    assert stats["noisy"].attempts == stats["steady"].attempts
    assert len(stats["noisy"].samples_ms) == len(stats["steady"].samples_ms) == 6
