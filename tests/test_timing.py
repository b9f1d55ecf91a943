import time

import pytest

from profilers.timing import measure_interleaved, summarize


def test_summarize_statistics():
    stats = summarize([10.0, 11.0, 9.0, 10.0, 10.0], iterations=50, attempts=1, max_cv=0.2)
    assert stats.median_ms == 10.0 and stats.mean_ms == 10.0 and stats.repeats == 5
    assert stats.p10_ms == pytest.approx(9.4) and stats.p90_ms == pytest.approx(10.6)
    assert stats.cv == pytest.approx(0.0707, abs=1e-3) and stats.cv_ok


def test_high_cv_is_flagged():
    assert not summarize([1.0, 2.0, 1.0, 2.0], 4, 1, max_cv=0.02).cv_ok


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
