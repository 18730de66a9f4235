"""Terminal rendering of the queue, of alerts, of backfills and of staffing (customer text always as plain Text, never markup)."""

from __future__ import annotations

from collections.abc import Sequence
from textwrap import shorten, wrap

from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from inbox.display import shown_name, shown_text, stars
from inbox.pipeline.backfill import BackfillProgress, describe
from inbox.sla import SlaState, clock_label
from inbox.staffing import HourStaffing, StaffingReport
from inbox.views import ThreadView

STATE_STYLE = {
    SlaState.OK: "green",
    SlaState.WARNING: "yellow",
    SlaState.BREACHED: "bold red",
    SlaState.MET: "green",
    SlaState.MISSED: "red",
}
PRIORITY_STYLE = {"urgent": "bold red", "high": "red", "normal": "", "low": "dim"}


# Below this many columns the queue is one block per conversation: a seven-column table squeezed its text to "…".
WIDE = 120
# Lines of customer text and of suggested reply shown per conversation in the narrow layout.
TEXT_LINES = 4


def clock_text(view: ThreadView) -> Text:
    """'12 min left', '3 min late' or '2 d 4 h late', coloured by SLA state; and the platform's reply window when nearer."""
    text = Text(
        f"{view.clock.state} · {clock_label(view.clock.minutes_left)}", style=STATE_STYLE.get(view.clock.state, "")
    )
    window = view.window_note()
    if window is not None:
        text.append(f"\n{shown_text(window)}", style="bold magenta")
    return text


def print_queue(out: Console, views: Sequence[ThreadView]) -> None:
    """The open queue, most urgent first: a table on a wide terminal, one block per conversation on a narrow one."""
    if not views:
        out.print("The queue is empty: nothing waits for a reply.")
        return
    if out.width < WIDE:
        _print_queue_blocks(out, views)
        return
    table = Table(title=f"Open conversations ({len(views)}), most urgent first", show_lines=True, expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("SLA", no_wrap=True)
    table.add_column("prio", no_wrap=True)
    table.add_column("channel · author", max_width=24)
    table.add_column("lang · intent", no_wrap=True)
    table.add_column("customer said", ratio=3)
    table.add_column("suggested reply", ratio=3)
    for view in views:
        author = Text(f"{view.channel} · @{shown_name(view.author_handle)}")
        if view.rating is not None:
            author.append(f"\n{stars(view.rating)}", style="yellow")
        if view.assignee:
            author.append(f"\n→ {view.assignee}", style="cyan")
        suggestion = Text(shown_text(view.suggestion))
        if view.suggestion_truncated:
            suggestion.append(" [cut to fit the channel]", style="dim")
        table.add_row(
            str(view.thread_id),
            clock_text(view),
            Text(str(view.priority), style=PRIORITY_STYLE.get(str(view.priority), "")),
            author,
            f"{view.language} · {view.intent}\n{view.sentiment}",
            Text(shown_text(view.text)),
            suggestion,
        )
    out.print(table)


def _print_queue_blocks(out: Console, views: Sequence[ThreadView]) -> None:
    """The narrow layout: a heading line per conversation, then its text and suggestion wrapped to a few lines."""
    out.print(Text(f"Open conversations ({len(views)}), most urgent first", style="bold"))
    room = max(out.width - 4, 20)
    for view in views:
        out.rule(style="dim")
        head = Text(f"#{view.thread_id} ", style="bold")
        head.append_text(clock_text(view))
        head.append(" · ")
        head.append(str(view.priority), style=PRIORITY_STYLE.get(str(view.priority), ""))
        head.append(f" · {view.language} · {view.intent} · {view.sentiment}")
        out.print(head)
        who = Text(f"{view.channel} · @{view.author_handle}")
        if view.rating is not None:
            who.append(f" {stars(view.rating)}", style="yellow")
        if view.assignee:
            who.append(f" → {view.assignee}", style="cyan")
        out.print(who)
        said = _clip_lines(view.text, room, TEXT_LINES)
        out.print(Text("\n".join(f"  {line}" for line in said.splitlines())))
        suggestion = Text("  ↳ ", style="dim")
        lines = _clip_lines(view.suggestion, room - 2, TEXT_LINES).splitlines() or [""]
        suggestion.append("\n".join([lines[0], *(f"    {line}" for line in lines[1:])]), style="italic")
        if view.suggestion_truncated:
            suggestion.append(" [cut to fit the channel]", style="dim")
        out.print(suggestion)


def _clip_lines(text: str, width: int, lines: int) -> str:
    """`text` cut (at a word, with "…") so that it wraps to at most `lines` lines of `width`."""
    wrapped: list[str] = []
    for paragraph in text.splitlines() or [""]:
        wrapped += wrap(paragraph, width) or [""]
    if len(wrapped) <= lines:
        return "\n".join(wrapped)
    return "\n".join([*wrapped[: lines - 1], shorten(" ".join(wrapped[lines - 1 :]), width, placeholder=" …")])


class BackfillDisplay:
    """A live line while a backfill runs: pages, items fetched, stored, already known and skipped, and any wait."""

    def __init__(self, out: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}", markup=False),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[counts]}", markup=False),
            TimeElapsedColumn(),
            console=out,
        )
        self.task: TaskID | None = None
        self.last: BackfillProgress | None = None

    def __enter__(self) -> BackfillDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, state: BackfillProgress) -> None:
        """Redraw from the backfill's progress (its `report` callback)."""
        self.last = state
        counts = (
            f"{state.pages} page(s) · {state.fetched} fetched · {state.stored} stored · "
            f"{state.known} already known · {state.skipped} skipped"
        )
        if state.waiting:
            counts += f" · retry {state.retries} in {state.waiting:.0f} s: {shorten(state.last_error or '', 100, placeholder='…')}"
        description = f"{state.connector}: back to {state.horizon:%Y-%m-%d %H:%M} UTC"
        if self.task is None:
            self.task = self.progress.add_task(description, total=None, counts=counts)
        else:
            self.progress.update(self.task, description=description, counts=counts)


def print_backfill(out: Console, state: BackfillProgress, *, finished: bool = True) -> None:
    """The summary table of a backfill (or of what an interrupted one stored)."""
    title = f"Backfill of {state.connector} ({state.type}), {describe(state.reach)} back" + (
        "" if finished else ": stopped early"
    )
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("meaning", style="dim")
    table.add_row(
        "reached back to",
        f"{state.horizon:%Y-%m-%d %H:%M} UTC",
        "" if finished else "as asked; not every page was read",
    )
    table.add_row("pages", str(state.pages), "")
    table.add_row("items fetched", str(state.fetched), "")
    table.add_row(
        "stored",
        Text(str(state.stored), style="bold green" if state.stored else ""),
        f"in {state.new_threads} new conversation(s)",
    )
    table.add_row(
        "  already answered",
        str(state.answered),
        "conversations answered on the platform: clock stopped, not posted to Slack",
    )
    table.add_row(
        "  past their deadline",
        str(state.overdue),
        "conversations shown as breached in the queue, without an alert to leads",
    )
    table.add_row(
        "already known", str(state.known), "stored before (by inbox run or an earlier backfill); not stored again"
    )
    table.add_row("skipped", str(state.skipped), "the brand's own posts, reposts, items that could not be read")
    if state.retries:
        table.add_row("retries", str(state.retries), Text(shorten(state.last_error or "", 160, placeholder="…")))
    out.print(table)
    if state.note:
        out.print(Text(f"Note: {state.note}.", style="yellow"))


def print_staffing(out: Console, report: StaffingReport) -> None:
    """Agents needed per hour of the week beside those who replied; runs of hours without traffic folded into one row."""
    within = int(report.within.total_seconds() // 60)
    title = (
        f"Staffing {report.since:%Y-%m-%d} to {report.until:%Y-%m-%d} ({report.timezone}): "
        f"{report.target:.0%} answered within {within} min"
    )
    table = Table(title=title, box=box.SIMPLE_HEAD, width=min(out.width, 80))
    table.add_column("hour", no_wrap=True)
    table.add_column("conv/h", justify="right", no_wrap=True)
    table.add_column("handling", justify="right", no_wrap=True)
    table.add_column("needed", justify="right", no_wrap=True)
    table.add_column("replied", justify="right", no_wrap=True)
    table.add_column("short", justify="right", no_wrap=True)
    quiet: list[HourStaffing] = []

    def fold() -> None:
        if quiet:
            span = quiet[0].label if len(quiet) == 1 else f"{quiet[0].label}–{quiet[-1].label}"
            table.add_row(Text(span, style="dim"), Text("no traffic", style="dim"), "", "", "", "")
            quiet.clear()

    for hour in report.hours:
        if hour.quiet:
            quiet.append(hour)
            continue
        fold()
        short = hour.short
        table.add_row(
            hour.label,
            f"{hour.arrivals_per_hour:.1f}",
            f"{hour.handling_minutes:.0f} min" + ("" if hour.handled else "*"),
            str(hour.needed),
            f"{hour.replied:.1f}",
            Text(f"{short:+.1f}", style="bold red" if short > 0 else "green"),
        )
    fold()
    out.print(table)
    if report.handling_assumed:
        note = f"* no conversation was assigned before its reply: handling assumed {report.handling_minutes:.0f} min"
    else:
        note = (
            f"* no measurement in that hour: the window's mean, {report.handling_minutes:.0f} min "
            f"({report.handled} conversations assigned, then answered)"
        )
    out.print(Text(note, style="dim"), soft_wrap=True)
    out.print(
        Text("Erlang C: one conversation at a time, no abandonment; see docs/staffing.md.", style="dim"),
        soft_wrap=True,
    )
