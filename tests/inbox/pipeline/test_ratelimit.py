"""RateLimits on its own: the waits a vendor announces are bounded, so a connector refused for too long shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inbox.connector import RateBudget
from inbox.pipeline.ratelimit import MAX_WAIT, RateLimits

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def limits() -> RateLimits:
    return RateLimits("acme-x", 60.0, jitter=lambda low, high: high, wall=lambda: 1_000_000.0)


def test_an_announced_reset_a_day_away_waits_15_minutes_and_a_refusal_then_is_too_long() -> None:
    rate = limits()
    wait = rate.refused(NOW, 86_400.0)
    assert wait == MAX_WAIT + 2.0
    assert not rate.too_long()  # one refusal, however far its reset: X's routine window is 15 minutes
    rate.refused(NOW + timedelta(seconds=wait), 86_400.0 - wait)
    assert rate.too_long()  # still refused a quarter of an hour later: the admins are told


def test_a_reset_within_the_tolerance_is_waited_for_and_not_too_long() -> None:
    rate = limits()
    assert rate.refused(NOW, 120.0) == 122.0
    assert not rate.too_long()


def test_a_budget_whose_reset_is_centuries_away_paces_polls_15_minutes_apart_at_most() -> None:
    rate = limits()
    # A reset in milliseconds read as epoch seconds: about 54,000 years ahead.
    budget = RateBudget(remaining=0, reset_at=1.7e12)
    assert rate.pace(60.0, [budget]) == MAX_WAIT + 2.0  # the reset (bounded), then a second or two
    assert rate.pace(60.0, [RateBudget(remaining=2, reset_at=1_000_000.0 + 1e9)]) == MAX_WAIT
