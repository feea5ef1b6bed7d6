"""The retry policy: bounded, jittered backoff; Retry-After obeyed within a cap; configuration."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from monogres_oci.errors import UsageError
from monogres_oci.oci.retry import RetryPolicy, parse_retry_after, policy_from


def test_waits_double_from_the_first_and_stop_growing_at_the_cap() -> None:
    policy = RetryPolicy(first_wait=0.25, max_wait=8.0)
    rng = random.Random(7)
    for attempt, full in ((1, 0.25), (2, 0.5), (3, 1.0), (6, 8.0), (12, 8.0)):
        waits = [policy.wait(attempt, rand=rng) for _ in range(200)]
        # Half of each wait is fixed, half random: never below half, never above the full wait.
        assert full / 2 <= min(waits) and max(waits) <= full
        assert max(waits) - min(waits) > full / 4, "no jitter"


def test_retry_after_is_obeyed_up_to_its_cap() -> None:
    policy = RetryPolicy(max_retry_after=60.0)
    assert policy.wait(1, retry_after=7.0) == 7.0
    assert policy.wait(1, retry_after=3600.0) == 60.0
    assert policy.wait(1, retry_after=-5.0) == 0.0


def test_attempts_and_time_are_both_bounded() -> None:
    policy = RetryPolicy(retries=2, budget=10.0)
    assert policy.attempts == 3
    assert policy.allows(1, elapsed=0.0, wait=1.0)
    assert policy.allows(2, elapsed=0.0, wait=1.0)
    assert not policy.allows(3, elapsed=0.0, wait=1.0)  # out of attempts
    assert not policy.allows(1, elapsed=9.5, wait=1.0)  # the wait would pass the budget


def test_retry_after_header_as_seconds_or_http_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(" 3 ") == 3.0
    now = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
    earlier = format_datetime(datetime(2026, 12, 6, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after(earlier, now=now) == 0.0
    for unreadable in (None, "", "soon", "-1", "1.5"):
        assert parse_retry_after(unreadable) is None


def test_configuration_from_the_flag_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MONOGRES_RETRIES", raising=False)
    assert policy_from().retries == 5
    monkeypatch.setenv("MONOGRES_RETRIES", "2")
    assert policy_from().retries == 2
    assert policy_from(0).retries == 0  # the flag wins
    monkeypatch.setenv("MONOGRES_RETRIES", "many")
    with pytest.raises(UsageError, match="MONOGRES_RETRIES='many' is not a whole number"):
        policy_from()
    with pytest.raises(UsageError, match="--retries -1"):
        policy_from(-1)
