"""Pushes kept before they are answered: the verified body stored as received, the pushes arriving together in
one transaction, then read, triaged and ingested right after the answer.

For platforms that retry slow endpoints and disable failing ones (Meta): the 200 waits only for one short write,
shared by every push in flight, not for triage, threads and events. Nothing answered 2xx is lost: a crash after
the answer leaves the body in the store, and any worker ingests it (ingest stores each item once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.connector import Connector, ConnectorError, PushReceiver
from inbox.logs import log_context
from inbox.metrics import Metrics
from inbox.pipeline.actions import Actions
from inbox.pipeline.ingest import Ingestor, Source
from inbox.store import pushes
from inbox.store.db import describe_outage, is_outage

log = logging.getLogger(__name__)

# A worker's claim on bodies it is ingesting; a crash leaves them to another worker after this.
CLAIM = timedelta(minutes=2)
BATCH = 500  # bodies ingested in one round
# Ingest (triage is CPU work on this event loop) waits while pushes keep arriving, until none came for SETTLE
# seconds, YIELD at most: a burst's answers then do not queue behind the triage of its first bodies.
SETTLE, YIELD = 0.02, 1.0
# What one ingest round spends completing bodies from the platform (a mention's text, senders' names); what is
# not fetched by then is stored as it came (a mention is fetched by the next poll).
COMPLETE_SECONDS = 10.0


@dataclass(slots=True)
class Intake:
    """What one round of ingesting stored pushes did."""

    bodies: int = 0
    stored: int = 0
    duplicates: int = 0
    failed_replies: int = 0


class PushKeeper:
    """Stores pushed bodies before their answer (group commit), and ingests them after."""

    def __init__(
        self,
        engine: AsyncEngine,
        ingestor: Ingestor,
        actions: Actions,
        connectors: Mapping[str, Connector[Any, Any]],
        clock: Callable[[], datetime],
        *,
        worker: str = "local",
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.ingestor = ingestor
        self.actions = actions
        self.connectors = connectors
        self.clock = clock
        self.worker = worker
        self.metrics = metrics
        self._queue: list[tuple[str, str, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._ingesting: asyncio.Task[None] | None = None
        self._again = False
        self._last_kept = 0.0  # the event loop's time of the latest push kept
        self.total = Intake()  # since start, for tests and benchmarks

    async def keep(self, connector: str, body: str) -> None:
        """Return once the body is committed; pushes arriving meanwhile share the next transaction."""
        loop = asyncio.get_running_loop()
        self._last_kept = loop.time()
        done: asyncio.Future[None] = loop.create_future()
        self._queue.append((connector, body, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="push-keeper")
        # Shielded: a push whose sender gave up is still written with the others (ingest stores it once if resent).
        await asyncio.shield(done)

    async def _write(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                await pushes.add(self.engine, [(name, body) for name, body, _ in batch], self.clock())
            except BaseException as exc:
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for *_, done in batch:
                if not done.done():
                    done.set_result(None)
            self.ingest_soon()

    def ingest_soon(self) -> None:
        """Ingest what is stored, in the background; one round at a time, another right after if asked meanwhile."""
        if self._ingesting is not None and not self._ingesting.done():
            self._again = True
            return
        self._ingesting = asyncio.create_task(self._ingest_rounds(), name="push-intake")

    async def _ingest_rounds(self) -> None:
        self._again = True
        while self._again:
            self._again = False
            await self._quiet()
            try:
                await self.ingest()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("ingesting stored pushes failed; they are tried again shortly")
                else:
                    log.warning("stored pushes wait for the store: %s", describe_outage(exc))
                return

    async def _quiet(self) -> None:
        """Wait until no push was kept for SETTLE seconds (YIELD at most)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + YIELD
        for _ in range(2 * round(YIELD / SETTLE)):  # bounded: past it (or give_up), ingest starts anyway
            rest = min(self._last_kept + SETTLE, give_up) - loop.time()
            if rest <= 0:
                return
            await asyncio.sleep(rest)

    async def ingest(self) -> Intake:
        """Ingest every stored body this worker can claim (also left over by a crash, or by another worker)."""
        total = Intake()
        names = [name for name, c in self.connectors.items() if isinstance(c, PushReceiver)]
        while names:
            now = self.clock()
            rows = await pushes.claim(self.engine, names, self.worker, now, now + CLAIM, BATCH)
            if not rows:
                break
            by_connector: dict[str, list[Any]] = {}
            for row in rows:
                by_connector.setdefault(row.connector, []).append(row)
            for name, group in by_connector.items():
                with log_context(connector=name):
                    await self._ingest(self.connectors[name], group, total)
            if len(rows) < BATCH:
                break
        return total

    async def _ingest(self, connector: Connector[Any, Any], rows: list[Any], total: Intake) -> None:
        receiver = connector
        assert isinstance(receiver, PushReceiver)
        items, deliveries, updates = [], [], []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + COMPLETE_SECONDS
        for row in rows:
            try:
                push = receiver.parse(row.body.encode())
            except ConnectorError as exc:  # verified and parsed once before it was kept: a changed parser
                log.warning("a stored push can no longer be read, dropped: %s", exc)
                continue
            if loop.time() < deadline:  # past it, the rest of the round's bodies are stored as they came
                try:
                    # What the body only named (a mention's text, a sender's name): fetched now, after the answer.
                    async with asyncio.timeout_at(deadline):
                        await receiver.complete(push)
                except (ConnectorError, TimeoutError) as exc:
                    why = str(exc) or f"no answer within {COMPLETE_SECONDS:.0f} s"
                    log.warning("could not complete a pushed body from the platform; stored as it came: %s", why)
            items += push.items
            deliveries += push.deliveries
            updates += push.updates
        source = Source.of(connector)
        result = await self.ingestor.ingest(source, items)
        await self.ingestor.update(source, updates)  # after the items: an edit in the same batch finds its item
        failed = await self.actions.record_deliveries(connector.name, deliveries) if deliveries else 0
        await pushes.done(self.engine, [row.id for row in rows])
        if self.metrics is not None:
            self.metrics.items_ingested.labels(connector.name).inc(result.stored)
        for tally in (total, self.total):
            tally.bodies += len(rows)
            tally.stored += result.stored
            tally.duplicates += result.duplicates
            tally.failed_replies += failed

    async def settle(self) -> Intake:
        """Wait for the write and the ingest round in flight, then ingest what is left; the totals since start."""
        for task in (self._writer, self._ingesting):
            if task is not None:
                await asyncio.wait([task])
        await self.ingest()
        return self.total

    async def close(self) -> None:
        """Wait for the write in flight and the ingest round in flight (what is left waits in the store)."""
        running = [t for t in (self._writer, self._ingesting) if t is not None and not t.done()]
        if running:
            await asyncio.wait(running, timeout=10)  # what is not done by then waits in the store for the next start
