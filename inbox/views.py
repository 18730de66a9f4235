"""Read side: a thread as an agent or a lead sees it, and the open queue most urgent first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.sla import ClockKind, SlaClock, SlaPolicies, SlaState, evaluate
from inbox.store import views as store_views
from inbox.triage import Priority
from inbox.windows import ItemWindow, of_row

_PRIORITIES = {p.rank: p for p in Priority}
# Breached clocks first, then warnings, then the rest; priority decides inside each group.
_URGENCY = {SlaState.BREACHED: 0, SlaState.WARNING: 1, SlaState.OK: 2, SlaState.MISSED: 3, SlaState.MET: 3}


@dataclass(frozen=True, slots=True)
class EarlierItem:
    """Something the same customer said before, in another conversation."""

    thread_id: int
    channel: str
    text: str
    posted_at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class ThreadView:
    """Everything shown about one conversation: its latest customer item, triage, suggestion, clock."""

    thread_id: int
    item_id: int
    connector: str
    channel: str
    kind: str
    status: str
    assignee: str | None
    priority: Priority
    author_handle: str
    author_name: str | None
    text: str
    url: str | None
    rating: int | None
    language: str
    sentiment: str
    intent: str
    suggestion: str
    suggestion_truncated: bool
    posted_at: datetime
    messages: int
    clock: SlaClock
    earlier: list[EarlierItem] = field(default_factory=list)
    window: ItemWindow = field(default_factory=ItemWindow)  # the platform's reply window of the latest item
    as_of: datetime | None = None  # when the view was drawn

    def window_note(self) -> str | None:
        """The reply window's line (plain text) when it matters more than the SLA deadline, or None."""
        if self.as_of is None or self.status not in ("new", "assigned"):
            return None
        return self.window.note(self.channel, self.as_of, self.clock.due_at)

    csat_status: str | None = None  # the CSAT question's state (store.models.CsatStatus), None: never asked
    csat_score: int | None = None  # the customer's 1-5 answer
    erased: bool = False  # its texts and names were erased (inbox forget, retention): nothing of it is shown again

    @property
    def sort_key(self) -> tuple[int, int, datetime]:
        """Most urgent first: SLA state, then priority, then the nearest deadline."""
        return (_URGENCY[self.clock.state], -self.priority.rank, self.clock.due_at)


async def open_queue(engine: AsyncEngine, policies: SlaPolicies, now: datetime, limit: int = 200) -> list[ThreadView]:
    """Open conversations (new or assigned), most urgent first."""
    views = [_view(rows, policies, now) for rows in await store_views.open_threads(engine, limit)]
    return sorted(views, key=lambda v: v.sort_key)


async def thread_view(engine: AsyncEngine, policies: SlaPolicies, thread_id: int, now: datetime) -> ThreadView | None:
    """One conversation with the customer's earlier conversations."""
    return (await thread_views(engine, policies, [thread_id], now)).get(thread_id)


async def thread_views(
    engine: AsyncEngine, policies: SlaPolicies, thread_ids: Sequence[int], now: datetime
) -> dict[int, ThreadView]:
    """Several conversations at once (three queries, however many), each with the customer's earlier ones."""
    return {rows.thread.id: _view(rows, policies, now) for rows in await store_views.threads(engine, thread_ids)}


def _view(rows: store_views.ThreadRows, policies: SlaPolicies, now: datetime) -> ThreadView:
    thread, latest = rows.thread, rows.latest
    clock = evaluate(
        thread.clock_start,
        thread.responded_at,
        policies.for_channel(thread.channel),
        now,
        kind=ClockKind(thread.clock_kind),
    )
    return ThreadView(
        thread_id=thread.id,
        item_id=latest.id,
        connector=thread.connector,
        channel=thread.channel,
        kind=thread.kind,
        status=thread.status,
        assignee=thread.assignee,
        priority=_PRIORITIES.get(thread.priority, Priority.NORMAL),
        author_handle=latest.author_handle,
        author_name=latest.author_name or thread.customer_display_name,
        text=latest.text,
        url=latest.url,
        rating=latest.rating,
        language=latest.language,
        sentiment=latest.sentiment,
        intent=latest.intent,
        suggestion=latest.suggestion,
        suggestion_truncated=latest.suggestion_truncated,
        posted_at=latest.posted_at,
        messages=latest.messages,
        clock=clock,
        earlier=[EarlierItem(r.thread_id, r.channel, r.text, r.posted_at, r.status) for r in rows.earlier],
        window=of_row(latest),
        as_of=now,
        csat_status=thread.csat_status,
        csat_score=thread.csat_score,
        erased=thread.erased_at is not None,
    )
