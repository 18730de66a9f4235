"""Terminal rendering of the queue and of alerts (customer text always as plain Text, never markup)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from inbox.sla import SlaState
from inbox.views import ThreadView

STATE_STYLE = {
    SlaState.OK: "green",
    SlaState.WARNING: "yellow",
    SlaState.BREACHED: "bold red",
    SlaState.MET: "green",
    SlaState.MISSED: "red",
}
PRIORITY_STYLE = {"urgent": "bold red", "high": "red", "normal": "", "low": "dim"}


def clock_text(view: ThreadView) -> Text:
    """'12 min left' or '3 min late', coloured by SLA state."""
    minutes = view.clock.minutes_left
    label = f"{minutes:.0f} min left" if minutes >= 0 else f"{-minutes:.0f} min late"
    return Text(f"{view.clock.state} · {label}", style=STATE_STYLE.get(view.clock.state, ""))


def stars(rating: int | None) -> str:
    """★★☆☆☆ for a 2-star review."""
    return "" if rating is None else "★" * rating + "☆" * (5 - rating)


def print_queue(out: Console, views: Sequence[ThreadView]) -> None:
    """The open queue as a table, most urgent first."""
    if not views:
        out.print("The queue is empty: nothing waits for a reply.")
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
        author = Text(f"{view.channel} · @{view.author_handle}")
        if view.rating is not None:
            author.append(f"\n{stars(view.rating)}", style="yellow")
        if view.assignee:
            author.append(f"\n→ {view.assignee}", style="cyan")
        suggestion = Text(view.suggestion)
        if view.suggestion_truncated:
            suggestion.append(" [cut to fit the channel]", style="dim")
        table.add_row(
            str(view.thread_id),
            clock_text(view),
            Text(str(view.priority), style=PRIORITY_STYLE.get(str(view.priority), "")),
            author,
            f"{view.language} · {view.intent}\n{view.sentiment}",
            Text(view.text),
            suggestion,
        )
    out.print(table)
