"""Customers' data under the GDPR: export what is held about a customer, erase it on request, and retention.

An erasure keeps the numbers team leads rely on (times, SLA outcome, intent, language, sentiment, priority, stars,
CSAT score) and erases what identifies the person: their handle and name (a pseudonym instead), every text they
wrote and every text written for them, and the Slack messages that showed them (edited through the outbox).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store import privacy
from inbox.store.models import utcnow
from inbox.store.privacy import Held

log = logging.getLogger("inbox.privacy")

REQUEST, RETENTION = "request", "retention"
RETENTION_BATCH = 200  # conversations erased per transaction by retention


class NoSuchCustomer(Exception):
    """No customer is known by this CHANNEL:HANDLE."""


class BadCustomer(ValueError):
    """A --customer value that is not CHANNEL:HANDLE."""


@dataclass(frozen=True, slots=True)
class CustomerRef:
    """A customer as the admin names them: the channel and the handle there."""

    channel: str
    handle: str

    def __str__(self) -> str:
        return f"{self.channel}:{self.handle}"


def parse_customer(value: str) -> CustomerRef:
    """CHANNEL:HANDLE (e.g. `x:@dana`, `whatsapp:33612345678`) into its parts; BadCustomer otherwise."""
    channel, sep, handle = value.partition(":")
    if not sep or not channel.strip() or not handle.strip():
        raise BadCustomer(f"--customer {value!r}: write CHANNEL:HANDLE, e.g. x:@dana or google:Dana M.")
    return CustomerRef(channel.strip(), handle.strip())


def pseudonym() -> str:
    """A new customer pseudonym: random, so it says nothing of the handle and cannot be reversed or recomputed."""
    return f"erased-{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class Plan:
    """What an erasure will touch: customers (id to their new pseudonym) and conversations, and how much they hold."""

    customers: dict[int, str]
    thread_ids: list[int]
    held: Held
    names: list[str]  # the handles and names erased, to look for in pushes not yet ingested (never printed)


async def _customer_ids(engine: AsyncEngine, refs: Sequence[CustomerRef]) -> tuple[list[Any], list[CustomerRef]]:
    """The customer rows for `refs`, and the refs that name nobody."""
    rows: dict[int, Any] = {}
    missing = []
    for ref in refs:
        found = await privacy.find_customers(engine, ref.channel, ref.handle)
        if not found:
            missing.append(ref)
        rows.update({row.id: row for row in found})
    return [rows[k] for k in sorted(rows)], missing


async def _found(engine: AsyncEngine, refs: Sequence[CustomerRef]) -> list[Any]:
    rows, missing = await _customer_ids(engine, refs)
    if missing:
        names = ", ".join(str(m) for m in missing)
        raise NoSuchCustomer(f"no such customer: {names} (is the channel the store's, e.g. x, google, whatsapp?)")
    return rows


async def export(engine: AsyncEngine, refs: Sequence[CustomerRef], now: datetime | None = None) -> dict[str, Any]:
    """One JSON-ready document with everything held about the customers `refs` name; NoSuchCustomer if one is unknown."""
    rows = await _found(engine, refs)
    document: dict[str, Any] = _plain(
        {
            "exported_at": now or utcnow(),
            "asked_for": [str(r) for r in refs],
            "customers": await privacy.gather(engine, [r.id for r in rows]),
        }
    )
    return document


def _plain(value: Any) -> Any:
    """Datetimes as ISO 8601 UTC strings, everything else as it is (JSON-ready)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


async def plan_forget(engine: AsyncEngine, refs: Sequence[CustomerRef]) -> Plan:
    """What `inbox forget` erases for `refs`: every conversation of theirs; NoSuchCustomer if one is unknown."""
    rows = await _found(engine, refs)
    ids = [r.id for r in rows]
    threads = await privacy.customer_threads(engine, ids)
    names = sorted({r.handle for r in rows} | {r.display_name for r in rows if r.display_name})
    return Plan(
        customers={r.id: pseudonym() for r in rows},
        thread_ids=threads,
        held=await privacy.held(engine, ids, threads),
        names=names,
    )


async def forget(
    engine: AsyncEngine, plan: Plan, *, by: str, now: datetime, on_event: Callable[[], None] = lambda: None
) -> Held:
    """Erase what `plan` names, in one transaction; the Slack messages are edited by the outbox after."""
    done = await privacy.erase(
        engine, customers=plan.customers, thread_ids=plan.thread_ids, now=now, reason=REQUEST, by=by
    )
    await _flush(engine)
    on_event()
    log.info(
        "erased on request: %d customer(s), %d conversation(s), %d item(s)", done.customers, done.threads, done.items
    )
    return done


async def pushes_waiting(engine: AsyncEngine, plan: Plan) -> int:
    """Pushed bodies naming the customer still waiting to be ingested: they become a new customer when ingested."""
    return await privacy.pending_pushes_naming(engine, plan.names)


class Retention:
    """`[retention] text_days`: erases the texts and names of conversations resolved longer ago, keeping the numbers."""

    def __init__(
        self,
        engine: AsyncEngine,
        text_days: int,
        clock: Callable[[], datetime] = utcnow,
        *,
        on_event: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.text_days = text_days
        self.clock = clock
        self.on_event = on_event

    @property
    def enabled(self) -> bool:
        """Retention runs only with text_days set above 0."""
        return self.text_days > 0

    def cutoff(self) -> datetime:
        """Conversations resolved before this are erased."""
        return self.clock() - timedelta(days=self.text_days)

    async def plan(self) -> Plan:
        """What the next run would erase (nothing while off)."""
        threads = await privacy.resolved_before(self.engine, self.cutoff()) if self.enabled else []
        customers = await privacy.left_without_conversations(self.engine, threads)
        return Plan(
            customers={c: pseudonym() for c in customers},
            thread_ids=threads,
            held=await privacy.held(self.engine, customers, threads),
            names=[],
        )

    async def run(self) -> Held:
        """Erase what is due, a batch of conversations per transaction (the store stays free for ingest meanwhile)."""
        if not self.enabled:
            return Held(0, 0, 0, 0, 0, 0)
        threads = await privacy.resolved_before(self.engine, self.cutoff())
        totals = Held(0, 0, 0, 0, 0, 0)
        for start in range(0, len(threads), RETENTION_BATCH):
            batch = threads[start : start + RETENTION_BATCH]
            done = await privacy.erase(
                self.engine, customers={}, thread_ids=batch, now=self.clock(), reason=RETENTION, by=RETENTION
            )
            totals = _sum(totals, done)
        # Those left with no conversation kept lose their handle and name too.
        gone = await privacy.left_without_conversations(self.engine, threads)
        if gone:
            done = await privacy.erase(
                self.engine,
                customers={c: pseudonym() for c in gone},
                thread_ids=[],
                now=self.clock(),
                reason=RETENTION,
                by=RETENTION,
            )
            totals = _sum(totals, done)
        if threads:
            await _flush(self.engine)
            self.on_event()
            log.info(
                "retention: erased the texts of %d conversation(s) resolved more than %d day(s) ago (%d item(s))",
                totals.threads,
                self.text_days,
                totals.items,
            )
        return totals


def _sum(a: Held, b: Held) -> Held:
    return Held(*(x + y for x, y in zip(astuple(a), astuple(b), strict=True)))


async def _flush(engine: AsyncEngine) -> None:
    if not await privacy.flush_erased(engine):
        log.warning("the store's write-ahead log is in use: the erased texts leave it at its next checkpoint")


async def slack_edits_pending(engine: AsyncEngine, plan: Plan) -> int:
    """The conversations of `plan` whose Slack messages the outbox has not edited yet."""
    return await privacy.erasures_pending(engine, plan.thread_ids)
