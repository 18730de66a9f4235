"""The window a report covers: `--since DURATION`, or `--from DATE [--to DATE]` in the report's time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo

from inbox.pipeline.backfill import MAX_SINCE, BackfillError, parse_duration
from inbox.settings import Settings

DEFAULT_SINCE = "7d"


class ReportError(ValueError):
    """A report that cannot be made as asked (a bad window or grouping); the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class Window:
    """Conversations started in [start, end), both aware UTC."""

    start: datetime
    end: datetime


def report_zone(settings: Settings) -> ZoneInfo:
    """The zone reports count days and hours in: `[reports] timezone`, else the business-hours zone, else UTC."""
    return ZoneInfo(settings.reports.timezone) if settings.reports.timezone else settings.sla.zone()


def parse_window(
    now: datetime,
    zone: tzinfo,
    *,
    since: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> Window:
    """The window of `since` (a duration back from `now`, default 7d) or of `start`/`end` (dates or times in `zone`).

    A date alone means its midnight in `zone`; `end` is excluded, so `--from 2026-12-01 --to 2026-12-08` is a week.
    """
    if since is not None and (start is not None or end is not None):
        raise ReportError("give either --since or --from/--to, not both")
    if end is not None and start is None:
        raise ReportError("--to needs --from")
    if start is None:
        try:
            duration = parse_duration(since or DEFAULT_SINCE)
        except BackfillError as exc:  # its message says what is wrong: not a duration, or too long
            raise ReportError(str(exc)) from None
        return Window(now - duration, now)
    begin = _moment(start, zone, "--from")
    finish = _moment(end, zone, "--to") if end is not None else now
    if finish <= begin:
        raise ReportError(f"--to ({finish.isoformat()}) must be after --from ({begin.isoformat()})")
    if finish - begin > MAX_SINCE:
        raise ReportError(f"--from/--to: the window must be at most {MAX_SINCE.days} days long, as --since")
    return Window(begin, finish)


def _moment(text: str, zone: tzinfo, option: str) -> datetime:
    """A date (its midnight) or a date and time, in `zone` unless it says its own offset; aware UTC."""
    value = text.strip()
    try:
        if len(value) == 10:
            moment = datetime.combine(date.fromisoformat(value), time(0), tzinfo=zone)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zone)
        # Both must exist: the window in UTC for the store, its days and hours in `zone`.
        moment.astimezone(zone)
        return moment.astimezone(UTC)
    except ValueError:
        raise ReportError(
            f"{option} {text!r} is not a date: write YYYY-MM-DD (or YYYY-MM-DDTHH:MM), e.g. 2026-12-01"
        ) from None
    except OverflowError:
        raise ReportError(f"{option} {text!r} is out of range: give a date between the years 2 and 9998") from None
