"""Small helpers for writing the same SQL on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
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
    first); the `returning` columns of those written, as rows (none without). Return only plain columns (ids,
    text): on SQLite they come back as the driver reads them.

    On SQLite the statement's text is made once per table and columns, and each row bound in one pass by its
    columns' own types, where SQLAlchemy's many-row INSERT with RETURNING builds and processes a dictionary per
    row: a thread or an item cost about a third more that way (ingest's hot path).
    """
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        insert = insert_for(conn, table)
        if conflict:
            insert = insert.on_conflict_do_nothing(index_elements=list(conflict))
        if not returning:
            conn.execute(insert, list(rows))
            return []
        return list(conn.execute(insert.returning(*(table.__table__.c[name] for name in returning)), list(rows)))
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
        result = conn.exec_driver_sql(head + ", ".join([placeholders] * len(part)) + tail, tuple(values))
        if returning:
            written.extend(result)
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
            (f" ON CONFLICT ({', '.join(quote(name) for name in conflict)}) DO NOTHING" if conflict else "")
            + (f" RETURNING {', '.join(quote(name) for name in returning)}" if returning else ""),
            columns,
        )
        _INSERTS[key] = made
    return made
