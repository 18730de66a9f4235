"""What the inbox stores: customers, threads (the unit of work), items (what customers said), replies, cursors."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import Field, SQLModel

from inbox.sla import SlaState


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC out; stored as naive UTC so SQLite and PostgreSQL compare alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _naive_utc(value)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        """On SQLite, the text SQLAlchemy's DATETIME stores, written in one step: ingest binds about 11 per item."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: datetime | None) -> str | None:
            return None if value is None else _naive_utc(value).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class WaitedMinutes(sa.sql.expression.ColumnElement[float]):
    """Minutes from a thread's opening post to its first response, never below 0 (NULL without one), per dialect."""

    type = sa.Float()
    inherit_cache = True


# Written as the reports computed them at read time before revision 0007_reportspeed (the same figures): a platform's
# clock may run ahead of ours, hence never below 0; on SQLite from Julian days, a few microseconds off.
WAITED_MINUTES = {
    "postgresql": (
        "CASE WHEN first_response_at IS NULL THEN NULL "
        "ELSE greatest(date_part('epoch', first_response_at - opened_at) / 60.0, 0.0) END"
    ),
    "sqlite": (
        "CASE WHEN first_response_at IS NULL THEN NULL "
        "ELSE max((julianday(first_response_at) - julianday(opened_at)) * 1440.0, 0.0) END"
    ),
}


@compiles(WaitedMinutes)
def _waited_minutes(_element: WaitedMinutes, compiler: SQLCompiler, **_kw: Any) -> str:
    return WAITED_MINUTES[compiler.dialect.name]


def _naive_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value.replace(tzinfo=None)  # the common case, without astimezone's conversion
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; pass an aware datetime")
    return value.astimezone(UTC).replace(tzinfo=None)


def utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


class Status(StrEnum):
    """Where a thread stands in the team's workflow."""

    NEW = "new"
    ASSIGNED = "assigned"
    REPLIED = "replied"
    RESOLVED = "resolved"


class SlaStageType(sa.types.TypeDecorator[SlaState | None]):
    """A thread's SLA stage: the state the sweep last announced for its running clock, None when no clock runs.

    Stored as a small integer (0 nothing announced, 1 warned, 2 breached, 3 stopped: answered or resolved), so
    the sweep's partial indexes select the clocks still to announce with `sla_stage < 2` and `sla_stage < 1`.
    Compare it in SQL with a stage or its stored integer, as the indexes do (`sla_stage < 2`), never with None
    (SQL would test for NULL, which it never is).
    """

    impl = sa.Integer
    cache_ok = True

    def process_bind_param(self, value: SlaState | int | None, dialect: Dialect) -> int:
        if isinstance(value, int) and value in _STAGES:
            return value  # already the stored form
        return stage_value(value)

    def process_result_value(self, value: int | None, dialect: Dialect) -> SlaState | None:
        return _STAGES[value] if value is not None else None


# The announced states a running clock moves through, in order; a settled clock (met or missed) has no stage.
_STAGES: dict[int, SlaState | None] = {0: SlaState.OK, 1: SlaState.WARNING, 2: SlaState.BREACHED, 3: None}
_VALUES = {stage: value for value, stage in _STAGES.items()}


def stage_value(stage: SlaState | None) -> int:
    """The integer stored for an SLA stage."""
    if stage not in _VALUES:
        raise ValueError(
            f"{stage!r} is not an SLA stage: a running clock is ok, warning or breached, a stopped one None"
        )
    return _VALUES[stage]


class ReplyStatus(StrEnum):
    """A reply's way out: recorded before sending, marked after."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Customer(SQLModel, table=True):
    """A person as one channel knows them; their items across connectors join here."""

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    handle: str = Field(max_length=255)
    display_name: str | None = Field(default=None, max_length=255)
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    # When `inbox forget` or retention erased them: the handle is then a pseudonym and the name gone.
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (sa.UniqueConstraint("channel", "handle", name="uq_customer_channel_handle"),)


class Thread(SQLModel, table=True):
    """A conversation with one customer: status, assignee and the SLA clock live here."""

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=64)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=255)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    kind: str = Field(max_length=16)
    status: str = Field(default=Status.NEW, max_length=16)
    assignee: str | None = Field(default=None, max_length=64)
    priority: int = 1
    opened_at: datetime = Field(sa_type=UTCDateTime)
    last_customer_at: datetime = Field(sa_type=UTCDateTime)
    # The running clock: started at the platform time of the oldest unanswered customer item.
    cycle: int = 1
    clock_kind: str = Field(default="first_response", max_length=16)
    clock_start: datetime = Field(sa_type=UTCDateTime)
    warn_at: datetime = Field(sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    sla_stage: SlaState | None = Field(default=SlaState.OK, sa_type=SlaStageType, nullable=False)
    responded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    first_response_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    # The platform's reply window: the last moment it takes a reply to the latest customer item (with the
    # connector's extension, if any), None when it sets none; moved by each new customer item. `window_stage`
    # is what the sweep announced of it: 0 nothing, 1 warned, 2 closed (see WindowStage).
    reply_window_closes_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    window_stage: int = 0
    # A review's stars when the conversation opened, and now (a later poll saw the review edited): recovered or lowered.
    rating_before: int | None = None
    rating_after: int | None = None
    # For reports: the first-response deadline and target the SLA clock set when the conversation opened (the
    # running clock's are overwritten by next responses), and how many next-response clocks settled in time or late.
    first_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sla_target_minutes: float | None = None
    next_met: int = 0
    next_missed: int = 0
    # Minutes from the post to the first response, kept by the database whenever either changes (a generated
    # column: STORED on PostgreSQL, VIRTUAL on SQLite, whose indexes below keep it): reports read it, and the
    # window's minutes in order, from an index.
    first_response_minutes: float | None = Field(
        default=None, sa_column=sa.Column(sa.Float, sa.Computed(WaitedMinutes(), persisted=True), nullable=True)
    )
    # When its texts and names were erased (`inbox forget`, retention): its numbers stay, its Slack messages are not redrawn.
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint("connector", "external_id", name="uq_thread_connector_external"),
        # Reports read the conversations started in a window, with their first-response minutes (no table read for
        # the spread), and the minutes in order for a window holding most conversations (the percentiles read the
        # ranks they need straight from it, without sorting).
        sa.Index("ix_thread_opened_minutes", "opened_at", "first_response_minutes"),
        sa.Index(
            "ix_thread_minutes_opened",
            "first_response_minutes",
            "opened_at",
            sqlite_where=sa.text("first_response_minutes IS NOT NULL"),
            postgresql_where=sa.text("first_response_minutes IS NOT NULL"),
        ),
        # The sweep reads only the clocks it has something to announce for: those past their deadline
        # and not yet breached, and those past their warning and not yet warned.
        sa.Index(
            "ix_thread_sla_due",
            "due_at",
            sqlite_where=sa.text("sla_stage < 2"),
            postgresql_where=sa.text("sla_stage < 2"),
        ),
        sa.Index(
            "ix_thread_sla_warn",
            "warn_at",
            sqlite_where=sa.text("sla_stage < 1"),
            postgresql_where=sa.text("sla_stage < 1"),
        ),
        # The reply windows the sweep has still to announce (warned, closed) of open threads: a few among many.
        sa.Index(
            "ix_thread_window",
            "reply_window_closes_at",
            sqlite_where=sa.text("window_stage < 2 AND status IN ('new', 'assigned')"),
            postgresql_where=sa.text("window_stage < 2 AND status IN ('new', 'assigned')"),
        ),
        # The open queue (inbox queue, /inbox, App Home, the queue-depth metric) out of a store of mostly closed threads.
        sa.Index(
            "ix_thread_open",
            "due_at",
            sqlite_where=sa.text("status IN ('new', 'assigned')"),
            postgresql_where=sa.text("status IN ('new', 'assigned')"),
        ),
    )


class WindowStage:
    """What the sweep announced of a thread's reply window (`Thread.window_stage`)."""

    NONE = 0
    WARNED = 1
    CLOSED = 2


def thread_is_open() -> sa.TextClause:
    """Threads waiting for the team (new or assigned), written so the partial index ix_thread_open matches."""
    # Constants, not parameters: a query with parameters cannot prove it falls inside a partial index.
    return sa.text("thread.status IN ('new', 'assigned')")


class Item(SQLModel, table=True):
    """One thing a customer said, stored once per connector and external id."""

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=64)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=255)
    thread_id: int = Field(foreign_key="thread.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    kind: str = Field(max_length=16)
    author_handle: str = Field(max_length=255)
    author_name: str | None = Field(default=None, max_length=255)
    text: str
    url: str | None = None
    rating: int | None = None
    posted_at: datetime = Field(sa_type=UTCDateTime)
    ingested_at: datetime = Field(sa_type=UTCDateTime)
    language: str = Field(max_length=8)
    sentiment: str = Field(max_length=16)
    intent: str = Field(max_length=16)
    priority: int = 1
    suggestion: str = ""
    suggestion_template: str | None = Field(default=None, max_length=64)
    suggestion_truncated: bool = False
    reply_to: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    # The platform's reply window for this item (RawItem's), the connector's other reply modes
    # ([{"name", "label", "closes_at"}]) and what Send still does after the window (Connector.after_window).
    reply_window_closes_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    extended_window_closes_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reply_modes: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    after_window: str | None = Field(default=None, max_length=255)
    # When the platform reported the item removed (the customer deleted their comment): it is not answered then.
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint("connector", "external_id", name="uq_item_connector_external"),
        sa.Index("ix_item_customer_posted", "customer_id", "posted_at"),
    )


class Reply(SQLModel, table=True):
    """A reply to a thread; one per SLA cycle and reply mode, so a double click cannot send two."""

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(foreign_key="thread.id")
    item_id: int = Field(foreign_key="item.id")
    cycle: int
    mode: str = Field(default="reply", max_length=32)  # connector.STANDARD_MODE, or one of the item's reply modes
    text: str
    agent: str = Field(max_length=64)
    status: str = Field(default=ReplyStatus.PENDING, max_length=16)
    external_id: str | None = Field(default=None, max_length=255)
    url: str | None = None
    error: str | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The worker sending it, until when: a pending reply whose claim has run out is left over from a crash.
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What the platform last reported of it (sent, delivered, read, failed: WhatsApp's statuses), and when.
    delivery: str | None = Field(default=None, max_length=16)
    delivery_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        sa.UniqueConstraint("thread_id", "cycle", "mode", name="uq_reply_thread_cycle_mode"),
        # A platform's delivery report names the reply by its id there.
        sa.Index("ix_reply_external_id", "external_id"),
    )


class CsatStatus(StrEnum):
    """Where a CSAT question stands: scheduled, being sent, sent and awaiting, then answered or closed."""

    SCHEDULED = "scheduled"
    SENDING = "sending"  # claimed by a worker; a claim that ran out is left over from a crash
    SENT = "sent"  # awaiting the customer's next message
    ANSWERED = "answered"
    CLOSED = "closed"  # the next message was no rating, or none came within answer_hours
    CANCELLED = "cancelled"  # the conversation reopened before the question was due
    FAILED = "failed"  # the platform refused it


class CsatQuestion(SQLModel, table=True):
    """The one satisfaction question of a conversation resolved with a reply, and its answer."""

    __tablename__ = "csat_question"

    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(foreign_key="thread.id", unique=True)  # never twice per conversation
    connector: str = Field(max_length=64)
    channel: str = Field(max_length=32)
    language: str = Field(max_length=8)
    ask_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default=CsatStatus.SCHEDULED, max_length=16)
    text: str | None = None  # rendered when first claimed, so a resend after a crash is the same text
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    external_id: str | None = Field(default=None, max_length=255)
    error: str | None = None
    score: int | None = None  # 1-5
    answer_item_id: int | None = Field(default=None, foreign_key="item.id")
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)

    __table_args__ = (
        # The sweep reads only the questions still to send.
        sa.Index(
            "ix_csat_question_due",
            "ask_at",
            sqlite_where=sa.text("status IN ('scheduled', 'sending')"),
            postgresql_where=sa.text("status IN ('scheduled', 'sending')"),
        ),
        sa.Index("ix_csat_question_sent_at", "sent_at"),
    )


class Pushed(SQLModel, table=True):
    """A verified push body stored as received, before its 2xx; read, triaged and ingested right after, then deleted."""

    id: int | None = Field(default=None, primary_key=True)
    connector: str = Field(max_length=64)
    body: str = Field(sa_type=sa.Text)
    received_at: datetime = Field(sa_type=UTCDateTime)
    # The worker ingesting it, until when; a claim that ran out (a crash) is free again.
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Cursor(SQLModel, table=True):
    """Where a connector resumes; written in the same transaction as the items it produced."""

    connector: str = Field(primary_key=True, max_length=64)
    value: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class Worker(SQLModel, table=True):
    """A running `inbox run` process; alive while `seen_at` is younger than one lease period."""

    id: str = Field(primary_key=True, max_length=128)
    host: str = Field(max_length=255)
    pid: int
    started_at: datetime = Field(sa_type=UTCDateTime)
    seen_at: datetime = Field(sa_type=UTCDateTime)


class ConnectorLease(SQLModel, table=True):
    """The one worker that polls a connector, until `expires_at` unless it renews."""

    connector: str = Field(primary_key=True, max_length=64)
    worker: str = Field(max_length=128)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class ConnectorHealth(SQLModel, table=True):
    """The last known state of a connector, for `inbox check`, /healthz and alerts."""

    connector: str = Field(primary_key=True, max_length=64)
    healthy: bool = True
    reason: str | None = None
    failures: int = 0
    last_poll_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_ok_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    items_total: int = 0


class Event(SQLModel, table=True):
    """Outbox: something to announce (new item, SLA alert, health change), written with its cause."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    thread_id: int | None = Field(default=None, foreign_key="thread.id")
    item_id: int | None = Field(default=None, foreign_key="item.id")
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = Field(sa_type=UTCDateTime)
    done_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = None
    # The worker delivering it, until when; another worker may take it over once the claim has run out.
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)

    __table_args__ = (
        sa.Index(
            "ix_event_pending",
            "id",
            sqlite_where=sa.text("done_at IS NULL"),
            postgresql_where=sa.text("done_at IS NULL"),
        ),
        # "Is an older event of this thread still pending?": asked for every event an outbox claims.
        sa.Index(
            "ix_event_thread_pending",
            "thread_id",
            "id",
            sqlite_where=sa.text("done_at IS NULL"),
            postgresql_where=sa.text("done_at IS NULL"),
        ),
    )


class EventKind(StrEnum):
    """What an Event announces."""

    NEW_THREAD = "new_thread"
    FOLLOW_UP = "follow_up"
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"
    WINDOW_WARNING = "window_warning"  # the platform's reply window closes soon: leads are told
    WINDOW_CLOSED = "window_closed"  # it has closed: the triage message is redrawn
    REPLIED = "replied"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"
    REPLY_FAILED = "reply_failed"  # the platform reported a sent reply undelivered
    ITEM_CHANGED = "item_changed"  # the platform reported a stored item edited or removed: its message is redrawn
    CONNECTOR_HEALTH = "connector_health"
    CSAT_ASKED = "csat_asked"
    CSAT_ANSWERED = "csat_answered"
    ERASED = "erased"  # the conversation's texts and names were erased: its Slack messages are edited or deleted


class SlackMessage(SQLModel, table=True):
    """A thread's triage message in Slack, so every later change updates it in place."""

    thread_id: int = Field(primary_key=True, foreign_key="thread.id")
    channel: str = Field(max_length=32)
    # None while a post is in flight: after a crash there, Slack is searched before posting again.
    ts: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)

    __table_args__ = (sa.Index("ix_slackmessage_channel_ts", "channel", "ts"),)


class SlackPost(SQLModel, table=True):
    """A Slack message an outbox event posted (alert, follow-up, reply, health): one per event."""

    event_id: int = Field(primary_key=True, foreign_key="event.id")
    channel: str = Field(max_length=32)
    ts: str | None = Field(default=None, max_length=32)  # None: in flight, as for SlackMessage
    created_at: datetime = Field(sa_type=UTCDateTime)


class ReportDigest(SQLModel, table=True):
    """The weekly summary for leads: one row per week, written before the post, so it goes out once.

    `posted_at` is None while a worker posts it (until `claimed_until`); a claim that ran out without a post (a
    crash) is taken over, and the channel is looked at before posting again.
    """

    __tablename__ = "report_digest"

    week: str = Field(primary_key=True, max_length=10)  # the date of the digest's slot, in the report time zone
    channel: str = Field(max_length=32)
    title: str = Field(max_length=255)  # the chart's title: how a post whose outcome was lost is recognised
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    ts: str | None = Field(default=None, max_length=32)
    file_id: str | None = Field(default=None, max_length=32)
    posted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)


class Erasure(SQLModel, table=True):
    """That an erasure happened (`inbox forget` or retention): when, why, by whom, how much; never whom."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(max_length=16)  # "request" (inbox forget) or "retention"
    by: str = Field(max_length=64)  # the admin who ran `inbox forget`, or "retention"
    customers: int = 0
    threads: int = 0
    items: int = 0
