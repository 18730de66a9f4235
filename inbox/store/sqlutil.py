"""Small helpers for writing the same SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

T = TypeVar("T")

# Well under SQLite's bound-parameter limit and PostgreSQL's 32767.
CHUNK = 500


def insert_for(conn: AsyncConnection | sa.Connection, table: Any) -> Any:
    """An INSERT that knows ON CONFLICT for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Slices of at most `size` values, for IN lists."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def one_of(conn: AsyncConnection | sa.Connection, column: Any, values: Sequence[Any]) -> Any:
    """`column IN (values)`; on PostgreSQL `column = ANY(array)`, whose text is the same for any number of values.

    One text means one prepared statement: an IN list of each new length was parsed and planned again, which
    cost more than the lookup itself.
    """
    if conn.dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def plan_lookups_afresh(conn: sa.Connection, on: bool) -> None:
    """PostgreSQL: plan the IN-list lookups afresh each time, but keep cached plans for the big INSERTs.

    A generic plan for a lookup, cached while a young table's statistics still say "empty", ran 30 times
    slower than a fresh one in our benchmark; re-planning a 2,000-parameter INSERT costs more than it saves.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"SET LOCAL plan_cache_mode = {'force_custom_plan' if on else 'auto'}"))
