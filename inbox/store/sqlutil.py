"""Small helpers for writing the same SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import cache
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


def insert_many(
    conn: sa.Connection,
    table: Any,
    rows: Sequence[Mapping[str, Any]],
    *,
    unique: Sequence[str] = (),
    returning: Sequence[Any] = (),
) -> Sequence[Any]:
    """Insert `rows` (all with the same keys) in one statement; with `unique`, a row whose key is taken is skipped.
    The `returning` columns of the rows written (none without `returning`).

    On PostgreSQL the rows go as one array per column, `INSERT ... SELECT FROM unnest(...)`: the same text for
    any number of rows, so one prepared statement, and a few parameters to bind and plan. A VALUES list of each
    new length (what executemany sends) was parsed and planned afresh with thousands of parameters.
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        names = tuple(rows[0])
        insert = _unnest_insert(table, names, tuple(unique), tuple(returning))
        result = conn.execute(insert, {f"unnest_{i}": [row[name] for row in rows] for i, name in enumerate(names)})
    else:
        result = conn.execute(_conflicts(sqlite.insert(table), unique, returning), list(rows))
    return result.all() if returning else []


@cache
def _unnest_insert(table: Any, names: tuple[str, ...], unique: tuple[str, ...], returning: tuple[Any, ...]) -> Any:
    """`INSERT INTO table (names) SELECT FROM unnest(one array per name)`, the arrays bound as unnest_0, unnest_1..."""
    arrays = [
        sa.bindparam(f"unnest_{i}", type_=_array_of(table.__table__.c[name].type)) for i, name in enumerate(names)
    ]
    values = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    return _conflicts(postgresql.insert(table).from_select(list(names), sa.select(*values.c)), unique, returning)


def _conflicts(insert: Any, unique: Sequence[str], returning: Sequence[Any]) -> Any:
    if unique:
        insert = insert.on_conflict_do_nothing(index_elements=list(unique))
    return insert.returning(*returning) if returning else insert


def _array_of(item: Any) -> postgresql.ARRAY[Any]:
    # One dimension: a JSON value that is a list is one element, not a row of a nested array.
    return postgresql.ARRAY(item, dimensions=1)


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Slices of at most `size` values, for IN lists."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def one_of(dialect: str, query: Any, column: Any) -> Any:
    """`query` narrowed to the rows whose `column` (a unique index's last column) is one of the list bound as `keys`
    (each once: on PostgreSQL a key given twice finds its row twice).

    On SQLite `column IN (keys)`. On PostgreSQL each key is looked up on its own: `unnest(keys)` joined LATERAL
    to `query`, one index probe per key, and the same text for any number of keys (one prepared statement).
    `column = ANY(keys)` on a young table whose statistics were not gathered yet scanned all of the connector's
    rows in the index (3 ms a lookup at 20,000 items, and growing), with a generic plan or a fresh one.
    Building it takes a millisecond or more: callers build theirs once per dialect (`functools.cache`).
    """
    if dialect != "postgresql":
        return query.where(column.in_(sa.bindparam("keys", expanding=True)))
    key = sa.func.unnest(sa.bindparam("keys", type_=_array_of(column.type))).table_valued("key").render_derived()
    # OFFSET 0 keeps the planner from flattening the subquery into a join it may then run as a scan.
    found = query.where(column == key.c.key).offset(0).lateral()
    return sa.select(*found.c).select_from(key.join(found, sa.true()))


def commit_without_waiting(conn: sa.Connection) -> None:
    """PostgreSQL: this transaction's commit returns before its changes reach the disk (`synchronous_commit`
    off), a flush (about 3 ms here) saved; a server crash may lose them, never a later durable commit's."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
