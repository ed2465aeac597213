"""The retry policy: bounded tries, full-jitter backoff, Retry-After in seconds or as a date."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nublado.images.retry import RetryPolicy, parse_retry_after

NOW = datetime(2026, 12, 6, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Sun, 06 Dec 2026 09:00:30 GMT", 30.0),
        ("Sun, 06 Dec 2026 08:00:00 GMT", 0.0),
        ("-3", None),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_delay_backoff_jitter_and_caps() -> None:
    policy = RetryPolicy(
        attempts=5, base_delay=1.0, max_delay=5.0, max_retry_after=30.0, rand=lambda: 0.25
    )

    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [0.25, 0.5, 1.0, 1.25]
    assert policy.delay(1, retry_after=12.0) == 12.0
    assert policy.delay(1, retry_after=3600.0) == 30.0
    assert [policy.should_retry(n) for n in (1, 4, 5)] == [True, True, False]


def test_at_least_one_attempt() -> None:
    with pytest.raises(ValueError, match="at least one attempt, not 0"):
        RetryPolicy(attempts=0)
