"""The one retry policy: random, capped, growing delays (hcp.retry, on tenacity's waits)."""

from __future__ import annotations

import itertools

from hcp.retry import backoff_delay


def test_backoff_is_random_growing_and_capped() -> None:
    runs = [[backoff_delay(n, 0.2, 30.0) for n in range(20)] for _ in range(50)]
    assert all(0.2 <= d <= 30.0 for run in runs for d in run)
    assert {run[0] for run in runs} == {0.2}  # the first retry comes at once, at the shortest wait
    assert len({run[5] for run in runs}) > 40  # jittered: terminals do not retry in lockstep
    means = [sum(run[n] for run in runs) / len(runs) for n in range(20)]
    assert all(later > earlier for earlier, later in itertools.pairwise(means[:9]))
    assert max(run[-1] for run in runs) <= 30.0 and min(run[-1] for run in runs) >= 15.0
    assert backoff_delay(10_000, 0.2, 30.0) <= 30.0  # days offline: no overflow, still capped


def test_each_wait_lies_in_the_upper_half_of_its_ceiling() -> None:
    for attempt in range(8):
        ceiling = min(3600.0, 5.0 * 2 ** attempt)
        waits = [backoff_delay(attempt, 5.0, 3600.0) for _ in range(200)]
        assert all(max(5.0, ceiling / 2) <= w <= ceiling for w in waits)
    assert backoff_delay(3, 5.0, 1.0) == 5.0  # a cap below the first wait: the first wait
