"""Ingest: normalise, de-duplicate, triage and store a page of items with its cursor, in one transaction."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.connector import MAX_HANDLE, MAX_ID, MAX_NAME, MAX_REPLY_TO, MAX_TEXT, MAX_URL, Connector, Kind, RawItem
from inbox.logs import log_fields
from inbox.store.models import Customer, Cursor, Event, EventKind, Item, SlaStage, Status, Thread, utcnow
from inbox.sla import ClockKind, SlaPolicies
from inbox.store.sqlutil import chunks, insert_for, one_of
from inbox.templates import ReplyTemplates, reply_variables
from inbox.triage import Priority, Triager

log = logging.getLogger("inbox.ingest")  # the logger name users filter on, unchanged by the move into inbox.pipeline

# A platform clock a little ahead of ours is normal; a post "from the future" beyond this is clamped.
_CLOCK_SKEW = timedelta(minutes=5)
# The customers' key is the handle lower-cased, which can lengthen it ("İ" is two characters in lower case).
_MAX_KEY = 255
_CUT = "… [cut: longer than the inbox stores]"
# A known customer's last_seen_at is kept to this precision: rewriting it for every message locked the row.
_SEEN_PRECISION = timedelta(hours=1)
_TRIAGE_SLICE = 25  # items triaged between two turns of the event loop (a few milliseconds)

# Runs inside ingest's transaction after the items are written and before the cursor; raises to roll it back.
Fence = Callable[[AsyncConnection], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Source:
    """The connector a batch came from, as ingest needs to know it."""

    name: str
    channel: str
    max_reply_chars: int | None = None
    own_handles: frozenset[str] = frozenset()
    reply_limits: Mapping[Kind, int | None] = field(default_factory=dict)

    @classmethod
    def of(cls, connector: Connector[Any, Any]) -> Source:
        """Describe a configured connector."""
        return cls(
            name=connector.name,
            channel=connector.channel,
            max_reply_chars=connector.max_reply_chars,
            own_handles=frozenset(_handle_key(h) for h in connector.settings.own_handles),
            reply_limits={kind: connector.reply_limit(kind) for kind in Kind},
        )

    def reply_limit(self, kind: Kind) -> int | None:
        """The reply length limit for an item of this kind."""
        return self.reply_limits.get(kind, self.max_reply_chars)


@dataclass(slots=True)
class IngestResult:
    """What one ingest call did."""

    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    new_threads: int = 0
    follow_ups: int = 0
    answered: int = 0  # new threads the platform shows answered: stored with their clock stopped
    overdue: int = 0  # history only: new threads already past their deadline, stored as breached without an alert
    item_ids: list[int] = field(default_factory=list)
    problems: list[Skipped] = field(default_factory=list)  # one per skipped item, in the order given

    def skip(self, index: int, reason: str) -> None:
        """Count the item at `index` of the batch as skipped, and say why."""
        self.skipped += 1
        self.problems.append(Skipped(index, reason))


class Skipped(NamedTuple):
    """An item ingest did not store: its position in the batch it was given, and why."""

    index: int
    reason: str


@dataclass(slots=True)
class _Row:
    raw: RawItem
    values: dict[str, Any]
    thread_key: str
    customer_key: tuple[str, str]


class Ingestor:
    """Turns connector output into stored, triaged items; the only writer of new items."""

    def __init__(
        self,
        engine: AsyncEngine,
        triager: Triager,
        templates: ReplyTemplates,
        policies: SlaPolicies,
        *,
        brand: str = "",
        agent_name: str = "",
        clock: Callable[[], datetime] = utcnow,
        on_event: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.on_event = on_event  # told after a commit that wrote events, so the outbox delivers them now
        self.triager = triager
        self.templates = templates
        self.policies = policies
        self.brand = brand
        self.agent_name = agent_name
        self.clock = clock

    @log_fields(connector="source.name")
    async def ingest(
        self,
        source: Source,
        items: Sequence[RawItem],
        cursor: BaseModel | None = None,
        *,
        fence: Fence | None = None,
        history: bool = False,
    ) -> IngestResult:
        """Store the new items among `items` once, and `cursor` with them, in one transaction (their new customers
        are added just before, in a short one of their own: a customer without items is harmless).

        `fence` runs last inside that transaction and raises to roll it back (a worker that lost its lease).
        `history` (a backfill): a new clock already past its deadline is stored breached, so the sweep announces
        nothing about the past, and a new thread the platform shows answered is not announced at all.
        """
        now = self.clock()
        result = IngestResult()
        candidates = self._normalise(source, items, now, result)
        rows: list[_Row] = []
        if candidates:
            async with self.engine.connect() as conn:
                await _plan_lookups_afresh(conn, True)
                known = await _existing(conn, source.name, list(candidates))
            result.duplicates += len(known)
            # Triage only what is new: a re-poll of known items costs one indexed lookup.
            for key, raw in candidates.items():
                if key not in known:
                    rows.append(self._prepare(source, raw, now))
                    if len(rows) % _TRIAGE_SLICE == 0:
                        # Triage is CPU work: other connectors' transactions (and their row locks) and Slack
                        # acknowledgements on this event loop wait for it, so it gives way now and then.
                        await asyncio.sleep(0)
        customers: dict[tuple[str, str], int] = {}
        if rows:
            # Customers are shared by every connector's pages: what is written of them (new ones, renamed ones,
            # hourly last_seen_at) commits at once, never locked for a whole page while other workers' pages
            # with the same people wait. Mostly this only reads, and a read-only commit writes nothing.
            async with self.engine.begin() as conn:
                await _plan_lookups_afresh(conn, True)
                customers = await _upsert_customers(conn, rows, now)
        if rows or cursor is not None:
            async with self.engine.begin() as conn:
                if rows:
                    await _plan_lookups_afresh(conn, True)
                    await self._store(conn, source, rows, customers, now, result, history)
                if fence is not None:
                    # Last, so the lease row stays locked only from here to the commit.
                    await fence(conn)
                if cursor is not None:
                    await save_cursor(conn, source.name, cursor, now)
        if result.stored:
            self.on_event()
            log.info(
                "stored %d item(s) (%d new thread(s), %d follow-up(s)), %d duplicate(s), %d skipped",
                result.stored, result.new_threads, result.follow_ups, result.duplicates, result.skipped,
            )
        return result

    def _normalise(self, source: Source, items: Iterable[RawItem], now: datetime, result: IngestResult) -> dict[str, RawItem]:
        unique: dict[str, RawItem] = {}
        for index, raw in enumerate(items):
            for name in ("external_id", "text", "author_handle", "author_name", "thread_id", "url"):
                value = getattr(raw, name)
                if isinstance(value, str):
                    setattr(raw, name, _storable(value))
            if isinstance(raw.thread_id, str) and not raw.thread_id.strip():
                raw.thread_id = None  # no conversation named: the item starts its own
            problem = _problem(raw)
            if problem:
                external_id = str(raw.external_id)[:80]  # the id may not be a str
                log.warning("skipped item %r: %s", external_id, problem, extra={"external_id": external_id})
                result.skip(index, problem)
                continue
            ignored = _ignored(raw, source)
            if ignored:
                # Routine on every platform (retweets, the brand's own replies): not worth a warning.
                log.debug("skipped item %r: %s", raw.external_id, ignored, extra={"external_id": raw.external_id})
                result.skip(index, ignored)
                continue
            if raw.external_id in unique:
                result.duplicates += 1
                continue
            _bound(raw)
            raw.posted_at = _clean_time(raw.posted_at, now, raw.external_id)
            if raw.answered_at is not None:
                raw.answered_at = _clean_answer(raw, now)
            unique[raw.external_id] = raw
        return unique

    def _prepare(self, source: Source, raw: RawItem, now: datetime) -> _Row:
        age = (now - raw.posted_at).total_seconds() / 60
        triage = self.triager.classify(raw.text, rating=raw.rating, kind=raw.kind, age_minutes=age)
        variables = reply_variables(
            customer_name=raw.author_name or raw.author_handle, channel=source.channel, kind=str(raw.kind),
            text=raw.text, agent_name=self.agent_name, brand=self.brand,
        )
        suggestion = self.templates.render(triage.intent, triage.language, variables, source.reply_limit(raw.kind))
        values = {
            "connector": source.name,
            "channel": source.channel,
            "external_id": raw.external_id,
            "kind": str(raw.kind),
            "author_handle": raw.author_handle,
            "author_name": raw.author_name,
            "text": raw.text,
            "url": raw.url,
            "rating": raw.rating,
            "posted_at": raw.posted_at,
            "ingested_at": now,
            "language": triage.language,
            "sentiment": triage.sentiment,
            "intent": str(triage.intent),
            "priority": Priority(triage.priority).rank,
            "suggestion": suggestion.text,
            "suggestion_template": suggestion.template,
            "suggestion_truncated": suggestion.truncated,
            "reply_to": raw.reply_to,
        }
        # The key is the handle as stored (cut to the column's size), so the upsert's answer finds it again.
        return _Row(raw, values, raw.thread_id or raw.external_id, (source.channel, _handle_key(raw.author_handle)[:_MAX_KEY]))

    async def _store(
        self, conn: AsyncConnection, source: Source, rows: list[_Row], customers: dict[tuple[str, str], int],
        now: datetime, result: IngestResult, history: bool,
    ) -> None:
        threads, created, answered = await self._threads(conn, source, rows, customers, now, history, result)
        await _plan_lookups_afresh(conn, False)
        for row in rows:
            row.values["customer_id"] = customers[row.customer_key]
            row.values["thread_id"] = threads[row.thread_key]["id"]
        insert = insert_for(conn, Item).on_conflict_do_nothing(index_elements=["connector", "external_id"])
        inserted = {
            r.external_id: r.id
            for r in await conn.execute(insert.returning(Item.id, Item.external_id), [r.values for r in rows])
        }
        # Another worker may have stored some of them between our check and our insert.
        stored = sorted((r for r in rows if r.raw.external_id in inserted), key=lambda r: r.raw.posted_at)
        result.duplicates += len(rows) - len(stored)
        events: list[dict[str, Any]] = []
        follow_ups: dict[int, list[_Row]] = {}
        announced: set[int] = set()
        for row in stored:
            item_id = inserted[row.raw.external_id]
            result.item_ids.append(item_id)
            thread_id = row.values["thread_id"]
            if thread_id in created and thread_id not in announced:
                announced.add(thread_id)
                kind = EventKind.NEW_THREAD
                result.new_threads += 1
            else:
                kind = EventKind.FOLLOW_UP
                result.follow_ups += 1
                if thread_id not in created:
                    follow_ups.setdefault(thread_id, []).append(row)
            if not (history and thread_id in answered):  # answered long ago: nothing for anyone to do
                events.append({"kind": kind, "thread_id": thread_id, "item_id": item_id, "payload": {}, "created_at": now, "attempts": 0})
        await self._reopen(conn, source, follow_ups, threads, now, history)
        if events:
            await conn.execute(sa.insert(Event), events)
        result.stored = len(stored)

    async def _threads(
        self, conn: AsyncConnection, source: Source, rows: list[_Row], customers: dict[tuple[str, str], int], now: datetime,
        history: bool, result: IngestResult,
    ) -> tuple[dict[str, dict[str, Any]], set[int], set[int]]:
        """Threads of `rows` by key, the ids of those created here, and of those created already answered."""
        keys = sorted({r.thread_key for r in rows})
        threads = await _load_threads(conn, source.name, keys)
        fresh: dict[str, list[_Row]] = {}
        for row in rows:
            if row.thread_key not in threads:
                fresh.setdefault(row.thread_key, []).append(row)
        created: set[int] = set()
        answered: set[int] = set()
        if fresh:
            policy = self.policies.for_channel(source.channel)
            values = {}
            for key, group in fresh.items():
                first = min(group, key=lambda r: r.raw.posted_at)
                answer, waiting = _answers(group, first.raw.posted_at)
                # Answered and nothing since: the first-response clock, settled. Else it runs from what still waits.
                start = first.raw.posted_at if waiting is None else waiting
                warn_at, due_at = policy.deadlines(start)
                values[key] = {
                    "connector": source.name,
                    "channel": source.channel,
                    "external_id": key,
                    "customer_id": customers[first.customer_key],
                    "kind": str(first.raw.kind),
                    "status": Status.NEW if waiting is not None else Status.REPLIED,
                    "priority": max(r.values["priority"] for r in group),
                    "opened_at": first.raw.posted_at,
                    "last_customer_at": max(r.raw.posted_at for r in group),
                    "cycle": 1,
                    "clock_kind": ClockKind.FIRST_RESPONSE if answer is None or waiting is None else ClockKind.NEXT_RESPONSE,
                    "clock_start": start,
                    "warn_at": warn_at,
                    "due_at": due_at,
                    "sla_stage": SlaStage.STOPPED if waiting is None else _running(due_at, now, history),
                    "responded_at": answer if waiting is None else None,
                    "first_response_at": answer,
                    "updated_at": now,
                }
            insert = insert_for(conn, Thread).on_conflict_do_nothing(index_elements=["connector", "external_id"])
            for row in await conn.execute(insert.returning(Thread.id, Thread.external_id), list(values.values())):
                created.add(row.id)
                threads[row.external_id] = {"id": row.id}
                stage = values[row.external_id]["sla_stage"]
                if stage == SlaStage.STOPPED:
                    answered.add(row.id)
                    result.answered += 1
                elif stage == SlaStage.BREACHED:
                    result.overdue += 1
            # Threads another worker created since our lookup.
            raced = sorted(set(fresh) - set(threads))
            if raced:
                threads.update(await _load_threads(conn, source.name, raced))
        return threads, created, answered

    async def _reopen(
        self, conn: AsyncConnection, source: Source, follow_ups: dict[int, list[_Row]], threads: dict[str, dict[str, Any]],
        now: datetime, history: bool,
    ) -> None:
        """A follow-up joins its thread; after our reply it starts the next-response clock, unless the platform shows it answered."""
        by_id = {t["id"]: t for t in threads.values()}
        policy = self.policies.for_channel(source.channel)
        for thread_id, group in follow_ups.items():
            thread = by_id[thread_id]
            changes: dict[str, Any] = {
                "priority": max([thread["priority"], *(r.values["priority"] for r in group)]),
                "last_customer_at": max([thread["last_customer_at"], *(r.raw.posted_at for r in group)]),
                "updated_at": now,
            }
            stopped = thread["sla_stage"] == SlaStage.STOPPED
            if stopped:
                since = max((t for t in (thread["responded_at"], thread["resolved_at"]) if t), default=thread["clock_start"])
            else:
                since = thread["clock_start"]
            answer, waiting = _answers(group, since)
            earliest = min((r.raw.answered_at for r in group if r.raw.answered_at is not None), default=None)
            if earliest is not None:
                changes["first_response_at"] = sa.func.coalesce(Thread.first_response_at, earliest)
                if not stopped and earliest < since:
                    # An older part of the conversation, answered: what runs now waits for a next response.
                    changes["clock_kind"] = ClockKind.NEXT_RESPONSE
            if not stopped and answer is not None and waiting is None:
                # Answered on the platform (outside this inbox) after everything the customer said: the clock stops.
                changes.update(status=Status.REPLIED, responded_at=answer, sla_stage=SlaStage.STOPPED)
            elif waiting is not None and (stopped or answer is not None):
                start = max(waiting, since)
                warn_at, due_at = policy.deadlines(start)
                changes.update(
                    cycle=thread["cycle"] + 1,
                    clock_kind=ClockKind.NEXT_RESPONSE,
                    clock_start=start,
                    warn_at=warn_at,
                    due_at=due_at,
                    sla_stage=_running(due_at, now, history),
                    responded_at=None,
                    resolved_at=None,
                    status=Status.ASSIGNED if thread["assignee"] else Status.NEW,
                )
            await conn.execute(sa.update(Thread).where(Thread.id == thread_id).values(**changes))


async def save_cursor(conn: AsyncConnection, connector: str, cursor: BaseModel, now: datetime) -> None:
    """Store a connector's cursor (inside the caller's transaction)."""
    value = cursor.model_dump(mode="json")
    insert = insert_for(conn, Cursor).values(connector=connector, value=value, updated_at=now)
    await conn.execute(insert.on_conflict_do_update(index_elements=["connector"], set_={"value": value, "updated_at": now}))


async def load_cursor(engine: AsyncEngine, connector: str) -> dict[str, Any] | None:
    """A connector's saved cursor as stored, or None before its first page."""
    async with engine.connect() as conn:
        row = await conn.execute(sa.select(Cursor.value).where(Cursor.connector == connector))
        return row.scalar_one_or_none()


async def _plan_lookups_afresh(conn: AsyncConnection, on: bool) -> None:
    """PostgreSQL: plan the IN-list lookups afresh each time, but keep cached plans for the big INSERTs.

    A generic plan for a lookup, cached while a young table's statistics still say "empty", ran 30 times
    slower than a fresh one in our benchmark; re-planning a 2,000-parameter INSERT costs more than it saves.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text(f"SET LOCAL plan_cache_mode = {'force_custom_plan' if on else 'auto'}"))


def _problem(raw: RawItem) -> str | None:
    """Why the item cannot be stored at all, or None."""
    if not isinstance(raw.external_id, str) or not raw.external_id.strip():
        return "missing id (empty once NUL characters are removed)" if raw.external_id == "" else "missing id"
    if len(raw.external_id) > MAX_ID:
        return f"id longer than {MAX_ID} characters"
    if not isinstance(raw.text, str):
        return "text is not a string"
    if not isinstance(raw.author_handle, str) or not raw.author_handle.strip():
        return "missing author handle"
    if len(raw.author_handle) > MAX_HANDLE:
        return f"author handle longer than {MAX_HANDLE} characters"
    if raw.thread_id is not None and not isinstance(raw.thread_id, str):
        return "thread id is not a string"
    if raw.thread_id is not None and len(raw.thread_id) > MAX_ID:
        return f"thread id longer than {MAX_ID} characters"
    if raw.kind not in set(Kind):
        return f"unknown kind {str(raw.kind)[:40]!r}"
    try:
        reply_to = json.dumps(raw.reply_to)
    except (TypeError, ValueError):
        return "reply_to is not JSON"
    if not isinstance(raw.reply_to, dict) or len(reply_to) > MAX_REPLY_TO:
        return f"reply_to is not an object of at most {MAX_REPLY_TO} characters"
    if not isinstance(raw.posted_at, datetime):
        return "missing timestamp"
    if raw.posted_at.tzinfo is not None:
        try:
            raw.posted_at.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01 at +01:00: no UTC time exists, so no clock can start from it
            return f"timestamp {raw.posted_at.isoformat()} is out of range"
    return None


def _ignored(raw: RawItem, source: Source) -> str | None:
    """Why a valid item is still not one for the team (the brand's own words, a repost), or None."""
    if raw.from_brand:
        return "the brand's own post"
    if raw.is_repost:
        return "a repost"
    if _handle_key(raw.author_handle) in source.own_handles:
        return f"written by the brand's own account {raw.author_handle!r}"
    return None


def _bound(raw: RawItem) -> None:
    """Fit a valid item's free-form fields to what is stored (see the limits beside RawItem): cut, or drop a URL."""
    raw.text = raw.text.strip()
    if len(raw.text) > MAX_TEXT:
        raw.text = raw.text[: MAX_TEXT - len(_CUT)] + _CUT
    if not isinstance(raw.author_name, str) or not raw.author_name.strip():
        raw.author_name = None
    elif len(raw.author_name) > MAX_NAME:
        raw.author_name = raw.author_name[: MAX_NAME - 1] + "…"
    if raw.url is not None and (not isinstance(raw.url, str) or len(raw.url) > MAX_URL):
        log.warning(
            "item %s: url dropped (not a string of at most %d characters)", raw.external_id, MAX_URL,
            extra={"external_id": raw.external_id},
        )
        raw.url = None
    if raw.rating is not None and (not isinstance(raw.rating, int) or isinstance(raw.rating, bool) or not 1 <= raw.rating <= 5):
        raw.rating = None


def _storable(value: str) -> str:
    """Text both stores can hold: NUL removed (PostgreSQL refuses it), lone surrogates replaced (not UTF-8)."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _clean_time(posted_at: datetime, now: datetime, external_id: str) -> datetime:
    if posted_at.tzinfo is None or posted_at.utcoffset() is None:
        posted_at = posted_at.replace(tzinfo=UTC)  # vendors that omit the zone mean UTC
    posted_at = posted_at.astimezone(UTC)
    if posted_at > now + _CLOCK_SKEW:
        log.warning(
            "item %s is dated in the future (%s); its clock starts now", external_id, posted_at.isoformat(), extra={"external_id": external_id}
        )
        return now
    return posted_at


def _clean_answer(raw: RawItem, now: datetime) -> datetime | None:
    """The time of the platform's answer in UTC, between the item's time and now; None (logged) when it is not a time."""
    value = raw.answered_at
    try:
        if not isinstance(value, datetime):
            raise TypeError(type(value).__name__)
        value = (value.replace(tzinfo=UTC) if value.utcoffset() is None else value).astimezone(UTC)
    except (TypeError, OverflowError) as exc:
        log.warning(
            "item %s: answered_at %r is not a usable time (%s); its clock runs", raw.external_id, value, exc,
            extra={"external_id": raw.external_id},
        )
        return None
    return min(max(value, raw.posted_at), now)


def _answers(rows: Iterable[_Row], since: datetime) -> tuple[datetime | None, datetime | None]:
    """(the platform's first answer at or after `since`, the oldest customer item after its last answer) of a thread's new items.

    No answer: (None, oldest item). Everything answered: (first answer, None).
    """
    rows = list(rows)
    answers = sorted(r.raw.answered_at for r in rows if r.raw.answered_at is not None and r.raw.answered_at >= since)
    last = answers[-1] if answers else None
    waiting = [r.raw.posted_at for r in rows if r.raw.answered_at is None and (last is None or r.raw.posted_at > last)]
    return (answers[0] if answers else None), min(waiting, default=None)


def _running(due_at: datetime, now: datetime, history: bool) -> SlaStage:
    """A new running clock's stage: history whose deadline has passed is breached already, so the sweep says nothing."""
    return SlaStage.BREACHED if history and due_at <= now else SlaStage.RUNNING


def _handle_key(handle: str) -> str:
    return handle.strip().lstrip("@").lower()


async def _existing(conn: AsyncConnection, connector: str, ids: list[str]) -> set[str]:
    found: set[str] = set()
    for part in chunks(ids):
        rows = await conn.execute(
            sa.select(Item.external_id).where(Item.connector == connector, one_of(conn, Item.external_id, part))
        )
        found.update(rows.scalars())
    return found


async def _upsert_customers(conn: AsyncConnection, rows: list[_Row], now: datetime) -> dict[tuple[str, str], int]:
    """The customers' ids, adding the new ones; known ones are written only when their name or hour changed.

    Most customers of a page are known, and many are shared by other connectors' pages, in other workers too:
    reading them takes no lock, where an upsert of every one locked them all and made the workers wait on each
    other in turn. What is written (new customers, and known ones hourly) is locked in key order, so two pages
    never deadlock.
    """
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        latest[row.customer_key] = {
            "channel": row.customer_key[0],
            "handle": row.customer_key[1],
            "display_name": row.values["author_name"],
            "first_seen_at": now,
            "last_seen_at": now,
        }
    # In key order throughout: two transactions locking shared rows in different orders deadlock on PostgreSQL.
    keys = sorted(latest)
    known = await _customers(conn, keys)
    missing = [latest[key] for key in keys if key not in known]
    if missing:
        insert = insert_for(conn, Customer).on_conflict_do_nothing(index_elements=["channel", "handle"])
        result = await conn.execute(insert.returning(Customer.id, Customer.channel, Customer.handle), missing)
        # As just written: a new customer is neither renamed nor stale.
        added = {(channel, handle): (id_, latest[(channel, handle)]["display_name"], now) for id_, channel, handle in result}
        # Another worker may have added some meanwhile: theirs are known now.
        raced = [key for key in keys if key not in known and key not in added]
        known |= added | await _customers(conn, raced)
    stale = [
        (key, latest[key]) for key in keys
        if key in known and (_renamed(known[key][1], latest[key]["display_name"]) or known[key][2] <= now - _SEEN_PRECISION)
    ]
    if stale:
        touch = sa.update(Customer).where(Customer.id == sa.bindparam("_id")).values(
            last_seen_at=sa.bindparam("_seen"),
            display_name=sa.func.coalesce(sa.bindparam("_name", type_=Customer.display_name.type), Customer.display_name),
        )
        await conn.execute(touch, [{"_id": known[key][0], "_seen": now, "_name": values["display_name"]} for key, values in stale])
    return {key: id_ for key, (id_, _, _) in known.items()}


def _renamed(stored: str | None, seen: str | None) -> bool:
    return seen is not None and seen != stored


async def _customers(conn: AsyncConnection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str | None, datetime]]:
    """(id, display name, last seen) of the customers with these (channel, handle) keys that exist.

    The keys of one page share its channel.
    """
    found: dict[tuple[str, str], tuple[int, str | None, datetime]] = {}
    if not keys:
        return found
    channel = keys[0][0]
    for part in chunks([handle for _, handle in keys]):
        result = await conn.execute(
            sa.select(Customer.id, Customer.handle, Customer.display_name, Customer.last_seen_at)
            .where(Customer.channel == channel, one_of(conn, Customer.handle, part))
        )
        found.update({(channel, handle): (id_, name, seen) for id_, handle, name, seen in result})
    return found


# What a follow-up needs to know about its thread.
_THREAD_STATE = (
    Thread.id, Thread.external_id, Thread.priority, Thread.last_customer_at, Thread.sla_stage, Thread.cycle,
    Thread.clock_start, Thread.responded_at, Thread.resolved_at, Thread.assignee,
)


async def _load_threads(conn: AsyncConnection, connector: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    threads: dict[str, dict[str, Any]] = {}
    for part in chunks(keys):
        query = sa.select(*_THREAD_STATE).where(Thread.connector == connector, one_of(conn, Thread.external_id, part)).with_for_update()
        for row in await conn.execute(query):
            threads[row.external_id] = dict(row._mapping)
    return threads
