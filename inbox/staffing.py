"""Staffing per hour of the week: measured arrivals and handling times, the agents Erlang C asks for, those who replied.

`staffing_report()` is what `inbox staffing` prints and what the reports page shows. For each hour of the week (in
the business time zone) over a window:

- arrivals: conversations started in that hour, per occurrence of the hour in the window (an hourly rate);
- handling time: mean minutes from a conversation's first assignment to its first reply after it, over the
  conversations started in that hour that were assigned before being answered (Slack does not tell when an agent
  first looked at a message, so assignment is the recorded start of work). An hour without such a conversation
  takes the window's mean; a window without any takes DEFAULT_HANDLING_MINUTES, and the report says so;
- needed: the fewest agents answering `target` of the conversations within `within`, by Erlang C (inbox.erlang);
- replied: distinct agents who sent a reply in that hour, per occurrence of the hour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.erlang import agents_needed
from inbox.store import staffing as store

DEFAULT_HANDLING_MINUTES = 5.0  # when nothing in the window was assigned before it was answered
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class HourStaffing:
    """One hour of the week."""

    weekday: int  # 0 = Monday
    hour: int  # 0-23, local time
    occurrences: int  # how many times this hour came round in the window
    arrivals: int  # conversations started in it, all occurrences together
    handled: int  # of those, how many have a measured handling time
    arrivals_per_hour: float
    handling_minutes: float  # the mean used for Erlang C (measured, else the window's, else the default)
    needed: int
    replied: float  # distinct agents who replied in it, per occurrence

    @property
    def label(self) -> str:
        """'Mon 09'."""
        return f"{DAYS[self.weekday]} {self.hour:02d}"

    @property
    def short(self) -> float:
        """Agents missing to keep the target (negative: more replied than needed)."""
        return self.needed - self.replied

    @property
    def quiet(self) -> bool:
        """No conversation arrived and nobody replied: folded in the terminal table."""
        return self.arrivals == 0 and self.replied == 0


@dataclass(frozen=True, slots=True)
class StaffingReport:
    """Every hour of the week over a window, and how the handling time was measured."""

    since: datetime
    until: datetime
    timezone: str
    target: float
    within: timedelta
    hours: list[HourStaffing]
    handled: int  # conversations with a measured handling time
    handling_minutes: float  # the window's mean handling time (or the default)
    handling_assumed: bool  # True: nothing was measured, DEFAULT_HANDLING_MINUTES was used


def hour_of_week(moment: datetime, zone: tzinfo) -> tuple[int, int]:
    """(weekday, hour) of a moment in the zone."""
    local = moment.astimezone(zone)
    return local.weekday(), local.hour


def occurrences(since: datetime, until: datetime, zone: tzinfo) -> dict[tuple[int, int], int]:
    """How many times each local hour of the week starts in [since, until), daylight-saving changes included."""
    counts: dict[tuple[int, int], int] = defaultdict(int)
    moment = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if moment < since:
        moment += timedelta(hours=1)
    while moment < until:
        counts[hour_of_week(moment, zone)] += 1
        moment += timedelta(hours=1)
    return counts


def plan(
    since: datetime,
    until: datetime,
    zone: tzinfo,
    arrived: Iterable[datetime],
    handled: Iterable[store.Handled],
    replies: Iterable[tuple[datetime, str]],
    *,
    target: float,
    within: timedelta,
) -> tuple[list[HourStaffing], int, float, bool]:
    """The 168 hours of the week from the measurements (pure: what `staffing_report` computes after its queries)."""
    seen = occurrences(since, until, zone)
    arrivals: dict[tuple[int, int], int] = defaultdict(int)
    for moment in arrived:
        arrivals[hour_of_week(moment, zone)] += 1
    minutes: dict[tuple[int, int], list[float]] = defaultdict(list)
    for one in handled:
        minutes[hour_of_week(one.arrived_at, zone)].append(max(one.minutes, 0.0))
    every = [m for values in minutes.values() for m in values]
    assumed = not every
    overall = sum(every) / len(every) if every else DEFAULT_HANDLING_MINUTES
    agents: dict[tuple[int, int], set[tuple[str, str]]] = defaultdict(set)
    for moment, agent in replies:
        local = moment.astimezone(zone)
        # One agent counts once per occurrence of the hour (per local date), however many replies they sent.
        agents[(local.weekday(), local.hour)].add((local.date().isoformat(), agent))
    hours = []
    for weekday in range(7):
        for hour in range(24):
            key = (weekday, hour)
            times = max(seen.get(key, 0), 1)
            measured = minutes.get(key, [])
            aht = sum(measured) / len(measured) if measured else overall
            rate = arrivals.get(key, 0) / times
            hours.append(
                HourStaffing(
                    weekday=weekday,
                    hour=hour,
                    occurrences=seen.get(key, 0),
                    arrivals=arrivals.get(key, 0),
                    handled=len(measured),
                    arrivals_per_hour=rate,
                    handling_minutes=aht,
                    needed=agents_needed(rate, 60, aht, target, within.total_seconds() / 60),
                    replied=len(agents.get(key, ())) / times,
                )
            )
    return hours, len(every), overall, assumed


async def staffing_report(
    engine: AsyncEngine,
    since: datetime,
    until: datetime,
    *,
    target: float = 0.8,
    within: timedelta = timedelta(minutes=30),
    zone: tzinfo = UTC,
) -> StaffingReport:
    """Staffing per hour of the week over [since, until), in `zone`: what the CLI prints and the reports page shows."""
    hours, handled, overall, assumed = plan(
        since,
        until,
        zone,
        await store.arrivals(engine, since, until),
        await store.handling(engine, since, until),
        await store.replies(engine, since, until),
        target=target,
        within=within,
    )
    return StaffingReport(since, until, str(zone), target, within, hours, handled, overall, assumed)
