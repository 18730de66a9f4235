"""Tests for inbox.sla: states, boundaries, business hours (nights, weekends, holidays, DST) and policies."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox.sla import (
    BusinessHours,
    ClockKind,
    SlaClock,
    SlaPolicies,
    SlaPolicy,
    SlaState,
    evaluate,
)

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS = frozenset(range(5))
POST = datetime(2024, 6, 4, 12, 0, tzinfo=UTC)  # the platform's timestamp of the post


def office(tz: ZoneInfo = PARIS, **kwargs: object) -> BusinessHours:
    """09:00-18:00 Monday to Friday, the usual office."""
    params: dict[str, object] = {"timezone": tz, "start": time(9), "end": time(18), "days": WEEKDAYS}
    params.update(kwargs)
    return BusinessHours(**params)  # type: ignore[arg-type]


def paris(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=PARIS, fold=fold)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def at(minutes: float) -> datetime:
    return POST + timedelta(minutes=minutes)


# --- states without business hours -------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "state"),
    [
        (0, SlaState.OK),
        (19, SlaState.OK),
        (20, SlaState.WARNING),  # exactly warn_at
        (21, SlaState.WARNING),
        (29, SlaState.WARNING),
        (30, SlaState.BREACHED),  # exactly due_at
        (31, SlaState.BREACHED),
    ],
)
def test_running_states(minutes: int, state: SlaState) -> None:
    clock = evaluate(POST, None, SlaPolicy(), at(minutes))
    assert clock.state is state
    assert clock.minutes_left == pytest.approx(30 - minutes)
    assert clock.minutes_waited == pytest.approx(minutes)
    assert clock.responded_at is None


def test_deadlines_are_counted_from_the_platform_timestamp() -> None:
    clock = evaluate(POST, None, SlaPolicy(), at(1))
    assert clock.started_at == POST
    assert clock.warn_at == at(20)
    assert clock.due_at == at(30)


def test_minutes_left_sign() -> None:
    assert evaluate(POST, None, SlaPolicy(), at(10)).minutes_left > 0
    assert evaluate(POST, None, SlaPolicy(), at(30)).minutes_left == 0
    assert evaluate(POST, None, SlaPolicy(), at(45)).minutes_left == pytest.approx(-15)


def test_ingest_lag_is_breached_on_first_evaluation() -> None:
    # We only polled the post 31 minutes after it was published: the customer has waited that long.
    clock = evaluate(POST, None, SlaPolicy(), now=at(31))
    assert clock.state is SlaState.BREACHED
    assert clock.minutes_waited == pytest.approx(31)
    assert clock.minutes_left == pytest.approx(-1)


@pytest.mark.parametrize(
    ("response_minute", "state", "margin"),
    [
        (5, SlaState.MET, 25),
        (30, SlaState.MET, 0),  # a response exactly at due_at is met
        (30.0001, SlaState.MISSED, -0.0001),
        (42, SlaState.MISSED, -12),
    ],
)
def test_settled_states(response_minute: float, state: SlaState, margin: float) -> None:
    # `now` long afterwards: a response settles the verdict and the numbers.
    clock = evaluate(POST, at(response_minute), SlaPolicy(), now=at(600))
    assert clock.state is state
    assert clock.responded_at == at(response_minute)
    assert clock.minutes_left == pytest.approx(margin)
    assert clock.minutes_waited == pytest.approx(response_minute)


def test_platform_clock_ahead_of_ours_does_not_give_negative_wait() -> None:
    clock = evaluate(POST, None, SlaPolicy(), now=at(-2))
    assert clock.state is SlaState.OK
    assert clock.minutes_waited == 0
    assert clock.minutes_left == pytest.approx(32)


def test_kind_label_defaults_to_first_response() -> None:
    assert evaluate(POST, None, SlaPolicy(), at(1)).kind is ClockKind.FIRST_RESPONSE
    follow_up = at(50)  # the customer wrote again after our reply: same rules, new start
    clock = evaluate(follow_up, None, SlaPolicy(), follow_up + timedelta(minutes=21), kind=ClockKind.NEXT_RESPONSE)
    assert clock.kind is ClockKind.NEXT_RESPONSE
    assert clock.kind == "next_response"
    assert clock.state is SlaState.WARNING
    assert clock.due_at == follow_up + timedelta(minutes=30)


def test_state_values_are_the_contract_strings() -> None:
    assert [s.value for s in SlaState] == ["ok", "warning", "breached", "met", "missed"]
    assert SlaState.BREACHED == "breached"


def test_clock_is_frozen() -> None:
    clock = evaluate(POST, None, SlaPolicy(), at(1))
    assert isinstance(clock, SlaClock)
    with pytest.raises(AttributeError):
        clock.state = SlaState.MET  # type: ignore[misc]


# --- timezone handling --------------------------------------------------------------------------


def test_non_utc_input_gives_the_same_answer_in_utc() -> None:
    minus_five = timezone(timedelta(hours=-5))
    local_post = POST.astimezone(minus_five)
    assert local_post.hour == 7
    for policy in (SlaPolicy(), SlaPolicy(business_hours=office())):
        a = evaluate(POST, None, policy, at(25))
        b = evaluate(local_post, None, policy, at(25).astimezone(PARIS))
        assert a == b
        for value in (b.started_at, b.warn_at, b.due_at):
            assert value.utcoffset() == timedelta(0)
            assert value.tzinfo is UTC


def test_business_hours_non_utc_input() -> None:
    minus_five = timezone(timedelta(hours=-5))
    # Tue 23:00 Paris == Tue 17:00 at -05:00
    post = datetime(2024, 6, 4, 17, 0, tzinfo=minus_five)
    assert SlaPolicy(business_hours=office()).deadlines(post) == (
        paris(2024, 6, 5, 9, 20).astimezone(UTC),
        paris(2024, 6, 5, 9, 30).astimezone(UTC),
    )


@pytest.mark.parametrize("argument", ["clock_start", "responded_at", "now"])
def test_naive_datetimes_are_refused(argument: str) -> None:
    kwargs = {"clock_start": POST, "responded_at": at(5), "now": at(10)}
    kwargs[argument] = kwargs[argument].replace(tzinfo=None)
    with pytest.raises(ValueError, match=f"{argument} must be timezone-aware"):
        evaluate(kwargs["clock_start"], kwargs["responded_at"], SlaPolicy(), kwargs["now"])


def test_naive_datetimes_are_refused_by_business_hours() -> None:
    naive = datetime(2024, 6, 4, 10, 0)
    hours = office()
    with pytest.raises(ValueError, match="timezone-aware"):
        hours.is_open(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        hours.add_working_minutes(naive, 10)
    with pytest.raises(ValueError, match="timezone-aware"):
        hours.working_minutes_between(naive, POST)
    with pytest.raises(ValueError, match="timezone-aware"):
        SlaPolicy().deadlines(naive)


# --- business hours ------------------------------------------------------------------------------


def test_review_posted_at_night_is_due_next_morning() -> None:
    policy = SlaPolicy(business_hours=office())
    post = paris(2024, 6, 4, 23, 0)  # Tuesday
    warn_at, due_at = policy.deadlines(post)
    assert warn_at == paris(2024, 6, 5, 9, 20).astimezone(UTC)
    assert due_at == paris(2024, 6, 5, 9, 30).astimezone(UTC)
    # Overnight it stays ok however long the customer has waited in wall-clock time.
    assert evaluate(post, None, policy, paris(2024, 6, 5, 9, 0)).state is SlaState.OK
    assert evaluate(post, None, policy, paris(2024, 6, 5, 9, 20)).state is SlaState.WARNING
    assert evaluate(post, None, policy, paris(2024, 6, 5, 9, 30)).state is SlaState.BREACHED
    morning = evaluate(post, None, policy, paris(2024, 6, 5, 9, 0))
    assert morning.minutes_waited == pytest.approx(600)  # wall-clock
    assert morning.minutes_left == pytest.approx(30)


def test_post_near_closing_rolls_over_the_weekend() -> None:
    policy = SlaPolicy(business_hours=office())
    warn_at, due_at = policy.deadlines(paris(2024, 6, 7, 17, 50))  # Friday
    assert warn_at == paris(2024, 6, 10, 9, 10).astimezone(UTC)  # Monday
    assert due_at == paris(2024, 6, 10, 9, 20).astimezone(UTC)


def test_post_on_saturday_starts_counting_monday() -> None:
    policy = SlaPolicy(business_hours=office())
    post = paris(2024, 6, 8, 14, 0)  # Saturday
    warn_at, due_at = policy.deadlines(post)
    assert warn_at == paris(2024, 6, 10, 9, 20).astimezone(UTC)
    assert due_at == paris(2024, 6, 10, 9, 30).astimezone(UTC)
    sunday_night = evaluate(post, None, policy, paris(2024, 6, 9, 23, 59))
    assert sunday_night.state is SlaState.OK


def test_holidays_are_closed_days() -> None:
    hours = office(holidays=frozenset({date(2024, 12, 25), date(2024, 12, 26)}))
    policy = SlaPolicy(business_hours=hours)
    warn_at, due_at = policy.deadlines(paris(2024, 12, 24, 17, 50))  # Tuesday before Christmas
    assert warn_at == paris(2024, 12, 27, 9, 10).astimezone(UTC)
    assert due_at == paris(2024, 12, 27, 9, 20).astimezone(UTC)
    assert not hours.is_open(paris(2024, 12, 25, 10, 0))
    assert hours.is_open(paris(2024, 12, 27, 10, 0))


def test_holidays_accept_any_iterable_and_reject_datetimes() -> None:
    hours = office(days=[0, 1, 2, 3, 4], holidays=[date(2024, 1, 1)])
    assert hours.days == WEEKDAYS
    assert isinstance(hours.holidays, frozenset)
    with pytest.raises(ValueError, match="holidays"):
        office(holidays=frozenset({datetime(2024, 1, 1)}))


def test_dst_spring_forward_weekend_paris() -> None:
    # Clocks go forward on Sunday 2024-03-31: Friday is UTC+1, Monday is UTC+2.
    policy = SlaPolicy(business_hours=office())
    warn_at, due_at = policy.deadlines(paris(2024, 3, 29, 17, 50))
    assert warn_at == utc(2024, 4, 1, 7, 10)  # 09:10 CEST
    assert due_at == utc(2024, 4, 1, 7, 20)  # 09:20 CEST, not 08:20 UTC as naive UTC arithmetic would say
    assert due_at.astimezone(PARIS).time() == time(9, 20)


def test_dst_fall_back_weekend_paris() -> None:
    # Clocks go back on Sunday 2024-10-27: Friday is UTC+2, Monday is UTC+1.
    policy = SlaPolicy(business_hours=office())
    _, due_at = policy.deadlines(paris(2024, 10, 25, 17, 50))
    assert due_at == utc(2024, 10, 28, 8, 20)
    assert due_at.astimezone(PARIS).time() == time(9, 20)


def test_dst_transition_inside_open_hours_counts_real_minutes() -> None:
    # Open round the clock on Sundays: 30 real minutes from 01:50 CET span the 02:00 -> 03:00 jump.
    hours = BusinessHours(PARIS, time(0), time(23, 59), frozenset({6}))
    due_at = hours.add_working_minutes(paris(2024, 3, 31, 1, 50), 30)
    assert due_at == utc(2024, 3, 31, 1, 20)
    assert due_at.astimezone(PARIS).time() == time(3, 20)
    # And through the repeated hour in autumn: 02:50 CEST + 30 min = 02:20 CET (the second 02:20).
    due_at = hours.add_working_minutes(paris(2024, 10, 27, 2, 50, fold=0), 30)
    assert due_at == utc(2024, 10, 27, 1, 20)
    assert due_at.astimezone(PARIS) == paris(2024, 10, 27, 2, 20, fold=1)
    assert hours.working_minutes_between(paris(2024, 10, 27, 0, 0), paris(2024, 10, 27, 23, 59)) == 24 * 60 + 59


def test_long_minutes_run_across_several_days() -> None:
    # One opening hour a day: a 240-minute review SLA needs four working days.
    hours = office(start=time(9), end=time(10))
    start = paris(2024, 6, 3, 9, 0)  # Monday opening
    due_at = hours.add_working_minutes(start, 240)
    assert due_at == paris(2024, 6, 6, 10, 0).astimezone(UTC)  # lands exactly on Thursday's closing
    assert hours.working_minutes_between(start, due_at) == pytest.approx(240)
    # From Friday it skips the weekend.
    assert hours.add_working_minutes(paris(2024, 6, 7, 9, 30), 240) == paris(2024, 6, 13, 9, 30).astimezone(UTC)


def test_very_long_minutes_do_not_step_per_minute() -> None:
    # ~10 years of office hours; per-minute stepping would take millions of iterations.
    hours = office()
    start = paris(2024, 6, 3, 9, 0)
    end = hours.add_working_minutes(start, 540 * 5 * 52 * 10)
    assert end > start + timedelta(days=365 * 9)
    assert hours.working_minutes_between(start, end) == pytest.approx(540 * 5 * 52 * 10)


def test_zero_minutes() -> None:
    hours = office()
    inside = paris(2024, 6, 4, 10, 0)
    assert hours.add_working_minutes(inside, 0) == inside.astimezone(UTC)
    # Outside hours the clock only starts at the next opening.
    assert hours.add_working_minutes(paris(2024, 6, 4, 18, 0), 0) == paris(2024, 6, 5, 9, 0).astimezone(UTC)
    with pytest.raises(ValueError, match="minutes"):
        hours.add_working_minutes(inside, -1)
    with pytest.raises(ValueError, match="minutes"):
        hours.add_working_minutes(inside, math.nan)


def test_minutes_running_past_closing_continue_next_open_day() -> None:
    hours = office()
    assert hours.add_working_minutes(paris(2024, 6, 4, 17, 45), 30) == paris(2024, 6, 5, 9, 15).astimezone(UTC)
    assert hours.add_working_minutes(paris(2024, 6, 4, 17, 30), 30) == paris(2024, 6, 4, 18, 0).astimezone(UTC)


def test_is_open_boundaries() -> None:
    hours = office()
    assert hours.is_open(paris(2024, 6, 4, 9, 0))  # opening instant is open
    assert hours.is_open(paris(2024, 6, 4, 17, 59, 59))
    assert not hours.is_open(paris(2024, 6, 4, 18, 0))  # closing instant is closed
    assert not hours.is_open(paris(2024, 6, 4, 8, 59, 59))
    assert not hours.is_open(paris(2024, 6, 8, 12, 0))  # Saturday
    assert hours.is_open(utc(2024, 6, 4, 7, 0))  # 09:00 CEST given in UTC


def test_working_minutes_between() -> None:
    hours = office()
    assert hours.working_minutes_between(paris(2024, 6, 4, 17, 0), paris(2024, 6, 5, 10, 0)) == 120
    assert hours.working_minutes_between(paris(2024, 6, 5, 10, 0), paris(2024, 6, 4, 17, 0)) == -120
    assert hours.working_minutes_between(paris(2024, 6, 8, 10, 0), paris(2024, 6, 9, 10, 0)) == 0
    assert hours.working_minutes_between(paris(2024, 6, 3, 0, 0), paris(2024, 6, 10, 0, 0)) == 5 * 540


# --- policies and validation -----------------------------------------------------------------------


def test_per_channel_override_and_fallback() -> None:
    reviews = SlaPolicy(first_response_minutes=240, warn_after_minutes=180, business_hours=office())
    policies = SlaPolicies(default=SlaPolicy(), channels={"google_reviews": reviews})
    assert policies.for_channel("google_reviews") is reviews
    assert policies.for_channel("x") is policies.default
    assert policies.for_channel("x").first_response_minutes == 30
    post = paris(2024, 6, 4, 12, 0)
    assert (
        evaluate(post, None, policies.for_channel("google_reviews"), post + timedelta(minutes=31)).state is SlaState.OK
    )
    assert evaluate(post, None, policies.for_channel("x"), post + timedelta(minutes=31)).state is SlaState.BREACHED


def test_policies_copy_their_channels() -> None:
    channels = {"x": SlaPolicy(10, 5)}
    policies = SlaPolicies(default=SlaPolicy(), channels=channels)
    channels["x"] = SlaPolicy(100, 50)
    assert policies.for_channel("x").first_response_minutes == 10
    with pytest.raises(TypeError):
        policies.channels["y"] = SlaPolicy()  # type: ignore[index]
    with pytest.raises(ValueError, match="'bad'"):
        SlaPolicies(default=SlaPolicy(), channels={"bad": 30})  # type: ignore[dict-item]


def test_default_policy_numbers() -> None:
    policy = SlaPolicy()
    assert (policy.first_response_minutes, policy.warn_after_minutes, policy.business_hours) == (30, 20, None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"first_response_minutes": 0}, "first_response_minutes"),
        ({"first_response_minutes": -5, "warn_after_minutes": -10}, "first_response_minutes"),
        ({"warn_after_minutes": 0}, "warn_after_minutes"),
        ({"warn_after_minutes": -1}, "warn_after_minutes"),
        ({"warn_after_minutes": 30}, "warn_after_minutes"),  # equal is not less
        ({"first_response_minutes": 10}, "warn_after_minutes"),  # inherited warn 20 >= 10
        ({"first_response_minutes": math.inf}, "first_response_minutes"),
        ({"warn_after_minutes": math.nan}, "warn_after_minutes"),
        ({"first_response_minutes": "30"}, "first_response_minutes"),
    ],
)
def test_policy_validation(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SlaPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": time(18), "end": time(9)}, "end must be later than start"),
        ({"start": time(9), "end": time(9)}, "end must be later than start"),
        ({"days": frozenset()}, "days"),
        ({"days": frozenset({7})}, "days"),
        ({"timezone": "Europe/Paris"}, "timezone"),
        ({"start": time(9, tzinfo=UTC)}, "start"),
    ],
)
def test_business_hours_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        office(**kwargs)


# --- properties ------------------------------------------------------------------------------------

ZONES = [ZoneInfo(name) for name in ("UTC", "Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Kolkata")]


@st.composite
def business_hours(draw: st.DrawFn) -> BusinessHours:
    open_minute = draw(st.integers(0, 22 * 60))
    # At least half an hour open per day keeps the per-day walk short for the largest minute values.
    close_minute = draw(st.integers(open_minute + 30, 23 * 60 + 59))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    holidays = draw(st.frozensets(st.dates(date(2020, 1, 1), date(2030, 12, 31)), max_size=5))
    return BusinessHours(
        timezone=draw(st.sampled_from(ZONES)),
        start=time(*divmod(open_minute, 60)),
        end=time(*divmod(close_minute, 60)),
        days=days,
        holidays=holidays,
    )


starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))
minutes = st.floats(min_value=0, max_value=5000, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(hours=business_hours(), start=starts, m=minutes)
def test_round_trip_working_minutes(hours: BusinessHours, start: datetime, m: float) -> None:
    end = hours.add_working_minutes(start, m)
    assert end >= start
    assert end.tzinfo is UTC
    assert hours.working_minutes_between(start, end) == pytest.approx(m, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(hours=business_hours(), start=starts, a=minutes, b=minutes)
def test_add_working_minutes_is_monotonic(hours: BusinessHours, start: datetime, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert hours.add_working_minutes(start, low) <= hours.add_working_minutes(start, high)


@settings(max_examples=200, deadline=None)
@given(
    hours=st.one_of(st.none(), business_hours()),
    start=starts,
    warn=st.floats(min_value=0.01, max_value=2000, allow_nan=False),
    extra=st.floats(min_value=0.01, max_value=2000, allow_nan=False),
)
def test_deadlines_are_ordered(hours: BusinessHours | None, start: datetime, warn: float, extra: float) -> None:
    policy = SlaPolicy(first_response_minutes=warn + extra, warn_after_minutes=warn, business_hours=hours)
    warn_at, due_at = policy.deadlines(start)
    assert start <= warn_at <= due_at
    # The verdict at due_at is breached and a response then is met, whatever the hours.
    assert evaluate(start, None, policy, due_at).state is SlaState.BREACHED
    assert evaluate(start, due_at, policy, due_at).state is SlaState.MET
