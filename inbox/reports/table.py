"""The report in a terminal: a rich table that reads at 80 columns (group labels are data: plain Text, never markup)."""

from __future__ import annotations

from datetime import UTC

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from inbox.reports.figures import Report, ratio, report_json


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def _minutes(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def print_report(out: Console, report: Report) -> None:
    """The figures per group: conversations, SLA attainment, missed (waiting late), percentiles, 30-min share, CSAT."""
    document = report_json(report)
    start, end = (f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}" for moment in (report.window.start, report.window.end))
    title = f"Conversations started {start} → {end} UTC" + (f", by {report.by}" if report.by else "")
    # The box's own column separator is the only gap between columns, so eleven columns fit in 80.
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 0), title_justify="left")
    table.add_column(report.by or "", min_width=5, max_width=16, overflow="ellipsis", no_wrap=True)
    for name, width in (("conv", 5), ("SLA", 4), ("miss", 4), ("late", 4), ("p50", 4), ("p90", 4), ("p95", 4)):
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    for name, width in (("≤30m", 4), ("next", 4), ("CSAT", 9)):
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    for row in document["rows"]:
        minutes = row["first_response_minutes"]
        csat = row["csat"]
        table.add_row(
            Text(row["group"] if row["group"] is not None else "all"),
            str(row["conversations"]),
            _percent(row["attainment"]),
            str(row["missed"]),
            str(row["waiting_past_due"]),
            _minutes(minutes["p50"]),
            _minutes(minutes["p90"]),
            _minutes(minutes["p95"]),
            _percent(row["within_30_minutes"]),
            _percent(row["next_response_attainment"]),
            f"{_percent(csat['satisfied'])} ({csat['answers']})" if csat["answers"] else "–",
        )
    out.print(table)
    waiting = sum(r.open_not_due for r in report.rows)
    asked = sum(r.csat_questions for r in report.rows)
    answered = sum(r.csat_answers for r in report.rows)
    notes = [
        "SLA = met ÷ (met + missed); miss includes those still waiting past their deadline (late).",
        "p50/p90/p95: minutes to the first reply. ≤30m: first replies within 30 minutes. next: next responses in time.",
    ]
    if waiting:
        notes.append(f"{waiting} conversation(s) still open before their deadline are left out of SLA.")
    if asked:
        notes.append(
            f"CSAT: % satisfied (4-5 of 5) of {answered} answer(s); response rate {_percent(ratio(answered, asked))}."
        )
    for note in notes:
        out.print(Text(note, style="dim"))
