"""Several `inbox run` workers on one store: who is alive, and which worker polls which connector.

The store is the coordinator. Each worker renews its row in `worker` and its rows in `connectorlease`
every third of a lease period; a connector is polled only by the worker whose lease on it has not run
out, and the cursor is saved only while that lease still holds (the fence), so a worker that stalled
past its lease cannot write over its successor. Connectors are shared out evenly among live workers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.models import ConnectorLease, Worker, utcnow
from inbox.sqlutil import chunks, insert_for

log = logging.getLogger(__name__)


def worker_id() -> str:
    """A name for this process, unique across machines and restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(3)}"


class LeaseLost(Exception):
    """This worker no longer holds the connector's lease: another worker polls it now."""


@dataclass(slots=True)
class LeaseChange:
    """What one refresh changed: connectors this worker now polls, and those it gave up or lost."""

    gained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    live_workers: int = 1


class Leases:
    """This worker's share of the connectors, renewed against the store."""

    def __init__(
        self,
        engine: AsyncEngine,
        worker: str,
        connectors: Sequence[str],
        *,
        seconds: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.worker = worker
        self.connectors = sorted(set(connectors))
        self.period = timedelta(seconds=seconds)
        self.clock = clock
        self.started_at = clock()
        self._held: dict[str, datetime] = {}

    @property
    def refresh_seconds(self) -> float:
        """How often to renew: three renewals fit in a lease, so one slow round does not lose it."""
        return self.period.total_seconds() / 3

    def holds(self, connector: str) -> bool:
        """True while this worker's lease on `connector` has not run out (as far as it knows)."""
        until = self._held.get(connector)
        return until is not None and until > self.clock()

    @property
    def held(self) -> list[str]:
        """The connectors this worker polls now."""
        return sorted(name for name in self._held if self.holds(name))

    async def refresh(self) -> LeaseChange:
        """Say this worker is alive, renew its leases, and take or give up connectors toward a fair share."""
        now = self.clock()
        until = now + self.period
        before = set(self.held)
        # The heartbeat commits on its own: a renewal waiting on a lease row must not make this worker look dead.
        async with self.engine.begin() as conn:
            await self._heartbeat(conn, now)
        async with self.engine.begin() as conn:
            live = await self._live_workers(conn, now)
            renewed = await self._renew(conn, until)
            share = math.ceil(len(self.connectors) / live) if self.connectors else 0
            if len(renewed) > share:
                # Give the surplus back so a worker that just joined finds something to take.
                surplus = sorted(renewed, key=self._rank)[share:]
                await self._release(conn, surplus)
                renewed -= set(surplus)
            elif len(renewed) < share:
                renewed |= await self._claim(conn, now, until, share - len(renewed), renewed)
        self._held = {name: until for name in renewed}
        change = LeaseChange(sorted(renewed - before), sorted(before - renewed), live)
        if change.gained or change.lost:
            log.info(
                "worker %s now polls %d of %d connector(s) (%d worker(s) alive): +%s -%s",
                self.worker, len(renewed), len(self.connectors), live,
                ",".join(change.gained) or "none", ",".join(change.lost) or "none",
            )
        return change

    async def fence(self, conn: AsyncConnection, connector: str) -> None:
        """Last in a transaction that saves a cursor: renew the lease (locking it until the commit), or raise
        LeaseLost if it moved, which rolls the transaction back."""
        result = await conn.execute(
            sa.update(ConnectorLease)
            .where(ConnectorLease.connector == connector, ConnectorLease.worker == self.worker)
            .values(expires_at=self.clock() + self.period)
        )
        if not result.rowcount:
            self._held.pop(connector, None)
            raise LeaseLost(f"{connector}: another worker holds the lease now")

    async def release(self) -> None:
        """On a clean stop: hand every connector back at once and leave the list of live workers."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(ConnectorLease).where(ConnectorLease.worker == self.worker))
            await conn.execute(sa.delete(Worker).where(Worker.id == self.worker))
        self._held.clear()

    def _rank(self, connector: str) -> str:
        # Stable per worker and connector, so which surplus a worker gives back does not flap between rounds.
        return hashlib.blake2s(f"{self.worker}/{connector}".encode(), digest_size=8).hexdigest()

    async def _heartbeat(self, conn: AsyncConnection, now: datetime) -> None:
        insert = insert_for(conn, Worker).values(
            id=self.worker, host=socket.gethostname()[:255], pid=os.getpid(), started_at=self.started_at, seen_at=now
        )
        await conn.execute(insert.on_conflict_do_update(index_elements=["id"], set_={"seen_at": now}))

    async def _live_workers(self, conn: AsyncConnection, now: datetime) -> int:
        count = await conn.execute(sa.select(sa.func.count()).select_from(Worker).where(Worker.seen_at > now - self.period))
        return max(1, int(count.scalar_one()))

    async def _renew(self, conn: AsyncConnection, until: datetime) -> set[str]:
        renewed: set[str] = set()
        for part in chunks(self.connectors):
            result = await conn.execute(
                sa.update(ConnectorLease)
                .where(ConnectorLease.worker == self.worker, ConnectorLease.connector.in_(part))
                .values(expires_at=until)
                .returning(ConnectorLease.connector)
            )
            renewed.update(result.scalars())
        return renewed

    async def _release(self, conn: AsyncConnection, names: Sequence[str]) -> None:
        for part in chunks(names):
            await conn.execute(
                sa.delete(ConnectorLease).where(ConnectorLease.worker == self.worker, ConnectorLease.connector.in_(part))
            )

    async def _claim(self, conn: AsyncConnection, now: datetime, until: datetime, wanted: int, mine: set[str]) -> set[str]:
        taken: set[str] = set()
        for part in chunks(self.connectors):
            result = await conn.execute(
                sa.select(ConnectorLease.connector).where(ConnectorLease.connector.in_(part), ConnectorLease.expires_at > now)
            )
            taken.update(result.scalars())
        free = [name for name in self.connectors if name not in taken and name not in mine]
        # A random pick, so workers starting together do not all reach for the same connectors first; locked in
        # name order, like every renewal, so a claim and a renewal crossing each other never deadlock.
        picked = sorted(random.sample(free, min(wanted, len(free))))
        won: set[str] = set()
        for part in chunks(picked):
            insert = insert_for(conn, ConnectorLease).values([{"connector": n, "worker": self.worker, "expires_at": until} for n in part])
            # Only a lease that has run out changes hands; one renewed meanwhile by its holder stays.
            upsert = insert.on_conflict_do_update(
                index_elements=["connector"],
                set_={"worker": insert.excluded.worker, "expires_at": insert.excluded.expires_at},
                where=ConnectorLease.expires_at <= now,
            )
            won.update((await conn.execute(upsert.returning(ConnectorLease.connector))).scalars())
        return won
