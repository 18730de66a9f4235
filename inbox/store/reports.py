"""What team leads measure, in the store's SQL: one row per conversation, and the figures per group.

The conversations are those started (`thread.opened_at`, the platform's time of the customer's first post) in
[start, end). Each one's first-response outcome is settled from what the SLA clock stored:

- `met` / `missed`: the first reply (`first_response_at`) came by / after the first-response deadline the clock set
  when the conversation opened (`first_due_at`, business hours and per-channel targets applied by `inbox.sla`);
- `waiting` / `breached`: no reply yet, the conversation open, its running deadline (`due_at`) still ahead / passed
  at `now`;
- `none`: closed without any reply (or opened before the deadline was kept, revision 0006_reports).

First-response minutes are wall-clock minutes from the post to the first reply: what the customer waited, kept by
the database in `thread.first_response_minutes` (a generated column, see `inbox.store.models.WAITED_MINUTES`).
Next responses met and missed are counted when each next-response clock stops (`inbox.store.clocks.next_settled`),
plus the running one when its deadline has passed. Day and hour are in the caller's time zone: its UTC offsets over
the window are written into the query (SQLite has no time zones), so both stores compute them alike.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store.models import CsatQuestion, CsatStatus, Customer, Item, Reply, ReplyStatus, Thread, UTCDateTime

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


def offsets(zone: tzinfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The zone's UTC offsets (seconds) over [start, end): (from when, offset), the first from `start`."""
    # A day at a time, then a bisection to the second inside a day whose offset changed: a ten-year window takes
    # a few thousand steps. Zones change offset on whole seconds; after a change the search resumes from it, so
    # several changes in a day are found, unless the offset comes back within the day (no zone does that).
    step = timedelta(days=1)

    def offset(at: datetime) -> int:
        value = at.astimezone(zone).utcoffset()
        return int(value.total_seconds()) if value is not None else 0

    found = [(start, offset(start))]
    at = start
    while at < end:
        later = end if end - at <= step else at + step  # never past `end`, which may be near datetime's limit
        if offset(later) != found[-1][1]:
            lo, hi = at, later  # the change is in (lo, hi]: find it to the second
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if offset(mid) == found[-1][1] else (lo, mid)
            found.append((hi.replace(microsecond=0), offset(hi)))
            at = hi  # look again from the change: another may follow within the day
            continue
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


@dataclass(frozen=True, slots=True)
class _Terms:
    """The SQL terms of a window's conversations: their rows (FROM and WHERE), the expressions the figures use."""

    rows: Any  # a SELECT with no columns yet: thread, its CSAT question (and what the group or the CSV need)
    group: Any
    minutes: Any  # minutes from the post to the first reply, NULL without one
    answered: Any  # a first reply was made
    met: Any  # it came by the first-response deadline
    late: Any  # it came after it
    breached: Any  # none yet, open, past the deadline
    waiting: Any  # none yet, open, before the deadline
    next_missed: Any  # next responses missed: those counted, and the running one past its deadline
    item: Any
    first_reply: Any


def _terms(
    dialect: str, scope: Scope, *, by: str | None, detail: bool, csat: bool = True, broad: bool = False
) -> _Terms:
    """The terms of the window's conversations; `detail` joins what the CSV needs besides the figures, `csat` the
    CSAT question (the percentiles do without it); `broad`: the window holds most conversations (see `_broad`)."""
    opening = (
        sa.select(Item.id)
        .where(Item.thread_id == Thread.id)
        .order_by(Item.posted_at, Item.id)
        .limit(1)
        .correlate(Thread)
        .scalar_subquery()
    )
    opened: Any = Thread.opened_at
    if broad and dialect == "sqlite":
        # SQLite's `+column` reads the table rather than the index: faster when most rows are wanted.
        opened = sa.literal_column("+thread.opened_at", type_=UTCDateTime())
    in_window = sa.and_(opened >= scope.start, opened < scope.end)
    # Who sent each conversation's first reply: a join, so that both stores can group by it.
    ranked_replies = (
        sa.select(
            Reply.thread_id,
            Reply.agent,
            sa.func.row_number().over(partition_by=Reply.thread_id, order_by=(Reply.sent_at, Reply.id)).label("rn"),
        )
        .where(
            Reply.status == ReplyStatus.SENT,
            Reply.sent_at.is_not(None),
            Reply.thread_id.in_(sa.select(Thread.id).where(in_window)),
        )
        .subquery("ranked_reply")
    )
    first = sa.select(ranked_replies.c.thread_id, ranked_replies.c.agent).where(ranked_replies.c.rn == 1)
    if dialect == "sqlite":
        # SQLite materialises the ranked replies without an index and scans them for every conversation (a year of
        # 11,000 took 33 s by agent): there, the first reply is the sent one with no earlier sent reply beside it,
        # found through the reply table's thread_id index.
        earlier = Reply.__table__.alias("earlier_reply")
        first = sa.select(Reply.thread_id, Reply.agent).where(
            Reply.status == ReplyStatus.SENT,
            Reply.sent_at.is_not(None),
            ~sa.exists().where(
                earlier.c.thread_id == Reply.thread_id,
                earlier.c.status == ReplyStatus.SENT,
                earlier.c.sent_at.is_not(None),
                sa.or_(
                    earlier.c.sent_at < Reply.sent_at,
                    sa.and_(earlier.c.sent_at == Reply.sent_at, earlier.c.id < Reply.id),
                ),
            ),
        )
    first_replies = first.subquery("first_reply")
    first_reply = first_replies.c.agent
    unanswered_open = sa.and_(Thread.first_response_at.is_(None), Thread.status.in_(_OPEN))
    # The running next-response clock, once past its deadline, is a next response missed.
    next_late = sa.and_(
        Thread.status.in_(_OPEN),
        Thread.clock_kind == "next_response",
        Thread.first_response_at.is_not(None),
        Thread.due_at <= scope.now,
    )
    item = Item.__table__.alias("opening")
    parts: dict[str, Any] = {
        "channel": Thread.channel,
        "connector": Thread.connector,
        "priority": Thread.priority,
        "agent": first_reply,
        "intent": item.c.intent,
        "language": item.c.language,
    }
    rows = sa.select().select_from(Thread).where(in_window)
    if csat:
        rows = rows.outerjoin(CsatQuestion, CsatQuestion.thread_id == Thread.id)
    if detail or by == "agent":
        rows = rows.outerjoin(first_replies, first_replies.c.thread_id == Thread.id)
    if detail or by in ("intent", "language"):
        rows = rows.outerjoin(item, item.c.id == opening)
    if detail:
        rows = rows.join(Customer, Customer.id == Thread.customer_id)
    return _Terms(
        rows=rows,
        group=_group_key(dialect, by, parts, scope),
        minutes=Thread.first_response_minutes,
        answered=Thread.first_response_at.is_not(None),
        met=Thread.first_response_at <= Thread.first_due_at,
        late=Thread.first_response_at > Thread.first_due_at,
        breached=sa.and_(unanswered_open, Thread.due_at <= scope.now),
        waiting=sa.and_(unanswered_open, Thread.due_at > scope.now),
        next_missed=Thread.next_missed + sa.case((next_late, 1), else_=0),
        item=item,
        first_reply=first_reply,
    )


def _conversations(dialect: str, scope: Scope, *, by: str | None = None, detail: bool = True) -> sa.Subquery:
    """The window's conversations, one row each: `conversation_id`, `outcome`, `minutes`, the next responses, the CSAT
    question, the `by` group `g`, and with `detail` every CSV column (the reports page reads this too)."""
    t = _terms(dialect, scope, by=by, detail=detail)
    outcome = sa.case(
        (t.met, "met"),
        (t.late, "missed"),
        (t.breached, "breached"),
        (t.waiting, "waiting"),
        else_="none",  # closed without a reply, or answered before the deadline was kept
    )
    item = t.item
    columns: list[Any] = [
        Thread.id.label("conversation_id"),
        outcome.label("outcome"),
        t.minutes.label("minutes"),
        Thread.next_met.label("next_met"),
        t.next_missed.label("next_missed"),
        CsatQuestion.status.label("csat_status"),
        CsatQuestion.score.label("csat_score"),
        t.group.label("g"),
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
            t.first_reply.label("replied_by"),
            Thread.resolved_at,
            sa.func.coalesce(Thread.rating_before, item.c.rating).label("rating_before"),
            sa.func.coalesce(Thread.rating_after, Thread.rating_before, item.c.rating).label("rating_after"),
        ]
    conversation: sa.Subquery = t.rows.add_columns(*columns).subquery("conversation")
    return conversation


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
    """How many rows meet `condition` (SQL's NULL counts as not)."""
    return sa.func.count(sa.case((condition, 1), else_=sa.null()))


def _aggregates(t: _Terms) -> list[Any]:
    """Each figure of a group, straight from the columns: SQLite would compute a subquery's expression per use."""
    asked = CsatQuestion.status.in_([str(s) for s in ASKED])
    answered = CsatQuestion.status == CsatStatus.ANSWERED
    return [
        sa.func.count().label("conversations"),
        _count(t.answered).label("first_responses"),
        _count(t.met).label("met"),
        _count(t.late).label("late"),
        _count(t.waiting).label("open_not_due"),
        _count(t.breached).label("waiting_past_due"),
        sa.func.coalesce(sa.func.sum(Thread.next_met), 0).label("next_met"),
        sa.func.coalesce(sa.func.sum(t.next_missed), 0).label("next_missed"),
        _count(t.minutes <= EXPECTATION_MINUTES).label("within"),
        _count(asked).label("questions"),
        _count(answered).label("answers"),
        _count(sa.and_(answered, CsatQuestion.score >= 4)).label("satisfied"),
    ]


def _percentiles_pg(t: _Terms) -> list[Any]:
    # One ordered-set aggregate for the three: the group's minutes are sorted once.
    fractions = postgresql.array([sa.literal(p, sa.Float) for p in PERCENTILES])
    return [sa.func.percentile_cont(fractions).within_group(t.minutes).label("spread")]


# Memory a report's sorts may take before spilling to disk: a million minutes sort in memory.
SORT_MEMORY_MB = 64


@asynccontextmanager
async def _sort_memory(conn: AsyncConnection) -> AsyncIterator[None]:
    """Let this connection's sorts (percentiles, groups) use SORT_MEMORY_MB, for the report only."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"SET LOCAL work_mem = '{SORT_MEMORY_MB}MB'"))  # until the transaction ends
        yield
        return
    await conn.exec_driver_sql(f"PRAGMA cache_size = -{SORT_MEMORY_MB * 1024}")
    await conn.exec_driver_sql("PRAGMA temp_store = MEMORY")
    try:
        yield
    finally:
        # The pooled connection goes back as it was.
        await conn.exec_driver_sql("PRAGMA temp_store = DEFAULT")
        await conn.exec_driver_sql("PRAGMA cache_size = -2000")


def _interpolated(ranks: Mapping[int, float], n: int) -> list[float | None]:
    """percentile_cont's linear interpolation between the values at the closest ranks (0-based) of `n` sorted values."""
    found: list[float | None] = []
    for p in PERCENTILES:
        position = (n - 1) * p
        low = math.floor(position)
        high = min(low + 1, n - 1)
        found.append(ranks[low] + (ranks[high] - ranks[low]) * (position - low))
    return found


async def _broad(conn: AsyncConnection, scope: Scope) -> bool:
    """Whether the window holds more than a quarter of all conversations (both counts read an index only)."""
    if conn.dialect.name != "sqlite":
        return False  # PostgreSQL's planner knows from its statistics
    total = (await conn.execute(sa.select(sa.func.count()).select_from(Thread))).scalar_one()
    inside = (
        await conn.execute(
            sa.select(sa.func.count()).where(Thread.opened_at >= scope.start, Thread.opened_at < scope.end)
        )
    ).scalar_one()
    return bool(inside * 4 > total)


def _needed_ranks(n: int) -> set[int]:
    """The 0-based ranks percentile_cont reads among `n` sorted values."""
    return {r for p in PERCENTILES for r in (math.floor((n - 1) * p), min(math.floor((n - 1) * p) + 1, n - 1))}


async def _percentiles_sqlite(
    conn: AsyncConnection, scope: Scope, by: str | None, counts: Mapping[Any, int], broad: bool
) -> dict[Any, list[Any]]:
    """Percentiles per group: each group's minutes ranked by a window function, the ranks percentile_cont needs read."""
    ranks = sorted({r for n in counts.values() if n for r in _needed_ranks(n)})
    if not ranks:
        return {}
    if by is None and broad:
        return {None: await _total_spread(conn, scope, counts[None])}
    t = _terms(conn.dialect.name, scope, by=by, detail=False, csat=False, broad=broad)
    answered = t.rows.add_columns(t.group.label("g"), t.minutes.label("m")).where(t.minutes.is_not(None))
    answered = answered.subquery("answered")
    ranked = sa.select(
        answered.c.g,
        answered.c.m,
        (sa.func.row_number().over(partition_by=answered.c.g, order_by=answered.c.m) - 1).label("rn"),
    ).subquery("ranked")
    query = sa.select(ranked.c.g, ranked.c.rn, ranked.c.m).where(ranked.c.rn.in_(ranks))
    values: dict[Any, dict[int, float]] = defaultdict(dict)
    for group, rank, minutes in await conn.execute(query):
        values[group][int(rank)] = float(minutes)
    return {group: _interpolated(values[group], n) for group, n in counts.items() if n}


async def _total_spread(conn: AsyncConnection, scope: Scope, n: int) -> list[Any]:
    """The percentiles of a window holding most conversations, read from the minutes' index in order: for each,
    the two values at its closest ranks, skipping the lower ones (no sort, no table read)."""
    # The index's order is the minutes' order: SQLite takes it when told, rather than sorting the window's rows.
    minutes = sa.literal_column("first_response_minutes", sa.Float)
    opened = sa.literal_column("opened_at", UTCDateTime())
    ordered = (
        sa.select(minutes)
        .select_from(sa.text("thread INDEXED BY ix_thread_minutes_opened"))
        .where(minutes.is_not(None), opened >= scope.start, opened < scope.end)
        .order_by(minutes)
        .limit(2)
    )
    values: dict[int, float] = {}
    for low in sorted({math.floor((n - 1) * p) for p in PERCENTILES}):
        for rank, found in enumerate((await conn.execute(ordered.offset(low))).scalars(), start=low):
            values[rank] = float(found)
    return _interpolated(values, n)


async def figures(engine: AsyncEngine, scope: Scope, by: str | None, *, spread: bool = True) -> list[Figures]:
    """The figures of the window's conversations per `by` group (None: one total row), ordered by group; without
    `spread`, the percentiles are left out (None), saving a sort of the window's minutes."""
    if by is not None and by not in KEYS:
        raise ValueError(f"unknown grouping {by!r}; use one of {', '.join(KEYS)}")
    async with engine.connect() as conn, _sort_memory(conn):
        dialect = conn.dialect.name
        broad = await _broad(conn, scope)
        t = _terms(dialect, scope, by=by, detail=False, broad=broad)
        extra = _percentiles_pg(t) if dialect == "postgresql" and spread else []
        query = t.rows.add_columns(t.group.label("g"), *_aggregates(t), *extra)
        if by is not None:
            query = query.group_by(t.group)
        rows = (await conn.execute(query)).all()
        spreads: dict[Any, list[Any]] = {}
        if spread and dialect == "postgresql":
            spreads = {row.g: list(row.spread) if row.spread is not None else [None] * 3 for row in rows}
        elif spread:
            counts = {row.g: row.first_responses for row in rows}
            spreads = await _percentiles_sqlite(conn, scope, by, counts, broad)
    found = [_figures(row, spreads.get(row.g, [None, None, None])) for row in rows]
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
        missed=n("late") + n("waiting_past_due"),
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


# Rows a page of the streamed CSV holds: memory stays flat whatever the window.
PAGE_ROWS = 2000


def _ordered_conversations(dialect: str, scope: Scope) -> Any:
    conversation = _conversations(dialect, scope)
    c = conversation.c
    return sa.select(conversation).order_by(c.started_at, c.conversation_id)


async def conversations(engine: AsyncEngine, scope: Scope) -> list[Conversation]:
    """One row per conversation started in the window, oldest first."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_ordered_conversations(conn.dialect.name, scope))).all()
    return [_conversation(row) for row in rows]


async def conversation_pages(
    engine: AsyncEngine, scope: Scope, size: int = PAGE_ROWS
) -> AsyncGenerator[list[Conversation], None]:
    """The rows of `conversations`, streamed from the store `size` at a time (close it with contextlib.aclosing)."""
    async with engine.connect() as conn:
        query = _ordered_conversations(conn.dialect.name, scope).execution_options(yield_per=size)
        result = await conn.stream(query)
        async for page in result.partitions(size):
            yield [_conversation(row) for row in page]


def _conversation(row: Any) -> Conversation:
    return Conversation(
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


def _utc(value: datetime | str | None) -> Any:
    """A stored time read back through a subquery (SQLite gives its text): aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
