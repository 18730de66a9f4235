"""SLA clock: pure functions of (clock start, response, policy, now), with optional business hours."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from types import MappingProxyType
from zoneinfo import ZoneInfo

__all__ = [
    "BusinessHours",
    "ClockKind",
    "SlaClock",
    "SlaPolicies",
    "SlaPolicy",
    "SlaState",
    "evaluate",
]

_ONE_DAY = timedelta(days=1)


class SlaState(StrEnum):
    """Where a clock stands: running (ok/warning/breached) or settled by a response (met/missed)."""

    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"
    MET = "met"
    MISSED = "missed"


class ClockKind(StrEnum):
    """Which response a clock is waiting for; the rules are the same, only the label differs."""

    FIRST_RESPONSE = "first_response"
    NEXT_RESPONSE = "next_response"


def _require_aware(value: datetime, name: str) -> datetime:
    """Return `value` in UTC, or raise ValueError if it is not a timezone-aware datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware (got naive datetime {value.isoformat()}); "
            "normalise it to UTC before calling"
        )
    return value.astimezone(UTC)


def _require_minutes(value: float, name: str, *, allow_zero: bool) -> float:
    """Return `value` as a float, or raise ValueError naming the field if it is not a usable duration."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number of minutes, got {value!r}")
    # NaN/inf would slip past the comparisons below and blow up later inside timedelta.
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number of minutes, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def _minutes(delta: timedelta) -> float:
    return delta.total_seconds() / 60.0


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Weekly opening hours in one timezone; SLA minutes only elapse while open."""

    timezone: ZoneInfo
    start: time
    end: time
    days: frozenset[int]
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        if not isinstance(self.timezone, tzinfo):
            raise ValueError(f"timezone must be a ZoneInfo, got {self.timezone!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not isinstance(value, time):
                raise ValueError(f"{name} must be a datetime.time, got {value!r}")
            # The hours are local wall time in `timezone`; a second tzinfo would be ambiguous.
            if value.tzinfo is not None:
                raise ValueError(f"{name} must be a naive local time (the zone is `timezone`), got {value!r}")
        if not self.end > self.start:
            raise ValueError(
                f"end must be later than start (got start={self.start.isoformat()}, end={self.end.isoformat()}); "
                "overnight shifts are not supported"
            )
        days = frozenset(self.days)
        if not days:
            # With no open day the clock would never run and deadlines would never come.
            raise ValueError("days must name at least one weekday (Monday=0 .. Sunday=6)")
        bad = sorted(d for d in days if isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6)
        if bad:
            raise ValueError(f"days must be weekday numbers Monday=0 .. Sunday=6, got {bad!r}")
        holidays = frozenset(self.holidays)
        # datetime is a date subclass but never compares equal to one, so it would silently never match.
        wrong = [h for h in holidays if isinstance(h, datetime) or not isinstance(h, date)]
        if wrong:
            raise ValueError(f"holidays must be datetime.date values, got {wrong!r}")
        # Accept any iterable from callers (lists from config) but store the declared frozen types.
        object.__setattr__(self, "days", days)
        object.__setattr__(self, "holidays", holidays)

    def _interval(self, day: date) -> tuple[datetime, datetime] | None:
        """UTC [open, close) of local `day`, or None if closed that day."""
        if day.weekday() not in self.days or day in self.holidays:
            return None
        # Build in local wall time and convert, so DST days get their true UTC offsets.
        # Nonexistent/ambiguous wall times resolve per PEP 495 fold=0 (pre-transition offset).
        opens = datetime.combine(day, self.start, tzinfo=self.timezone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=self.timezone).astimezone(UTC)
        if closes <= opens:
            # Only possible when the opening falls in a DST gap right before closing; treat as closed.
            return None
        return opens, closes

    def _local_day(self, at: datetime) -> date:
        return at.astimezone(self.timezone).date()

    def _intervals_from(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """Open intervals of `day` and every later day, in order (one step per day, never per minute)."""
        while True:
            interval = self._interval(day)
            if interval is not None:
                yield interval
            day += _ONE_DAY

    def is_open(self, at: datetime) -> bool:
        """Whether `at` falls inside opening hours (opening instant included, closing instant excluded)."""
        at = _require_aware(at, "at")
        interval = self._interval(self._local_day(at))
        return interval is not None and interval[0] <= at < interval[1]

    def add_working_minutes(self, start: datetime, minutes: float) -> datetime:
        """The UTC instant when `minutes` of open time have elapsed after `start`."""
        cursor = _require_aware(start, "start")
        remaining = timedelta(minutes=_require_minutes(minutes, "minutes", allow_zero=True))
        for opens, closes in self._intervals_from(self._local_day(cursor)):
            if closes <= cursor:
                continue
            # A start outside hours begins counting at the next opening.
            segment_start = max(opens, cursor)
            available = closes - segment_start
            if remaining <= available:
                return segment_start + remaining
            remaining -= available
            cursor = closes
        raise AssertionError("unreachable: _intervals_from is infinite")  # pragma: no cover

    def working_minutes_between(self, a: datetime, b: datetime) -> float:
        """Open minutes between `a` and `b`; negative when `b` is before `a`."""
        a = _require_aware(a, "a")
        b = _require_aware(b, "b")
        if b < a:
            return -self.working_minutes_between(b, a)
        total = timedelta()
        last_day = self._local_day(b)
        day = self._local_day(a)
        while day <= last_day:
            interval = self._interval(day)
            if interval is not None:
                lo, hi = max(interval[0], a), min(interval[1], b)
                if hi > lo:
                    total += hi - lo
            day += _ONE_DAY
        return _minutes(total)


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """How long a channel has to respond, when to warn, and whether only business hours count."""

    first_response_minutes: float = 30
    warn_after_minutes: float = 20
    business_hours: BusinessHours | None = None

    def __post_init__(self) -> None:
        first = _require_minutes(self.first_response_minutes, "first_response_minutes", allow_zero=False)
        warn = _require_minutes(self.warn_after_minutes, "warn_after_minutes", allow_zero=False)
        if not warn < first:
            raise ValueError(
                f"warn_after_minutes must be less than first_response_minutes "
                f"(got warn_after_minutes={warn:g}, first_response_minutes={first:g})"
            )
        if self.business_hours is not None and not isinstance(self.business_hours, BusinessHours):
            raise ValueError(f"business_hours must be a BusinessHours or None, got {self.business_hours!r}")

    def deadlines(self, clock_start: datetime) -> tuple[datetime, datetime]:
        """(warn_at, due_at) for a clock started at `clock_start`, both in UTC."""
        start = _require_aware(clock_start, "clock_start")
        hours = self.business_hours
        if hours is None:
            return (
                start + timedelta(minutes=self.warn_after_minutes),
                start + timedelta(minutes=self.first_response_minutes),
            )
        return (
            hours.add_working_minutes(start, self.warn_after_minutes),
            hours.add_working_minutes(start, self.first_response_minutes),
        )


@dataclass(frozen=True, slots=True)
class SlaClock:
    """A snapshot of one SLA clock as seen at `now` (or settled at `responded_at`)."""

    state: SlaState
    started_at: datetime
    warn_at: datetime
    due_at: datetime
    responded_at: datetime | None
    minutes_left: float
    minutes_waited: float
    kind: ClockKind = ClockKind.FIRST_RESPONSE


def evaluate(
    clock_start: datetime,
    responded_at: datetime | None,
    policy: SlaPolicy,
    now: datetime,
    *,
    kind: ClockKind = ClockKind.FIRST_RESPONSE,
) -> SlaClock:
    """The SLA clock for a post whose platform timestamp is `clock_start`, as of `now`."""
    start = _require_aware(clock_start, "clock_start")
    now = _require_aware(now, "now")
    response = None if responded_at is None else _require_aware(responded_at, "responded_at")
    warn_at, due_at = policy.deadlines(start)

    if response is not None:
        # A response settles the clock for good: later `now`s must not change the verdict.
        state = SlaState.MET if response <= due_at else SlaState.MISSED
        reference = response
    else:
        if now >= due_at:
            state = SlaState.BREACHED
        elif now >= warn_at:
            state = SlaState.WARNING
        else:
            state = SlaState.OK
        reference = now

    return SlaClock(
        state=state,
        started_at=start,
        warn_at=warn_at,
        due_at=due_at,
        responded_at=response,
        # Wall-clock, so items from different channels sort by real urgency in the queue;
        # BusinessHours.working_minutes_between gives the business-time figure when wanted.
        minutes_left=_minutes(due_at - reference),
        # Platform clocks can run ahead of ours; a wait cannot be negative.
        minutes_waited=max(0.0, _minutes(reference - start)),
        kind=kind,
    )


@dataclass(frozen=True)
class SlaPolicies:
    """The default policy plus per-channel overrides, keyed by channel/connector type."""

    default: SlaPolicy = field(default_factory=SlaPolicy)
    channels: Mapping[str, SlaPolicy] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.default, SlaPolicy):
            raise ValueError(f"default must be an SlaPolicy, got {self.default!r}")
        wrong = sorted(name for name, policy in self.channels.items() if not isinstance(policy, SlaPolicy))
        if wrong:
            raise ValueError(f"channels must map names to SlaPolicy values; bad entries: {wrong!r}")
        # Copy so a caller mutating its dict later cannot change a "frozen" policy set.
        object.__setattr__(self, "channels", MappingProxyType(dict(self.channels)))

    def for_channel(self, channel: str) -> SlaPolicy:
        """The policy for `channel`, falling back to the default for unknown channels."""
        return self.channels.get(channel, self.default)


def duration_text(minutes: float) -> str:
    """A duration for people: '25 min' up to 90 minutes, then '2 h 5 min', from a day on '13 d 15 h'."""
    total = round(abs(minutes))
    if total < 90:
        return f"{total} min"
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    return f"{hours} h {mins} min" if mins else f"{hours} h"


def clock_label(minutes_left: float) -> str:
    """'12 min left', '3 min late', '13 d 15 h late': the clock as the terminal and Slack show it."""
    return f"{duration_text(minutes_left)} left" if minutes_left >= 0 else f"{duration_text(-minutes_left)} late"
