"""What the leads' page, `/inbox report` and the weekly digest show: the figures of a window gathered in one object.

Every number comes from the report's figures (`inbox.reports.figures`, one SQL definition); this module only
asks for the groupings the page draws and fills the days without conversations, so a chart has no holes in time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from inbox.reports import charts
from inbox.reports.figures import build_report, scope
from inbox.reports.window import Window, report_zone
from inbox.staffing import StaffingReport, staffing_report
from inbox.store import reportpage
from inbox.store.reports import Figures

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from inbox.settings import Settings

# The attainment the page draws its goal line at: the share `inbox staffing` plans for by default.
ATTAINMENT_GOAL = 0.8
# Staffing looks at the last weeks of the window only: arrival patterns change, and a year of them is slow to read.
STAFFING_WEEKS = 4


@dataclass(frozen=True, slots=True)
class Overview:
    """A window's figures as the page shows them."""

    window: Window
    zone: str
    total: Figures
    # Every local day of the window (None without a conversation) and each hour of the week (Monday 00:00 = 0): their
    # counts only, as the charts draw them (the percentiles, not drawn, are None: each would cost a sort of the window).
    days: list[tuple[str, Figures | None]]
    channels: list[Figures]
    agents: list[Figures]
    hours: dict[int, Figures]
    histogram: list[int]  # first responses per charts.BUCKETS
    recovered: int  # reviews raised after they opened
    lowered: int
    staffing: StaffingReport | None


def attainment(row: Figures | None) -> float | None:
    """met ÷ (met + missed), None when nothing was settled."""
    if row is None or row.met + row.missed == 0:
        return None
    return row.met / (row.met + row.missed)


def day_points(days: Sequence[tuple[str, Figures | None]]) -> list[charts.DayPoint]:
    """The days as the attainment charts take them."""
    return [
        charts.DayPoint(label, attainment(row), row.met if row else 0, row.missed if row else 0) for label, row in days
    ]


async def headline(engine: AsyncEngine, settings: Settings, window: Window, now: datetime) -> Figures:
    """The window's one total row."""
    return (await build_report(engine, settings, window, None, now)).rows[0]


async def daily(
    engine: AsyncEngine, settings: Settings, window: Window, now: datetime
) -> list[tuple[str, Figures | None]]:
    """Each local day of the window with its counts (None for a day without conversations; no percentiles)."""
    report = await build_report(engine, settings, window, "day", now, spread=False)
    found = {str(row.group): row for row in report.rows}
    zone = report_zone(settings)
    day = window.start.astimezone(zone).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(zone).date()
    days: list[tuple[str, Figures | None]] = []
    while day <= last:
        days.append((day.isoformat(), found.get(day.isoformat())))
        day += timedelta(days=1)
    return days


async def overview(engine: AsyncEngine, settings: Settings, window: Window, now: datetime) -> Overview:
    """Everything the page shows for `window`, as of `now`."""
    zone = report_zone(settings)
    where = scope(settings, window, now)
    edges = [low for low, _high in charts.BUCKETS]
    staffing_since = max(window.start, window.end - timedelta(weeks=STAFFING_WEEKS))
    # Side by side: on PostgreSQL each runs on a connection of its own (SQLite takes them in turn).
    total, days, channels, agents, hours = await asyncio.gather(
        headline(engine, settings, window, now),
        daily(engine, settings, window, now),
        build_report(engine, settings, window, "channel", now),
        build_report(engine, settings, window, "agent", now),
        build_report(engine, settings, window, "hour", now, spread=False),
    )
    histogram, ratings, staffing = await asyncio.gather(
        reportpage.minutes_histogram(engine, where, edges),
        reportpage.rating_changes(engine, where),
        staffing_report(engine, staffing_since, window.end, zone=zone),
    )
    return Overview(
        window=window,
        zone=str(zone),
        total=total,
        days=days,
        channels=channels.rows,
        agents=agents.rows,
        hours={int(row.group): row for row in hours.rows if row.group is not None},
        histogram=histogram,
        recovered=ratings[0],
        lowered=ratings[1],
        staffing=staffing,
    )
