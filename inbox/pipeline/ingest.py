"""Ingest: normalise, de-duplicate, triage and store a page of items with its cursor, in one transaction."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import windows
from inbox.connector import (
    MAX_HANDLE,
    MAX_ID,
    MAX_NAME,
    MAX_REPLY_TO,
    MAX_TEXT,
    MAX_URL,
    Connector,
    ItemUpdate,
    Kind,
    RawItem,
    Skipped,
)
from inbox.csat import parse_rating
from inbox.logs import log_fields
from inbox.sla import ClockKind, SlaPolicies, SlaState
from inbox.store import clocks
from inbox.store import csat as store_csat
from inbox.store.cursors import save_cursor
from inbox.store.customers import customer_ids
from inbox.store.db import in_transaction
from inbox.store.events import NewEvent, insert_events
from inbox.store.items import (
    add_items,
    apply_updates,
    known_items,
    lock_threads,
    open_threads,
    review_rated,
    update_thread,
)
from inbox.store.models import EventKind, Status, utcnow
from inbox.templates import ReplyTemplates, reply_variables
from inbox.triage import Priority, Triager

log = logging.getLogger("inbox.ingest")  # the logger name users filter on, unchanged by the move into inbox.pipeline

# A platform clock a little ahead of ours is normal; a post "from the future" beyond this is clamped.
_CLOCK_SKEW = timedelta(minutes=5)
# The customers' key is the handle lower-cased, which can lengthen it ("İ" is two characters in lower case).
_MAX_KEY = 255
_CUT = "… [cut: longer than the inbox stores]"
# Items triaged between two turns of the event loop (well under a millisecond), so other work on it moves on.
_TRIAGE_SLICE = 5

# Runs inside ingest's transaction after the items are written and before the cursor; raises to roll it back.
Fence = Callable[[sa.Connection], None]


@dataclass(frozen=True, slots=True)
class Source:
    """The connector a batch came from, as ingest needs to know it."""

    name: str
    channel: str
    max_reply_chars: int | None = None
    own_handles: frozenset[str] = frozenset()
    reply_limits: Mapping[Kind, int | None] = field(default_factory=dict)
    # What a send still does after the reply window (Connector.after_window), by kind and language.
    after_window: Callable[[Kind, str], str | None] | None = None

    @classmethod
    def of(cls, connector: Connector[Any, Any]) -> Source:
        """Describe a configured connector."""
        return cls(
            name=connector.name,
            channel=connector.channel,
            max_reply_chars=connector.max_reply_chars,
            own_handles=frozenset(_handle_key(h) for h in connector.settings.own_handles),
            reply_limits={kind: connector.reply_limit(kind) for kind in Kind},
            after_window=connector.after_window,
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
    csat_answers: int = 0  # customers' ratings answering a CSAT question: stored, not follow-ups
    item_ids: list[int] = field(default_factory=list)
    problems: list[Skipped] = field(default_factory=list)  # one per skipped item, in the order given

    def skip(self, index: int, reason: str) -> None:
        """Count the item at `index` of the batch as skipped, and say why."""
        self.skipped += 1
        self.problems.append(Skipped(index, reason))


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
        answer_hours: float | None = None,
    ) -> None:
        self.engine = engine
        # How long after a CSAT question the customer's next message may be its answer; None: CSAT is off.
        self.answer_window = timedelta(hours=answer_hours) if answer_hours is not None else None
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
        are added before the items are triaged, in a short one of their own: a customer without items is harmless).

        `fence` runs last inside that transaction and raises to roll it back (a worker that lost its lease).
        `history` (a backfill): a new clock already past its deadline is stored breached, so the sweep announces
        nothing about the past, and a new thread the platform shows answered is not announced at all.
        """
        now = self.clock()
        result = IngestResult()
        candidates = self._normalise(source, items, now, result)
        rows: list[_Row] = []
        customers: dict[tuple[str, str], int] = {}
        if candidates:
            known, customers = await in_transaction(self.engine, partial(self._lookup, source, candidates, now))
            result.duplicates += len(known)
            # Triage only what is new: a re-poll of known items costs one indexed lookup.
            rows = await self._prepare_all(source, [raw for key, raw in candidates.items() if key not in known], now)
        if rows or cursor is not None:
            await in_transaction(
                self.engine, partial(self._write, source, rows, customers, now, result, history, cursor, fence)
            )
        if result.stored:
            self.on_event()
            log.info(
                "stored %d item(s) (%d new thread(s), %d follow-up(s)), %d duplicate(s), %d skipped",
                result.stored,
                result.new_threads,
                result.follow_ups,
                result.duplicates,
                result.skipped,
            )
        return result

    async def update(self, source: Source, updates: Sequence[ItemUpdate]) -> int:
        """Write what the platform reports of stored items (edited, removed, the author's name found); each changed
        item's Slack message is redrawn. Returns how many changed."""
        if not updates:
            return 0
        changes = [
            (u.external_id[:MAX_ID], None if u.text is None else _storable(u.text[:MAX_TEXT]), u.removed, u.author_name)
            for u in updates
        ]
        now = self.clock()

        def retriage(text: str, item: Mapping[str, Any]) -> dict[str, Any]:
            # An edited text is triaged again: the suggestion Send would post answers what the customer says now.
            customer = item["author_name"] or item["author_handle"]
            age = (now - item["posted_at"]).total_seconds() / 60
            return self._triaged(source, text, Kind(item["kind"]), item["rating"], customer, age)

        changed = await apply_updates(self.engine, source.name, changes, now, retriage)
        if changed:
            self.on_event()
            log.info("%d stored item(s) changed on the platform (edited, removed or named)", changed)
        return changed

    def _normalise(
        self, source: Source, items: Iterable[RawItem], now: datetime, result: IngestResult
    ) -> dict[str, RawItem]:
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

    def _triaged(
        self, source: Source, text: str, kind: Kind, rating: int | None, customer: str, age_minutes: float
    ) -> dict[str, Any]:
        """An item's triage columns and suggested reply, for its text."""
        triage = self.triager.classify(text, rating=rating, kind=kind, age_minutes=age_minutes)
        variables = reply_variables(
            customer_name=customer,
            channel=source.channel,
            kind=str(kind),
            text=text,
            agent_name=self.agent_name,
            brand=self.brand,
        )
        suggestion = self.templates.render(triage.intent, triage.language, variables, source.reply_limit(kind))
        return {
            "language": triage.language,
            "sentiment": triage.sentiment,
            "intent": str(triage.intent),
            "priority": Priority(triage.priority).rank,
            "suggestion": suggestion.text,
            "suggestion_template": suggestion.template,
            "suggestion_truncated": suggestion.truncated,
        }

    async def _prepare_all(self, source: Source, raws: list[RawItem], now: datetime) -> list[_Row]:
        rows = []
        for raw in raws:
            rows.append(self._prepare(source, raw, now))
            if len(rows) % _TRIAGE_SLICE == 0:
                # Triage is CPU work: other connectors' transactions (and their row locks) and Slack acknowledgements
                # on this event loop wait for it, so it gives way now and then.
                await asyncio.sleep(0)
        return rows

    def _lookup(
        self, source: Source, candidates: Mapping[str, RawItem], now: datetime, conn: sa.Connection
    ) -> tuple[set[str], dict[tuple[str, str], int]]:
        """The candidates already stored, and the ids of the new ones' customers (added when new), each with the
        name its latest item shows.

        Customers are shared by every connector's pages: what is written of them (new ones, renamed ones, hourly
        last_seen_at) commits here, before triage, never locked for a whole page while other workers' pages with
        the same people wait. Mostly this only reads, and a read-only commit writes nothing.
        """
        known = known_items(conn, source.name, list(candidates))
        seen = {
            (source.channel, customer_key(raw.author_handle)): raw.author_name
            for key, raw in candidates.items()
            if key not in known
        }
        return known, customer_ids(conn, seen, now, durable=False) if seen else {}

    def _write(
        self,
        source: Source,
        rows: list[_Row],
        customers: dict[tuple[str, str], int],
        now: datetime,
        result: IngestResult,
        history: bool,
        cursor: BaseModel | None,
        fence: Fence | None,
        conn: sa.Connection,
    ) -> None:
        """The page's transaction: its items, threads and events, then the fence and the cursor."""
        if rows:
            threads, created, answered = self._threads(conn, source, rows, customers, now, history, result)
            for row in rows:
                row.values["customer_id"] = customers[row.customer_key]
                row.values["thread_id"] = threads[row.thread_key]["id"]
            inserted = add_items(conn, [r.values for r in rows])
            # Another worker may have stored some of them between our check and our insert.
            stored = sorted((r for r in rows if r.raw.external_id in inserted), key=lambda r: r.raw.posted_at)
            result.duplicates += len(rows) - len(stored)
            events: list[NewEvent] = []
            follow_ups: dict[int, list[_Row]] = {}
            announced: set[int] = set()
            ratings = self._csat_answers(
                conn, [r for r in stored if r.values["thread_id"] not in created], inserted, now
            )
            result.csat_answers = len(ratings)
            for row in stored:
                item_id = inserted[row.raw.external_id]
                result.item_ids.append(item_id)
                thread_id = row.values["thread_id"]
                if row.raw.external_id in ratings:
                    continue  # the answer to our question: the conversation stays resolved
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
                    events.append(NewEvent(kind, thread_id, item_id))
            self._reopen(conn, source, follow_ups, threads, now, history)
            insert_events(conn, now, events)
            result.stored = len(stored)
        if fence is not None:
            # Last, so the lease row stays locked only from here to the commit.
            fence(conn)
        if cursor is not None:
            save_cursor(conn, source.name, cursor, now)

    def _prepare(self, source: Source, raw: RawItem, now: datetime) -> _Row:
        age = (now - raw.posted_at).total_seconds() / 60
        triaged = self._triaged(source, raw.text, raw.kind, raw.rating, raw.author_name or raw.author_handle, age)
        closes_at, extended = windows.for_raw(raw, source.channel)
        modes, problems = windows.dump_modes(raw.reply_modes)
        for problem in problems:
            log.warning("item %s: %s; left out", raw.external_id, problem, extra={"external_id": raw.external_id})
        after = None
        if source.after_window is not None and windows.door(closes_at, extended) is not None:
            after = windows.after_window_text(source.after_window(raw.kind, triaged["language"]))
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
            **triaged,
            "reply_to": raw.reply_to,
            "reply_window_closes_at": closes_at,
            "extended_window_closes_at": extended,
            "reply_modes": modes,
            "after_window": after,
        }
        # The key is the handle as stored (cut to the column's size), so the upsert's answer finds it again.
        return _Row(raw, values, raw.thread_id or raw.external_id, (source.channel, customer_key(raw.author_handle)))

    def _csat_answers(
        self, conn: sa.Connection, rows: list[_Row], inserted: Mapping[str, int], now: datetime
    ) -> set[str]:
        """The external ids among follow-up `rows` (oldest first) that answer a CSAT question, stored as answers.

        Only the customer's next message after the question counts, within the answer window, and only when it is
        a rating and nothing else; any other next message closes the question and is a normal follow-up.
        """
        if self.answer_window is None or not rows:
            return set()
        waiting = store_csat.awaiting(conn, [r.values["thread_id"] for r in rows])
        answers: set[str] = set()
        for row in rows:
            question = waiting.get(row.values["thread_id"])
            if question is None or row.raw.posted_at < question.sent_at - _CLOCK_SKEW:
                continue  # no question waits, or written before it (and seen late)
            del waiting[row.values["thread_id"]]  # the next message only
            score = None
            if row.raw.posted_at <= question.sent_at + self.answer_window:
                score = parse_rating(row.raw.text, question.language)
            if score is None:
                store_csat.close(conn, question)
                continue
            item_id = inserted[row.raw.external_id]
            thread_id = row.values["thread_id"]
            if store_csat.record_answer(conn, question, thread_id, score, item_id, row.raw.posted_at, now):
                answers.add(row.raw.external_id)
        return answers

    def _threads(
        self,
        conn: sa.Connection,
        source: Source,
        rows: list[_Row],
        customers: dict[tuple[str, str], int],
        now: datetime,
        history: bool,
        result: IngestResult,
    ) -> tuple[dict[str, dict[str, Any]], set[int], set[int]]:
        """Threads of `rows` by key, the ids of those created here, and of those created already answered."""
        keys = sorted({r.thread_key for r in rows})
        threads = lock_threads(conn, source.name, keys)
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
                door = _door(max(group, key=lambda r: r.raw.posted_at))
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
                    "clock_kind": ClockKind.FIRST_RESPONSE
                    if answer is None or waiting is None
                    else ClockKind.NEXT_RESPONSE,
                    "clock_start": start,
                    "warn_at": warn_at,
                    "due_at": due_at,
                    "sla_stage": clocks.opened(waiting=waiting is not None, due_at=due_at, now=now, history=history),
                    "responded_at": answer if waiting is None else None,
                    "first_response_at": answer,
                    "updated_at": now,
                    "reply_window_closes_at": door,
                    "window_stage": clocks.window_stage(door, now),
                    # A review's stars when the conversation opens, and as its newest version shows them.
                    "rating_before": first.raw.rating,
                    "rating_after": _latest_rating(group, first.raw.rating),
                    # For reports: the first-response deadline and target, kept when next responses restart the clock.
                    "first_due_at": due_at
                    if start == first.raw.posted_at
                    else policy.deadlines(first.raw.posted_at)[1],
                    "sla_target_minutes": policy.first_response_minutes,
                }
            for thread_id, key in open_threads(conn, list(values.values())):
                created.add(thread_id)
                threads[key] = {"id": thread_id}
                stage = values[key]["sla_stage"]
                if clocks.is_stopped(stage):
                    answered.add(thread_id)
                    result.answered += 1
                elif stage == SlaState.BREACHED:
                    result.overdue += 1
            # Threads another worker created since our lookup.
            raced = sorted(set(fresh) - set(threads))
            if raced:
                threads.update(lock_threads(conn, source.name, raced))
        return threads, created, answered

    def _reopen(
        self,
        conn: sa.Connection,
        source: Source,
        follow_ups: dict[int, list[_Row]],
        threads: dict[str, dict[str, Any]],
        now: datetime,
        history: bool,
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
            latest = max(group, key=lambda r: r.raw.posted_at)
            if latest.raw.posted_at >= thread["last_customer_at"]:
                # The customer's latest message sets the platform's window (Messenger: 24 h from it).
                door = _door(latest)
                changes.update(reply_window_closes_at=door, window_stage=clocks.window_stage(door, now))
            stopped = clocks.is_stopped(thread["sla_stage"])
            if stopped:
                since = max(
                    (t for t in (thread["responded_at"], thread["resolved_at"]) if t), default=thread["clock_start"]
                )
            else:
                since = thread["clock_start"]
            answer, waiting = _answers(group, since)
            rated = [r for r in group if r.raw.rating is not None]
            if rated:
                # A later poll saw the review edited: the stars now, so reports show it recovered or lowered.
                changes.update(review_rated(_latest_rating(rated, None)))
            earliest = min((r.raw.answered_at for r in group if r.raw.answered_at is not None), default=None)
            if earliest is not None:
                changes.update(clocks.first_response(earliest))
                if not stopped and earliest < since:
                    # An older part of the conversation, answered: what runs now waits for a next response.
                    changes["clock_kind"] = ClockKind.NEXT_RESPONSE
            if not stopped and answer is not None and waiting is None:
                # Answered on the platform (outside this inbox) after everything the customer said: the clock stops.
                changes.update(clocks.answered(answer))
            elif waiting is not None and (stopped or answer is not None):
                start = max(waiting, since)
                warn_at, due_at = policy.deadlines(start)
                changes.update(
                    clocks.restarted(
                        cycle=thread["cycle"] + 1,
                        start=start,
                        warn_at=warn_at,
                        due_at=due_at,
                        now=now,
                        history=history,
                        assigned=bool(thread["assignee"]),
                    )
                )
            update_thread(conn, thread_id, changes)


def _door(row: _Row) -> datetime | None:
    return windows.door(row.values["reply_window_closes_at"], row.values["extended_window_closes_at"])


def _problem(raw: RawItem) -> str | None:
    """Why the item cannot be stored at all, or None."""
    # A connector's item is typed, but a push or a faulty connector may send anything: checked as plain objects.
    text: object = raw.text
    thread_id: object = raw.thread_id
    reply_to_value: object = raw.reply_to
    posted_at: object = raw.posted_at
    if not isinstance(raw.external_id, str) or not raw.external_id.strip():
        return "missing id (empty once NUL characters are removed)" if raw.external_id == "" else "missing id"
    if len(raw.external_id) > MAX_ID:
        return f"id longer than {MAX_ID} characters"
    if not isinstance(text, str):
        return "text is not a string"
    if not isinstance(raw.author_handle, str) or not raw.author_handle.strip():
        return "missing author handle"
    if len(raw.author_handle) > MAX_HANDLE:
        return f"author handle longer than {MAX_HANDLE} characters"
    if thread_id is not None and not isinstance(thread_id, str):
        return "thread id is not a string"
    if thread_id is not None and len(thread_id) > MAX_ID:
        return f"thread id longer than {MAX_ID} characters"
    if raw.kind not in set(Kind):
        return f"unknown kind {str(raw.kind)[:40]!r}"
    try:
        reply_to = json.dumps(raw.reply_to)
    except (TypeError, ValueError):
        return "reply_to is not JSON"
    if not isinstance(reply_to_value, dict) or len(reply_to) > MAX_REPLY_TO:
        return f"reply_to is not an object of at most {MAX_REPLY_TO} characters"
    if not isinstance(posted_at, datetime):
        return "missing timestamp"
    if posted_at.tzinfo is not None:
        try:
            posted_at.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01 at +01:00: no UTC time exists, so no clock can start from it
            return f"timestamp {posted_at.isoformat()} is out of range"
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
            "item %s: url dropped (not a string of at most %d characters)",
            raw.external_id,
            MAX_URL,
            extra={"external_id": raw.external_id},
        )
        raw.url = None
    if raw.rating is not None and (
        not isinstance(raw.rating, int) or isinstance(raw.rating, bool) or not 1 <= raw.rating <= 5
    ):
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
            "item %s is dated in the future (%s); its clock starts now",
            external_id,
            posted_at.isoformat(),
            extra={"external_id": external_id},
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
            "item %s: answered_at %r is not a usable time (%s); its clock runs",
            raw.external_id,
            value,
            exc,
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


def _latest_rating(rows: Iterable[_Row], default: int | None) -> int | None:
    """The stars of the newest of `rows` that has some, else `default`."""
    rated = [r for r in rows if r.raw.rating is not None]
    return max(rated, key=lambda r: r.raw.posted_at).raw.rating if rated else default


def customer_key(handle: str) -> str:
    """The handle as the store keeps a customer by it: without a leading @, lower case, cut to the column."""
    return _handle_key(handle)[:_MAX_KEY]


def _handle_key(handle: str) -> str:
    return handle.strip().lstrip("@").lower()
