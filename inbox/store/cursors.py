"""Connector cursors: where each connector resumes, saved with the items it produced."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.models import Cursor
from inbox.store.sqlutil import insert_for


def save_cursor(conn: sa.Connection, connector: str, cursor: BaseModel, now: datetime) -> None:
    """Store a connector's cursor (inside the caller's transaction)."""
    value = cursor.model_dump(mode="json")
    insert = insert_for(conn, Cursor).values(connector=connector, value=value, updated_at=now)
    conn.execute(insert.on_conflict_do_update(index_elements=["connector"], set_={"value": value, "updated_at": now}))


async def load_cursor(engine: AsyncEngine, connector: str) -> dict[str, Any] | None:
    """A connector's saved cursor as stored, or None before its first page."""
    async with engine.connect() as conn:
        row = await conn.execute(sa.select(Cursor.value).where(Cursor.connector == connector))
        return row.scalar_one_or_none()
