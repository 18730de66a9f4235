"""The report as data: figures per group, one row per conversation, and their JSON and CSV forms."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.reports.window import ReportError, Window, report_zone
from inbox.settings import Settings
from inbox.store import reports as store
from inbox.store.reports import KEYS, Conversation, Figures
from inbox.triage.labels import PRIORITY_ORDER

# A spreadsheet reads a cell starting with one of these as a formula: such text gets a leading ' (OWASP's advice).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
NO_VALUE = "(none)"  # the group of conversations without a value for the key (no agent replied, say)

CSV_COLUMNS = (
    "conversation_id",
    "connector",
    "channel",
    "kind",
    "customer",
    "language",
    "intent",
    "sentiment",
    "priority",
    "started_at",
    "first_response_at",
    "first_response_minutes",
    "sla_target_minutes",
    "sla_outcome",
    "next_responses_met",
    "next_responses_missed",
    "assignee",
    "replied_by",
    "resolved_at",
    "csat",
    "rating_before",
    "rating_after",
)


@dataclass(frozen=True, slots=True)
class Report:
    """The figures of a window, per group of `by` (None: one total row)."""

    window: Window
    by: str | None
    rows: list[Figures]

    def labels(self) -> list[str | None]:
        """Each row's group as people and the JSON read it."""
        return [group_label(self.by, row.group) for row in self.rows]


def check_by(by: str | None) -> str | None:
    """`by` when it is a known grouping (or None); ReportError naming the known ones otherwise."""
    if by is None or by == "":
        return None
    if by not in KEYS:
        raise ReportError(f"--by {by!r} is not a grouping: use one of {', '.join(KEYS)}")
    return by


def scope(settings: Settings, window: Window, now: datetime) -> store.Scope:
    """The store's scope of a report: the window, `now`, the report's zone and the configured targets."""
    sla = settings.sla
    targets = {name: c.first_response_minutes for name, c in sla.channels.items() if c.first_response_minutes}
    return store.Scope(
        start=window.start,
        end=window.end,
        now=now,
        zone=report_zone(settings),
        target=sla.first_response_minutes,
        targets=targets,
    )


async def build_report(
    engine: AsyncEngine, settings: Settings, window: Window, by: str | None, now: datetime, *, spread: bool = True
) -> Report:
    """The figures of the conversations started in `window`, per `by` group, as of `now` (without `spread`, no
    percentiles: None)."""
    by = check_by(by)
    return Report(window, by, await store.figures(engine, scope(settings, window, now), by, spread=spread))


async def conversation_rows(
    engine: AsyncEngine, settings: Settings, window: Window, now: datetime
) -> list[Conversation]:
    """One row per conversation started in `window`, oldest first, as of `now`."""
    return await store.conversations(engine, scope(settings, window, now))


def group_label(by: str | None, group: str | int | None) -> str | None:
    """A group's label: 'Mon 09' for an hour of the week, 'high' for a priority, NO_VALUE for a missing value."""
    if by is None:
        return None
    if group is None or group == "":
        return NO_VALUE
    if by == "hour":
        weekday, hour = divmod(int(group), 24)
        return f"{DAYS[weekday]} {hour:02d}"
    if by == "priority":
        return priority_label(int(group))
    return str(group)


def priority_label(rank: int) -> str:
    """The triage priority of a stored rank."""
    return str(PRIORITY_ORDER[rank]) if 0 <= rank < len(PRIORITY_ORDER) else str(rank)


def ratio(part: int, whole: int) -> float | None:
    """part ÷ whole to 4 decimals, None when whole is 0."""
    return round(part / whole, 4) if whole else None


def _minutes(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def row_json(label: str | None, row: Figures) -> dict[str, Any]:
    """One group's figures as the JSON has them."""
    return {
        "group": label,
        "conversations": row.conversations,
        "first_responses": row.first_responses,
        "met": row.met,
        "missed": row.missed,
        "attainment": ratio(row.met, row.met + row.missed),
        "open_not_due": row.open_not_due,
        "waiting_past_due": row.waiting_past_due,
        "first_response_minutes": {"p50": _minutes(row.p50), "p90": _minutes(row.p90), "p95": _minutes(row.p95)},
        "next_response_attainment": ratio(row.next_met, row.next_met + row.next_missed),
        "within_30_minutes": ratio(row.within_expectation, row.first_responses),
        "csat": {
            "questions": row.csat_questions,
            "answers": row.csat_answers,
            "satisfied": ratio(row.csat_satisfied, row.csat_answers),
            "response_rate": ratio(row.csat_answers, row.csat_questions),
        },
    }


def iso(moment: datetime | None) -> str:
    """ISO 8601 in UTC with a Z, or '' for None."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def report_json(report: Report) -> dict[str, Any]:
    """The report as the one JSON object of the contract."""
    return {
        "from": iso(report.window.start),
        "to": iso(report.window.end),
        "by": report.by,
        "rows": [row_json(label, row) for label, row in zip(report.labels(), report.rows, strict=True)],
    }


def inert(value: str | None) -> str:
    """Text as a CSV cell no spreadsheet runs: '' for None, a leading ' before a formula's first character."""
    if value is None:
        return ""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def csv_record(row: Conversation) -> list[str]:
    """One conversation's CSV fields, in CSV_COLUMNS order; text that could come from outside is made inert."""

    def text(value: object) -> str:
        return "" if value is None else str(value)

    minutes = _minutes(row.first_response_minutes)
    return [
        str(row.conversation_id),
        inert(row.connector),
        inert(row.channel),
        inert(row.kind),
        inert(row.customer),
        inert(row.language),
        inert(row.intent),
        inert(row.sentiment),
        priority_label(row.priority),
        iso(row.started_at),
        iso(row.first_response_at),
        text(minutes),
        text(row.sla_target_minutes),
        row.sla_outcome,
        str(row.next_responses_met),
        str(row.next_responses_missed),
        inert(row.assignee),
        inert(row.replied_by),
        iso(row.resolved_at),
        text(row.csat),
        text(row.rating_before),
        text(row.rating_after),
    ]


def write_csv(rows: Iterable[Conversation], out: TextIO, *, header: bool = True) -> None:
    """The CSV: a header (unless `header` is False: a later piece), then one line per conversation."""
    writer = csv.writer(out, lineterminator="\n")
    # csv quotes only the line terminator's characters: a lone CR in a field would split the row for readers.
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        record = csv_record(row)
        (quoted if any("\r" in field for field in record) else writer).writerow(record)


def csv_text(rows: Iterable[Conversation], *, header: bool = True) -> str:
    """The CSV as one string (or one piece of it, without the header)."""
    buffer = io.StringIO()
    write_csv(rows, buffer, header=header)
    return buffer.getvalue()


async def csv_pieces(
    engine: AsyncEngine, settings: Settings, window: Window, now: datetime, page: int = store.PAGE_ROWS
) -> AsyncGenerator[str, None]:
    """The CSV of `conversation_rows` in pieces, a page of rows each, streamed from the store: joined, the same text.

    The first piece (the header and the first page) comes once the store has answered: wait for it before
    answering, to turn an outage into a clear error."""
    first = True
    async with aclosing(store.conversation_pages(engine, scope(settings, window, now), page)) as pages:
        async for rows in pages:
            yield csv_text(rows, header=first)
            first = False
    if first:
        yield csv_text([])
