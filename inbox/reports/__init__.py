"""Team leads' reports: SLA attainment, first-response percentiles, next responses, CSAT, per group and per conversation.

The figures are computed once, in the store's SQL (`inbox.store.reports`); this package chooses the window and the
grouping and gives them their JSON, CSV and terminal forms. What `inbox report`, `GET /reports.json`,
`GET /reports.csv`, the `/reports` page and Slack's `/inbox report` all call:

    from inbox.reports import Window, build_report, conversation_rows, parse_window, report_json, report_zone

    window = parse_window(now, report_zone(settings), since="7d")           # or start="2026-12-01", end="2026-12-08"
    report = await build_report(engine, settings, window, by="channel", now=now)   # by: None or one of KEYS
    report.rows          # [inbox.store.reports.Figures], ordered by group; report.labels() their group labels
    report_json(report)  # the contract's JSON object
    rows = await conversation_rows(engine, settings, window, now)   # [inbox.store.reports.Conversation]
    csv_text(rows)       # the contract's CSV, one line per conversation
    async for piece in csv_pieces(engine, settings, window, now): ...   # the same CSV, streamed a page at a time

`parse_window` and `check_by` raise `ReportError` (a ValueError) with a message for people on bad input. The
store's errors (an outage) propagate: the caller answers 503, or exits 1. What each figure means: docs/reports.md.
"""

from __future__ import annotations

from inbox.reports.figures import (
    CSV_COLUMNS,
    Report,
    build_report,
    check_by,
    conversation_rows,
    csv_pieces,
    csv_text,
    group_label,
    report_json,
    write_csv,
)
from inbox.reports.window import ReportError, Window, parse_window, report_zone
from inbox.store.reports import KEYS, Conversation, Figures

__all__ = [
    "CSV_COLUMNS",
    "KEYS",
    "Conversation",
    "Figures",
    "Report",
    "ReportError",
    "Window",
    "build_report",
    "check_by",
    "conversation_rows",
    "csv_pieces",
    "csv_text",
    "group_label",
    "parse_window",
    "report_json",
    "report_zone",
    "write_csv",
]
