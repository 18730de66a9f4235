"""Small helpers for writing the same SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
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


@cache
def _unnest_insert(table: Any, names: tuple[str, ...], conflict: tuple[str, ...], returning: tuple[str, ...]) -> Any:
    """`INSERT INTO table (names) SELECT FROM unnest(one array per name)`, the arrays bound as unnest_0, unnest_1..."""
    columns = table.__table__.c
    arrays = [sa.bindparam(f"unnest_{i}", type_=_array_of(columns[name].type)) for i, name in enumerate(names)]
    values = sa.func.unnest(*arrays).table_valued(*names).render_derived()
    insert = postgresql.insert(table).from_select(list(names), sa.select(*values.c))
    return _conflicts(insert, conflict, returning)


def _conflicts(insert: Any, conflict: Sequence[str], returning: Sequence[str]) -> Any:
    if conflict:
        insert = insert.on_conflict_do_nothing(index_elements=list(conflict))
    return insert.returning(*(insert.table.c[name] for name in returning)) if returning else insert


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


# The parts of `insert_new`'s statement on SQLite: its head, one row's placeholders, its tail, and each value's
# column: its name, or the default SQLAlchemy's insert would add when the rows leave it out, with its bind processor.
_Insert = tuple[str, str, str, list[tuple[str | sa.ColumnDefault, Callable[[Any], Any] | None]]]
_INSERTS: dict[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], _Insert] = {}


def insert_new(
    conn: sa.Connection,
    table: Any,
    rows: Sequence[Mapping[str, Any]],
    conflict: Sequence[str] = (),
    returning: Sequence[str] = (),
) -> list[Any]:
    """Insert `rows` (all with the same keys), skipping any whose `conflict` key is taken (another worker wrote it
    first); the `returning` columns of those written, as rows (none without `returning`). Return only plain
    columns (ids, text): on SQLite they come back as the driver reads them.

    On PostgreSQL the rows go as one array per column, `INSERT ... SELECT FROM unnest(...)`: the same text for
    any number of rows, so one prepared statement, and a few parameters to bind and plan. A VALUES list of each
    new length (what executemany sends) was parsed and planned afresh with thousands of parameters.

    On SQLite the statement's text is made once per table and columns, and each row bound in one pass by its
    columns' own types, where SQLAlchemy's many-row INSERT with RETURNING builds and processes a dictionary per
    row: a thread or an item cost about a third more that way (ingest's hot path).
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        names = tuple(rows[0])
        insert = _unnest_insert(table, names, tuple(conflict), tuple(returning))
        result = conn.execute(insert, {f"unnest_{i}": [row[name] for row in rows] for i, name in enumerate(names)})
        return list(result) if returning else []
    if not returning:
        conn.execute(_conflicts(insert_for(conn, table), conflict, ()), list(rows))
        return []
    head, placeholders, tail, columns = _sqlite_insert(conn, table, tuple(rows[0]), conflict, returning)
    written: list[Any] = []
    for part in chunks(rows, max(1, conn.dialect.insertmanyvalues_max_parameters // len(columns))):
        values = []
        for row in part:
            for column, process in columns:
                if isinstance(column, str):
                    value = row[column]
                else:
                    value = column.arg(None) if column.is_callable else column.arg
                values.append(value if process is None else process(value))
        written.extend(conn.exec_driver_sql(head + ", ".join([placeholders] * len(part)) + tail, tuple(values)))
    return written


def _sqlite_insert(
    conn: sa.Connection, table: Any, keys: tuple[str, ...], conflict: Sequence[str], returning: Sequence[str]
) -> _Insert:
    """The parts of `insert_new`'s statement on SQLite, made once."""
    key = (table.__table__.name, keys, tuple(conflict), tuple(returning))
    made = _INSERTS.get(key)
    if made is None:
        table_columns = table.__table__.c
        columns: list[tuple[str | sa.ColumnDefault, Callable[[Any], Any] | None]] = []
        names = []
        for column in table_columns:
            if column.name in keys:
                continue
            if isinstance(column.default, sa.ColumnDefault):
                # Left out, with a default in Python: SQLAlchemy's insert would add it.
                columns.append((column.default, column.type._cached_bind_processor(conn.dialect)))  # noqa: SLF001
                names.append(column.name)
        columns[:0] = [(name, table_columns[name].type._cached_bind_processor(conn.dialect)) for name in keys]  # noqa: SLF001
        names[:0] = keys
        quote = conn.dialect.identifier_preparer.quote
        made = (
            f"INSERT INTO {quote(table.__table__.name)} ({', '.join(quote(name) for name in names)}) VALUES ",
            "(" + ", ".join("?" * len(names)) + ")",
            f" ON CONFLICT ({', '.join(quote(name) for name in conflict)}) DO NOTHING"
            f" RETURNING {', '.join(quote(name) for name in returning)}",
            columns,
        )
        _INSERTS[key] = made
    return made
