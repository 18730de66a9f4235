"""Connector health: the last known state of each connector, and the one event per change of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store import leases
from inbox.store.events import NewEvent, add_events
from inbox.store.models import ConnectorHealth, EventKind
from inbox.store.sqlutil import insert_for


async def record_poll(
    engine: AsyncEngine,
    connector: str,
    now: datetime,
    *,
    healthy: bool,
    reason: str | None,
    failures: int,
    stored: int,
    failed: bool,
) -> bool:
    """Record a poll's outcome; True when it changed the connector's health (announced by an event, once)."""
    async with engine.begin() as conn:
        await _ensure(conn, connector)
        values: dict[str, Any] = {
            "last_poll_at": now,
            "failures": failures,
            "items_total": ConnectorHealth.items_total + stored,
        }
        if failed:
            values.update(last_error_at=now, reason=reason)
        else:
            values.update(last_ok_at=now, reason=None)
        await conn.execute(sa.update(ConnectorHealth).where(ConnectorHealth.connector == connector).values(**values))
        # Only the worker whose update flips the flag announces it, so a change is told once.
        flipped = await conn.execute(
            sa.update(ConnectorHealth)
            .where(ConnectorHealth.connector == connector, ConnectorHealth.healthy.is_not(healthy))
            .values(healthy=healthy, reason=reason)
            .returning(ConnectorHealth.connector)
        )
        if flipped.first() is None:
            return False
        payload = {"connector": connector, "healthy": healthy, "reason": reason}
        await add_events(conn, now, [NewEvent(EventKind.CONNECTOR_HEALTH, payload=payload)])
    return True


async def record_rate_limited(engine: AsyncEngine, connector: str, now: datetime, stored: int) -> None:
    """A poll the vendor's rate limit refused is no failure: its time and what it stored are kept, the health left as it was."""
    async with engine.begin() as conn:
        await _ensure(conn, connector)
        await conn.execute(
            sa.update(ConnectorHealth)
            .where(ConnectorHealth.connector == connector)
            .values(last_poll_at=now, items_total=ConnectorHealth.items_total + stored)
        )


async def all_health(engine: AsyncEngine) -> dict[str, Any]:
    """Every connector's health row, by name (connectors never polled have none)."""
    async with engine.connect() as conn:
        return await _rows(conn)


@dataclass(frozen=True, slots=True)
class Overview:
    """What /healthz shows of the store: connectors' health, who polls each, and the live workers."""

    health: dict[str, Any]
    holders: dict[str, str]
    workers: list[str]


async def overview(engine: AsyncEngine, now: datetime, alive_after: datetime) -> Overview:
    """Health rows, current lease holders and the workers seen after `alive_after`, read on one connection."""
    async with engine.connect() as conn:
        return Overview(
            await _rows(conn), await leases.holders(conn, now), await leases.live_worker_ids(conn, alive_after)
        )


async def _rows(conn: AsyncConnection) -> dict[str, Any]:
    return {r.connector: r for r in await conn.execute(sa.select(ConnectorHealth))}


async def _ensure(conn: AsyncConnection, connector: str) -> None:
    insert = insert_for(conn, ConnectorHealth).values(connector=connector, healthy=True, failures=0, items_total=0)
    await conn.execute(insert.on_conflict_do_nothing(index_elements=["connector"]))
