"""The store: one async engine for SQLite (default) or PostgreSQL, schema managed by Alembic."""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from importlib.resources import files
from typing import Any, TypeVar

import aiohttp
import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")

# Any constant works; it only has to be the same for every worker migrating the same database.
_MIGRATION_LOCK = 0x1B0C5
# How long a SQLite statement waits for another writer's lock before "database is locked".
BUSY_TIMEOUT_MS = 10_000
# Set by `store_wait`: a shorter wait for work that must answer someone soon (a push, /healthz).
_busy_ms: ContextVar[int] = ContextVar("sqlite_busy_ms", default=BUSY_TIMEOUT_MS)


class StoreUnavailable(Exception):
    """The store cannot be read or written just now (down, unreachable, locked): try again later."""


def async_url(url: str) -> str:
    """Map the URLs users write to the async drivers the inbox runs on."""
    parsed = make_url(url)
    driver = {
        "sqlite": "sqlite+aiosqlite",
        "postgresql": "postgresql+asyncpg",
        "postgres": "postgresql+asyncpg",
        "postgresql+psycopg2": "postgresql+asyncpg",
    }.get(parsed.drivername, parsed.drivername)
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def create_engine(url: str, *, schema: str | None = None, **kwargs: Any) -> AsyncEngine:
    """An engine for `url`; `schema` (PostgreSQL) puts every table in that schema, for isolated tests."""
    full = async_url(url)
    if full.startswith("sqlite"):
        engine = create_async_engine(full, **kwargs)
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine.sync_engine, "checkout", _sqlite_busy_wait)
        if make_url(full).database not in (None, "", ":memory:"):
            _store_threads[engine.sync_engine] = _StoreThread(make_url(full).set(drivername="sqlite+pysqlite"))
            sa.event.listen(engine.sync_engine, "engine_disposed", _close_store_thread)
        return engine
    connect_args: dict[str, Any] = kwargs.pop("connect_args", {})
    if schema:
        connect_args.setdefault("server_settings", {})["search_path"] = schema
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(full, connect_args=connect_args, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (inbox queue, Slack) run beside the writer; NORMAL is durable in WAL mode. secure_delete
    # zeroes what a delete or an update frees, so text erased by `inbox forget` does not linger in free pages.
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        f"busy_timeout={BUSY_TIMEOUT_MS}",
        "foreign_keys=ON",
        "secure_delete=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_busy_wait(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # Only a connection whose wait differs from the one wanted here is changed: the common case costs nothing.
    wanted = _busy_ms.get()
    if record.info.get("busy_ms", BUSY_TIMEOUT_MS) != wanted:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={wanted}")
        cursor.close()
        record.info["busy_ms"] = wanted


async def in_transaction(engine: AsyncEngine, work: Callable[[sa.Connection], T]) -> T:
    """`work`'s answer, its statements run in one transaction: committed when it returns, rolled back when it raises.

    `work` is plain (sync) code. On a SQLite file it runs in the store's own thread over a plain sqlite3 connection:
    one hand-off between threads for the whole, where aiosqlite hands every statement over about four times (ingest:
    about 30 per page, each a wait for the other thread to be scheduled). Elsewhere it runs on this event loop
    (`AsyncConnection.run_sync`), each statement awaiting the server.
    """
    thread = _store_threads.get(engine.sync_engine)
    if thread is None:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    return await thread.run(work)


def plain_engines(engine: AsyncEngine) -> list[sa.Engine]:
    """The sync engines that send `engine`'s statements, to listen to their events: its own and, on a SQLite file,
    the one `in_transaction` runs on."""
    thread = _store_threads.get(engine.sync_engine)
    return [engine.sync_engine] if thread is None else [engine.sync_engine, thread.engine]


class _StoreThread:
    """A plain (pysqlite) engine on an aiosqlite engine's file, and the one thread that uses it."""

    def __init__(self, url: sa.URL) -> None:
        self.engine = sa.create_engine(url)
        sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        sa.event.listen(self.engine, "checkout", _sqlite_busy_wait)
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, work: Callable[[sa.Connection], T]) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="inbox-store")
        # The caller's context goes along: `store_wait`'s lock wait, the log's fields.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, self._work, work)

    def _work(self, work: Callable[[sa.Connection], T]) -> T:
        with self.engine.begin() as conn:
            return work(conn)

    def close(self) -> None:
        """Close the thread's connections, in that thread (sqlite3 objects belong to the thread that made them)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(self.engine.dispose).result()
            executor.shutdown()


_store_threads: weakref.WeakKeyDictionary[sa.Engine, _StoreThread] = weakref.WeakKeyDictionary()


def _close_store_thread(engine: sa.Engine) -> None:
    thread = _store_threads.get(engine)
    if thread is not None:
        thread.close()


@contextmanager
def store_wait(seconds: float) -> Iterator[None]:
    """Within this block (and the tasks it starts), a SQLite statement waits at most `seconds` for a lock."""
    token = _busy_ms.set(max(1, int(seconds * 1000)))
    try:
        yield
    finally:
        _busy_ms.reset(token)


def is_outage(exc: BaseException) -> bool:
    """True when `exc`, raised by a store call, says the store is unreachable, locked or went away (not a bad query)."""
    if isinstance(exc, aiohttp.ClientError):
        return False  # a vendor's or Slack's network, never the store's
    if isinstance(exc, (sa.exc.IntegrityError, sa.exc.ProgrammingError, sa.exc.DataError, sa.exc.NotSupportedError)):
        return False  # the store answered: the query or the data is wrong, and retrying will not help
    if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
        # A connection that cannot be opened reaches us as the socket's own error: refused, no route to the host,
        # a name that does not resolve, or asyncio's "Multiple exceptions" when every address of a name failed.
        # (A bare TimeoutError may be anyone's, Slack's among them: it is not taken for the store's.)
        return True
    return isinstance(
        exc,
        (
            sa.exc.DBAPIError,
            sa.exc.DisconnectionError,
            sa.exc.TimeoutError,
            sa.exc.PendingRollbackError,
            StoreUnavailable,
        ),
    )


def describe_outage(exc: BaseException) -> str:
    """One short line for a store error: the driver's message without SQLAlchemy's SQL and background link."""
    cause = getattr(exc, "orig", None) or exc
    text = " ".join(str(cause).split()) or type(cause).__name__
    return text[:300]


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (safe to run from several workers at once)."""
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


def _upgrade(connection: sa.Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def alembic_config(connection: sa.Connection | None = None) -> AlembicConfig:
    """An Alembic config pointing at the shipped migrations, optionally bound to a connection."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("inbox.store.migrations")))
    cfg.attributes["connection"] = connection
    return cfg
