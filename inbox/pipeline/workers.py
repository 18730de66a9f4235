"""Several `inbox run` workers on one store: who is alive, and which worker polls which connector.

The store is the coordinator. Each worker renews its row in `worker` and its rows in `connectorlease`
every third of a lease period; a connector is polled only by the worker whose lease on it has not run
out, and the cursor is saved only while that lease still holds (the fence), so a worker that stalled
past its lease cannot write over its successor. Connectors are shared out evenly among live workers.

A worker that is provably dead is not waited for. Each row in `worker` says where its pid means something
(`host`: the host name, the boot id and the PID namespace); on every renewal a worker looks at the rows of
its own place, and a row whose pid names no live process there (none, or a zombie) is deleted together with
its claims on outbox events and replies. A lease whose holder has no row is free at once, so after `kill -9`
and a restart the new process polls at its first renewal instead of one lease period later, and the dead
one's claimed Slack posts and replies go out at once (each still looked for before it is sent again).

Why this and not a lock tied to the holder: it is the same for both stores and needs nothing held open. A
PostgreSQL session advisory lock lives on one connection, which a few seconds of store outage cut, making a
live worker look dead to the others (and SQLite would need a file lock besides). Only proof of death counts:
a pid that exists is taken as alive even if it was reused by another program (the lease then runs out as
before), a row from another place (another machine, another container's PID namespace) is never judged, and
a process's own workers are never buried (tests run several in one process). Off Linux (no /proc) a dead
worker is taken over when its lease runs out, as it always was.
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
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store import leases
from inbox.store.models import utcnow

log = logging.getLogger("inbox.workers")  # the logger name users filter on, unchanged by the move into inbox.pipeline

# The workers of this process: alive as long as it is, whatever their pid says (tests run several in one).
_HERE: set[str] = set()


def worker_id() -> str:
    """A name for this process, unique across machines and restarts: host, pid and a random suffix."""
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{secrets.token_hex(3)}"


def pid_place() -> str | None:
    """Where this process's pid names it: host name, boot id and PID namespace; None where /proc cannot say."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    # The boot id tells a reboot (pids start over); the namespace tells containers that share a host name.
    return f"{socket.gethostname()[:150]} boot={boot} pidns={namespace}"


def process_gone(pid: int) -> bool:
    """True when no live process has `pid` in this PID namespace: none at all, or a zombie awaiting its parent."""
    try:
        os.kill(pid, 0)  # the kernel's answer, whatever /proc may hide (hidepid)
    except ProcessLookupError:
        return True
    except PermissionError:
        # Another user's process: it exists, and /proc may hide it (hidepid), so it is not looked up there.
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True  # it ended between the two looks
    except OSError:
        return False
    # The state follows the command name in parentheses, which may itself hold spaces and parentheses.
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


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
        self.place = pid_place()
        self._held: dict[str, datetime] = {}
        _HERE.add(worker)

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
            await leases.heartbeat(
                conn, self.worker, self.place or socket.gethostname(), os.getpid(), self.started_at, now
            )
        try:
            await self.bury_dead()
        except Exception:
            log.warning("could not look for dead workers on this host; their leases run out instead", exc_info=True)
        async with self.engine.begin() as conn:
            live = await leases.live_workers(conn, now - self.period)
            renewed = await leases.renew(conn, self.worker, self.connectors, until)
            share = math.ceil(len(self.connectors) / live) if self.connectors else 0
            if len(renewed) > share:
                # Give the surplus back so a worker that just joined finds something to take.
                surplus = sorted(renewed, key=self._rank)[share:]
                await leases.give_up(conn, self.worker, surplus)
                renewed -= set(surplus)
            elif len(renewed) < share:
                renewed |= await self._claim(conn, now, until, share - len(renewed), renewed)
        self._held = {name: until for name in renewed}
        change = LeaseChange(sorted(renewed - before), sorted(before - renewed), live)
        if change.gained or change.lost:
            log.info(
                "worker %s now polls %d of %d connector(s) (%d worker(s) alive): +%s -%s",
                self.worker,
                len(renewed),
                len(self.connectors),
                live,
                ",".join(change.gained) or "none",
                ",".join(change.lost) or "none",
            )
        return change

    def fence(self, conn: sa.Connection, connector: str) -> None:
        """Last in a transaction that saves a cursor: renew the lease (locking it until the commit), or raise
        LeaseLost if it moved, which rolls the transaction back."""
        if not leases.extend(conn, self.worker, connector, self.clock() + self.period):
            self._held.pop(connector, None)
            raise LeaseLost(f"{connector}: another worker holds the lease now")

    async def release(self) -> None:
        """On a clean stop: hand every connector back at once and leave the list of live workers."""
        await leases.leave(self.engine, self.worker)
        self._held.clear()

    async def bury_dead(self) -> list[str]:
        """Delete the rows of this place's workers whose process is gone, and free their event and reply claims.

        Their leases need nothing more: a lease whose holder has no row is free (see `inbox.store.leases.take`).
        """
        if self.place is None:
            return []
        buried = await leases.bury(
            self.engine, self.place, lambda worker, pid: worker not in _HERE and process_gone(pid)
        )
        if buried:
            log.warning(
                "worker(s) %s on this host are dead (no such process): their connectors and claims are taken over now",
                ", ".join(sorted(buried)),
            )
        return buried

    def _rank(self, connector: str) -> str:
        # Stable per worker and connector, so which surplus a worker gives back does not flap between rounds.
        return hashlib.blake2s(f"{self.worker}/{connector}".encode(), digest_size=8).hexdigest()

    async def _claim(
        self, conn: AsyncConnection, now: datetime, until: datetime, wanted: int, mine: set[str]
    ) -> set[str]:
        taken = await leases.taken(conn, self.connectors, now)
        free = [name for name in self.connectors if name not in taken and name not in mine]
        # A random pick, so workers starting together do not all reach for the same connectors first; locked in
        # name order, like every renewal, so a claim and a renewal crossing each other never deadlock.
        picked = sorted(random.sample(free, min(wanted, len(free))))
        return await leases.take(conn, self.worker, picked, now, until)
