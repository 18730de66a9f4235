"""What team leads measure, in the store's SQL: one row per conversation, and the figures per group.

The conversations are those started (`thread.opened_at`, the platform's time of the customer's first post) in
[start, end). Each one's first-response outcome is settled from what the SLA clock stored:

- `met` / `missed`: the first reply (`first_response_at`) came by / after the first-response deadline the clock set
  when the conversation opened (`first_due_at`, business hours and per-channel targets applied by `inbox.sla`);
- `waiting` / `breached`: no reply yet, the conversation open, its running deadline (`due_at`) still ahead / passed
  at `now`;
- `none`: closed without any reply (or opened before the deadline was kept, revision 0006_reports).

First-response minutes are wall-clock minutes from the post to the first reply: what the customer waited.
Next responses met and missed are counted when each next-response clock stops (`inbox.store.clocks.next_settled`),
plus the running one when its deadline has passed. Day and hour are in the caller's time zone: its UTC offsets over
the window are written into the query (SQLite has no time zones), so both stores compute them alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store.models import CsatQuestion, CsatStatus, Customer, Item, Reply, ReplyStatus, Thread

# The groupings `--by` takes.
KEYS = ("channel", "connector", "agent", "intent", "language", "priority", "day", "hour")
PERCENTILES = (0.5, 0.9, 0.95)
EXPECTATION_MINUTES = 30.0  # what customers expect of a social answer, whatever the configured target
# CSAT questions that reached the customer.
ASKED = (CsatStatus.SENT, CsatStatus.ANSWERED, CsatStatus.CLOSED)
_OPEN = ("new", "assigned")


@dataclass(frozen=True, slots=True)
class Scope:
    """What the figures depend on besides the data: the window, `now`, the local zone and the default targets."""

    start: datetime
    end: datetime
    now: datetime
    zone: tzinfo = UTC
    # First-response targets (minutes) for conversations opened before the target was kept: default and per channel.
    target: float = 30.0
    targets: Mapping[str, float] | None = None


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation's row, as the CSV has it (priority as its stored rank)."""

    conversation_id: int
    connector: str
    channel: str
    kind: str
    customer: str
    language: str | None
    intent: str | None
    sentiment: str | None
    priority: int
    started_at: datetime
    first_response_at: datetime | None
    first_response_minutes: float | None
    sla_target_minutes: float | None
    sla_outcome: str
    next_responses_met: int
    next_responses_missed: int
    assignee: str | None
    replied_by: str | None
    resolved_at: datetime | None
    csat: int | None
    rating_before: int | None
    rating_after: int | None


@dataclass(frozen=True, slots=True)
class Figures:
    """One group's figures; `group` is the raw key (None for the total row, or for conversations without one)."""

    group: str | int | None
    conversations: int
    first_responses: int
    met: int
    missed: int
    open_not_due: int
    waiting_past_due: int
    p50: float | None
    p90: float | None
    p95: float | None
    next_met: int
    next_missed: int
    within_expectation: int
    csat_questions: int
    csat_answers: int
    csat_satisfied: int


# -- the query ---------------------------------------------------------------------------------------------------------


def _minutes_between(dialect: str, start: Any, end: Any) -> Any:
    """Minutes from `start` to `end` (stored naive UTC), never below 0: a platform's clock may run ahead of ours."""
    if dialect == "postgresql":
        minutes = sa.extract("epoch", end - start) / 60.0
        return sa.func.greatest(minutes, 0.0)
    minutes = (sa.func.julianday(end) - sa.func.julianday(start)) * 1440.0
    return sa.func.max(minutes, 0.0)


def offsets(zone: tzinfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The zone's UTC offsets (seconds) over [start, end): (from when, offset), the first from `start`."""
    step = timedelta(minutes=15)  # zones change offset on quarter hours at the finest

    def offset(at: datetime) -> int:
        value = at.astimezone(zone).utcoffset()
        return int(value.total_seconds()) if value is not None else 0

    found = [(start, offset(start))]
    at = start
    while at < end:
        later = min(at + step, end)
        if offset(later) != found[-1][1]:
            lo, hi = at, later  # the change is in (lo, hi]: find it to the second
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if offset(mid) == found[-1][1] else (lo, mid)
            found.append((hi.replace(microsecond=0), offset(hi)))
        at = later
    return found


def _local(dialect: str, column: Any, zone: tzinfo, start: datetime, end: datetime) -> Any:
    """`column` (stored naive UTC) as local time in `zone`: a timestamp on PostgreSQL, a Julian day on SQLite."""
    changes = offsets(zone, start, end)
    seconds: Any = sa.literal(changes[0][1], literal_execute=True)
    if len(changes) > 1:
        seconds = sa.case(
            *((column >= at, sa.literal(value)) for at, value in changes[:0:-1]),
            else_=sa.literal(changes[0][1]),
        )
    if dialect == "postgresql":
        return column + sa.func.make_interval(0, 0, 0, 0, 0, 0, seconds)
    return sa.func.julianday(column) + seconds / 86400.0


def _group_key(dialect: str, by: str | None, parts: Mapping[str, Any], scope: Scope) -> Any:
    """The SQL value `by` groups on (None: one total row)."""
    if by is None:
        return sa.null()
    if by in ("day", "hour"):
        local = _local(dialect, Thread.opened_at, scope.zone, scope.start, scope.end)
        if by == "day":
            if dialect == "postgresql":
                return sa.func.to_char(local, "YYYY-MM-DD")
            return sa.func.strftime("%Y-%m-%d", local)
        # Hour of the week, Monday 00:00 = 0.
        if dialect == "postgresql":
            weekday = sa.cast(sa.extract("dow", local), sa.Integer)
            hour = sa.cast(sa.extract("hour", local), sa.Integer)
        else:
            weekday = sa.cast(sa.func.strftime("%w", local), sa.Integer)
            hour = sa.cast(sa.func.strftime("%H", local), sa.Integer)
        return ((weekday + 6) % 7) * 24 + hour
    return parts[by]


def _conversations(dialect: str, scope: Scope, *, by: str | None, detail: bool) -> sa.Subquery:
    """The window's conversations with what the figures need (`detail`: every CSV column), and their group `g`."""
    opening = (
        sa.select(Item.id)
        .where(Item.thread_id == Thread.id)
        .order_by(Item.posted_at, Item.id)
        .limit(1)
        .correlate(Thread)
        .scalar_subquery()
    )
    first_reply = (
        sa.select(Reply.agent)
        .where(Reply.thread_id == Thread.id, Reply.status == ReplyStatus.SENT, Reply.sent_at.is_not(None))
        .order_by(Reply.sent_at, Reply.id)
        .limit(1)
        .correlate(Thread)
        .scalar_subquery()
    )
    now = scope.now
    is_open = Thread.status.in_(_OPEN)
    outcome = sa.case(
        (
            Thread.first_response_at.is_not(None),
            sa.case(
                (Thread.first_due_at.is_(None), "none"),
                (Thread.first_response_at <= Thread.first_due_at, "met"),
                else_="missed",
            ),
        ),
        (is_open, sa.case((Thread.due_at <= now, "breached"), else_="waiting")),
        else_="none",
    )
    # The running next-response clock, once past its deadline, is a next response missed.
    waiting_next = sa.case(
        (
            sa.and_(
                is_open,
                Thread.clock_kind == "next_response",
                Thread.first_response_at.is_not(None),
                Thread.due_at <= now,
            ),
            1,
        ),
        else_=0,
    )
    minutes = sa.case(
        (Thread.first_response_at.is_not(None), _minutes_between(dialect, Thread.opened_at, Thread.first_response_at)),
        else_=sa.null(),
    )
    needs_item = detail or by in ("intent", "language")
    item = Item.__table__.alias("opening")
    parts: dict[str, Any] = {
        "channel": Thread.channel,
        "connector": Thread.connector,
        "priority": Thread.priority,
        "agent": first_reply,
        "intent": item.c.intent,
        "language": item.c.language,
    }
    columns: list[Any] = [
        Thread.id.label("conversation_id"),
        outcome.label("outcome"),
        minutes.label("minutes"),
        (Thread.next_met).label("next_met"),
        (Thread.next_missed + waiting_next).label("next_missed"),
        CsatQuestion.status.label("csat_status"),
        CsatQuestion.score.label("csat_score"),
        _group_key(dialect, by, parts, scope).label("g"),
    ]
    if detail:
        columns += [
            Thread.connector,
            Thread.channel,
            Thread.kind,
            Customer.handle.label("customer"),
            item.c.language,
            item.c.intent,
            item.c.sentiment,
            Thread.priority,
            Thread.opened_at.label("started_at"),
            Thread.first_response_at,
            _target(scope).label("sla_target_minutes"),
            Thread.assignee,
            first_reply.label("replied_by"),
            Thread.resolved_at,
            sa.func.coalesce(Thread.rating_before, item.c.rating).label("rating_before"),
            sa.func.coalesce(Thread.rating_after, Thread.rating_before, item.c.rating).label("rating_after"),
        ]
    query = (
        sa.select(*columns)
        .select_from(Thread)
        .outerjoin(CsatQuestion, CsatQuestion.thread_id == Thread.id)
        .where(Thread.opened_at >= scope.start, Thread.opened_at < scope.end)
    )
    if needs_item:
        query = query.outerjoin(item, item.c.id == opening)
    if detail:
        query = query.join(Customer, Customer.id == Thread.customer_id)
    return query.subquery("conversation")


def _target(scope: Scope) -> Any:
    """The first-response target kept when the conversation opened, else the configured one for its channel."""
    configured: Any = sa.literal(scope.target)
    if scope.targets:
        configured = sa.case(
            *((Thread.channel == name, sa.literal(minutes)) for name, minutes in sorted(scope.targets.items())),
            else_=sa.literal(scope.target),
        )
    return sa.func.coalesce(Thread.sla_target_minutes, configured)


def _count(condition: Any) -> Any:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _aggregates(c: Any) -> list[Any]:
    return [
        sa.func.count().label("conversations"),
        sa.func.count(c.minutes).label("first_responses"),
        _count(c.outcome == "met").label("met"),
        _count(c.outcome.in_(("missed", "breached"))).label("missed"),
        _count(c.outcome == "waiting").label("open_not_due"),
        _count(c.outcome == "breached").label("waiting_past_due"),
        sa.func.coalesce(sa.func.sum(c.next_met), 0).label("next_met"),
        sa.func.coalesce(sa.func.sum(c.next_missed), 0).label("next_missed"),
        _count(c.minutes <= EXPECTATION_MINUTES).label("within"),
        _count(c.csat_status.in_([str(s) for s in ASKED])).label("questions"),
        _count(c.csat_status == CsatStatus.ANSWERED).label("answers"),
        _count(sa.and_(c.csat_status == CsatStatus.ANSWERED, c.csat_score >= 4)).label("satisfied"),
    ]


def _percentiles_pg(c: Any) -> list[Any]:
    return [sa.func.percentile_cont(p).within_group(c.minutes).label(f"p{round(p * 100)}") for p in PERCENTILES]


async def _percentiles_sqlite(conn: AsyncConnection, c: Any) -> dict[Any, list[float | None]]:
    """Percentiles per group with window functions, interpolated as percentile_cont does."""
    ranked = (
        sa.select(
            c.g,
            c.minutes,
            (sa.func.row_number().over(partition_by=c.g, order_by=c.minutes) - 1).label("rn"),
            sa.func.count().over(partition_by=c.g).label("n"),
        )
        .where(c.minutes.is_not(None))
        .subquery("ranked")
    )
    columns: list[Any] = [ranked.c.g]
    for p in PERCENTILES:
        position = (ranked.c.n - 1) * p
        lower = sa.cast(position, sa.Integer)  # floor: never negative
        low = sa.func.max(sa.case((ranked.c.rn == lower, ranked.c.minutes)))
        high = sa.func.max(sa.case((ranked.c.rn == lower + 1, ranked.c.minutes)))
        columns.append(low + (position - lower) * (sa.func.coalesce(high, low) - low))
    query = sa.select(*columns).group_by(ranked.c.g, ranked.c.n)
    return {row[0]: list(row[1:]) for row in await conn.execute(query)}


async def figures(engine: AsyncEngine, scope: Scope, by: str | None) -> list[Figures]:
    """The figures of the window's conversations per `by` group (None: one total row), ordered by group."""
    if by is not None and by not in KEYS:
        raise ValueError(f"unknown grouping {by!r}; use one of {', '.join(KEYS)}")
    async with engine.connect() as conn:
        dialect = conn.dialect.name
        c = _conversations(dialect, scope, by=by, detail=False).c
        extra = _percentiles_pg(c) if dialect == "postgresql" else []
        query = sa.select(c.g, *_aggregates(c), *extra).group_by(c.g)
        rows = (await conn.execute(query)).all()
        if dialect == "postgresql":
            spread = {row.g: [row.p50, row.p90, row.p95] for row in rows}
        else:
            spread = await _percentiles_sqlite(conn, c)
    found = [_figures(row, spread.get(row.g, [None, None, None])) for row in rows]
    if by is None and not found:
        found = [_figures(None, [None, None, None])]
    return sorted(found, key=lambda f: (f.group is None, f.group if f.group is not None else 0))


def _figures(row: Any, spread: Sequence[Any]) -> Figures:
    def n(name: str) -> int:
        return int(getattr(row, name)) if row is not None else 0

    p50, p90, p95 = (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v) for v in spread)
    return Figures(
        group=row.g if row is not None else None,
        conversations=n("conversations"),
        first_responses=n("first_responses"),
        met=n("met"),
        missed=n("missed"),
        open_not_due=n("open_not_due"),
        waiting_past_due=n("waiting_past_due"),
        p50=p50,
        p90=p90,
        p95=p95,
        next_met=n("next_met"),
        next_missed=n("next_missed"),
        within_expectation=n("within"),
        csat_questions=n("questions"),
        csat_answers=n("answers"),
        csat_satisfied=n("satisfied"),
    )


async def conversations(engine: AsyncEngine, scope: Scope) -> list[Conversation]:
    """One row per conversation started in the window, oldest first."""
    async with engine.connect() as conn:
        conversation = _conversations(conn.dialect.name, scope, by=None, detail=True)
        c = conversation.c
        rows = (await conn.execute(sa.select(conversation).order_by(c.started_at, c.conversation_id))).all()
    return [
        Conversation(
            conversation_id=row.conversation_id,
            connector=row.connector,
            channel=row.channel,
            kind=row.kind,
            customer=row.customer,
            language=row.language,
            intent=row.intent,
            sentiment=row.sentiment,
            priority=int(row.priority),
            started_at=_utc(row.started_at),
            first_response_at=_utc(row.first_response_at),
            first_response_minutes=None if row.minutes is None else float(row.minutes),
            sla_target_minutes=None if row.sla_target_minutes is None else float(row.sla_target_minutes),
            sla_outcome=row.outcome,
            next_responses_met=int(row.next_met),
            next_responses_missed=int(row.next_missed),
            assignee=row.assignee,
            replied_by=row.replied_by,
            resolved_at=_utc(row.resolved_at),
            csat=row.csat_score if row.csat_status == CsatStatus.ANSWERED else None,
            rating_before=row.rating_before,
            rating_after=row.rating_after,
        )
        for row in rows
    ]


def _utc(value: datetime | str | None) -> Any:
    """A stored time read back through a subquery (SQLite gives its text): aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
