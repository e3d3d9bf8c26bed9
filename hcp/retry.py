"""One retry policy for every loop that waits before trying again.

MQTT reconnects (``sync/mqtt.py``), serial reopens (``device/serial_port.py``),
the collector's commit retries (``collector/service.py``) and the notification
and upstream outboxes (``collector/notify.py``, ``collector/upstream.py``) all
wait :func:`backoff_delay`: random, capped, growing, and back to the shortest
once something succeeded (each loop counts its failures and resets the count).

The arithmetic is tenacity's wait strategies, combined as "equal jitter": half
of the exponential ceiling is fixed and half is random, so terminals of a hall
that lost the broker together do not all come back in the same instant, yet no
wait is much shorter than the ceiling; however long the outage, no wait exceeds
the cap.
"""

from __future__ import annotations

from tenacity import RetryCallState, wait_exponential, wait_random_exponential


def backoff_delay(attempt: int, first_s: float, cap_s: float) -> float:
    """The wait before retry ``attempt`` (0 = the first retry after a failure), within ``[first_s, cap_s]``.

    The ceiling is ``first_s * 2**attempt``, capped at ``cap_s``; the wait is
    drawn from its upper half and never below ``first_s``.
    """
    half_first, half_cap = first_s / 2, max(cap_s, first_s) / 2
    wait = (wait_exponential(multiplier=half_first, max=half_cap)
            + wait_random_exponential(multiplier=half_first, max=half_cap))
    state = RetryCallState(None, None, (), {})  # tenacity's waits read only the attempt number
    state.attempt_number = attempt + 1
    return min(max(first_s, wait(state)), max(cap_s, first_s))
