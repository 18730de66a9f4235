"""Workers and leases: who is alive, which worker polls which connector, and the claims a dead worker leaves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store.models import ConnectorLease, Event, Reply, ReplyStatus, Worker
from inbox.store.sqlutil import chunks, insert_for


async def heartbeat(
    conn: AsyncConnection, worker: str, host: str, pid: int, started_at: datetime, now: datetime
) -> None:
    """Say that `worker` is alive at `now` (adding its row the first time)."""
    insert = insert_for(conn, Worker).values(id=worker, host=host[:255], pid=pid, started_at=started_at, seen_at=now)
    await conn.execute(insert.on_conflict_do_update(index_elements=["id"], set_={"seen_at": now}))


async def live_workers(conn: AsyncConnection, seen_after: datetime) -> int:
    """How many workers were seen after `seen_after` (at least 1: the one asking)."""
    count = await conn.execute(sa.select(sa.func.count()).select_from(Worker).where(Worker.seen_at > seen_after))
    return max(1, int(count.scalar_one()))


async def live_worker_ids(conn: AsyncConnection, seen_after: datetime) -> list[str]:
    """The workers seen after `seen_after`, by id."""
    return sorted((await conn.execute(sa.select(Worker.id).where(Worker.seen_at > seen_after))).scalars())


async def holders(conn: AsyncConnection, now: datetime) -> dict[str, str]:
    """The worker holding each connector whose lease has not run out at `now`."""
    rows = await conn.execute(
        sa.select(ConnectorLease.connector, ConnectorLease.worker).where(ConnectorLease.expires_at > now)
    )
    return {r.connector: r.worker for r in rows}


async def renew(conn: AsyncConnection, worker: str, connectors: Sequence[str], until: datetime) -> set[str]:
    """Extend `worker`'s leases among `connectors` to `until`; the connectors whose lease it still held."""
    renewed: set[str] = set()
    for part in chunks(connectors):
        result = await conn.execute(
            sa.update(ConnectorLease)
            .where(ConnectorLease.worker == worker, ConnectorLease.connector.in_(part))
            .values(expires_at=until)
            .returning(ConnectorLease.connector)
        )
        renewed.update(result.scalars())
    return renewed


async def give_up(conn: AsyncConnection, worker: str, connectors: Sequence[str]) -> None:
    """Hand `worker`'s leases on `connectors` back, free for any worker."""
    for part in chunks(connectors):
        await conn.execute(
            sa.delete(ConnectorLease).where(ConnectorLease.worker == worker, ConnectorLease.connector.in_(part))
        )


async def taken(conn: AsyncConnection, connectors: Sequence[str], now: datetime) -> set[str]:
    """Which of `connectors` another live holder's lease covers at `now`."""
    found: set[str] = set()
    for part in chunks(connectors):
        result = await conn.execute(
            sa.select(ConnectorLease.connector).where(
                ConnectorLease.connector.in_(part), ConnectorLease.expires_at > now, ~_holder_gone()
            )
        )
        found.update(result.scalars())
    return found


async def take(
    conn: AsyncConnection, worker: str, connectors: Sequence[str], now: datetime, until: datetime
) -> set[str]:
    """Lease to `worker` until `until` those of `connectors` that are free at `now` (locked in the order given)."""
    won: set[str] = set()
    for part in chunks(connectors):
        insert = insert_for(conn, ConnectorLease).values(
            [{"connector": n, "worker": worker, "expires_at": until} for n in part]
        )
        # Only a free lease changes hands; one renewed meanwhile by its (live) holder stays.
        upsert = insert.on_conflict_do_update(
            index_elements=["connector"],
            set_={"worker": insert.excluded.worker, "expires_at": insert.excluded.expires_at},
            where=sa.or_(ConnectorLease.expires_at <= now, _holder_gone()),
        )
        won.update((await conn.execute(upsert.returning(ConnectorLease.connector))).scalars())
    return won


def extend(conn: sa.Connection, worker: str, connector: str, until: datetime) -> bool:
    """Extend `worker`'s lease on `connector` (locking it until the commit); False if another worker holds it now."""
    result = conn.execute(
        sa.update(ConnectorLease)
        .where(ConnectorLease.connector == connector, ConnectorLease.worker == worker)
        .values(expires_at=until)
    )
    return bool(result.rowcount)


async def leave(engine: AsyncEngine, worker: str) -> None:
    """Hand every lease of `worker` back and remove it from the live workers."""
    async with engine.begin() as conn:
        await conn.execute(sa.delete(ConnectorLease).where(ConnectorLease.worker == worker))
        await conn.execute(sa.delete(Worker).where(Worker.id == worker))


async def bury(engine: AsyncEngine, place: str, dead: Callable[[str, int], bool]) -> list[str]:
    """Delete the rows of the workers of `place` that `dead(worker, pid)` says are gone, and free their event and
    reply claims; the workers buried here.

    Their leases need nothing more: a lease whose holder has no row is free (see `take`).
    """
    async with engine.begin() as conn:
        rows = await conn.execute(sa.select(Worker.id, Worker.pid).where(Worker.host == place))
        gone = [worker for worker, pid in rows if dead(worker, pid)]
        buried: list[str] = []
        for part in chunks(gone):
            # Only the worker whose delete took the row frees the claims: two workers burying at once do it once.
            deleted = await conn.execute(sa.delete(Worker).where(Worker.id.in_(part)).returning(Worker.id))
            buried.extend(deleted.scalars())
        for part in chunks(buried):
            await conn.execute(
                sa.update(Event)
                .where(Event.done_at.is_(None), Event.claimed_by.in_(part))
                .values(claimed_by=None, claimed_until=None)
            )
            await conn.execute(
                sa.update(Reply)
                .where(Reply.status == ReplyStatus.PENDING, Reply.claimed_by.in_(part))
                .values(claimed_by=None, claimed_until=None)
            )
    return sorted(buried)


def _holder_gone() -> sa.ColumnElement[bool]:
    # A lease is free once it ran out, or at once when its holder's row is gone (buried as dead).
    return ~sa.exists().where(Worker.id == ConnectorLease.worker)
