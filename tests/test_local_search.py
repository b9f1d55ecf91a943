from hwsearch.schedule import Schedule
from hwsearch.search.local import measured_search, shift

COUNTS = [(197, 197), (180, 160), (150, 130), (120, 100), (90, 70)]


def test_shift_keeps_schedules_valid_and_reaches_the_ends():
    for t in (-1.0, -0.3, 0.0, 0.4, 1.0):
        Schedule.from_counts("m", 224, 197, 1, shift(COUNTS, t, 197, 2))
    assert shift(COUNTS, 0.0, 197, 2) == COUNTS
    assert shift(COUNTS, 1.0, 197, 2) == [(197, 197)] * 5
    assert shift(COUNTS, -1.0, 197, 2)[1:] == [(2, 2)] * 4


def test_bisection_lands_in_band_on_a_monotone_latency():
    def latency(counts):  # a deterministic monotone stand-in for a measurement: tokens processed
        return float(sum(p + m for p, m in counts))

    budget = 0.8 * latency(COUNTS)
    counts, ms = measured_search(COUNTS, latency, budget, 197, 2, steps=8, log=lambda m: None)
    assert 0.90 <= ms / budget <= 1.03 and ms == latency(counts)
