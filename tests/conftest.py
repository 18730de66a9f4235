"""Shared fixtures: both stores (SQLite always, PostgreSQL when INBOX_TEST_DATABASE_URL is set) and a fake clock."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox import connectors as registry
from inbox.fakes.vendor import VendorFake
from inbox.fakes.x import XFake
from inbox.logs import ContextFilter
from inbox.pipeline.outbox import Notice
from inbox.service import Inbox
from inbox.settings import Settings, parse_config
from inbox.store.db import create_engine, migrate
from inbox.store.models import Item, Reply, ReplyStatus
from inbox.templates import ReplyTemplates
from inbox.triage import Triager, load_rules

PG_URL = os.environ.get("INBOX_TEST_DATABASE_URL")
V = TypeVar("V", bound=VendorFake)

# The tests that take longest (tens of seconds to minutes each), longest first: under pytest-xdist they are dealt
# out to the worker processes and each worker starts with its share, so none of them starts last and keeps the run
# waiting for it (docs/development.md#how-long-the-suite-takes). Node-id prefixes; a test missing here only runs in
# its usual place.
LONG_FIRST = (
    "tests/test_crash_workers.py::",
    "tests/test_cli_privacy.py::",
    "tests/test_outage_e2e.py::",
    "tests/inbox/triage/test_model.py::test_the_shipped_model_is_what_the_training_script_makes",
    "tests/test_cli_backfill.py::",
    "tests/test_run_e2e.py::",
    "tests/test_meta_e2e.py::",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, deal the LONG_FIRST tests out so that each worker starts its share of the run with them.

    xdist's `worksteal` hands the collection to the N workers as N consecutive slices (idle workers then steal from
    the busiest one's tail), so the long tests go, in turn, to the head of each slice. Order matters for time only:
    every test still runs, each on a store of its own.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers < 2:
        return

    def long_rank(item: pytest.Item) -> int | None:
        if item.get_closest_marker("postgresql") and not PG_URL:
            return None  # skipped at once
        return next((i for i, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix)), None)

    rank = {item.nodeid: long_rank(item) for item in items}
    long = sorted((item for item in items if rank[item.nodeid] is not None), key=lambda item: rank[item.nodeid])
    rest = [item for item in items if rank[item.nodeid] is None]
    shares: list[list[pytest.Item]] = [long[w::workers] for w in range(workers)]
    ordered: list[pytest.Item] = []
    for w, share in enumerate(shares):
        # worksteal's slice w ends where `len(items) * (w + 1) // workers` items have been handed out
        end = len(items) * (w + 1) // workers
        ordered += share
        take = max(0, end - len(ordered))
        ordered += rest[:take]
        rest = rest[take:]
    items[:] = ordered + rest


class FakeClock:
    """An injected clock: time moves only when a test says so."""

    def __init__(self, start: datetime = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class Recorder:
    """A notifier that keeps every notice, for assertions."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def notify(self, notice: Notice) -> None:
        self.notices.append(notice)

    def kinds(self) -> list[str]:
        return [str(n.kind) for n in self.notices]


_CONTEXT = ContextFilter()


def capture_context(caplog: pytest.LogCaptureFixture) -> None:
    """From now on, captured records carry the context fields (connector, item_id, ...) as `inbox run`'s handler adds them."""
    caplog.handler.addFilter(_CONTEXT)


@pytest.fixture(autouse=True)
def _logger_levels_as_they_were() -> Iterator[None]:
    """Undo the levels a test's `setup_logging` (an in-process command) set: the root's, and the vendor clients'
    WARNING, so that a later test in the same process (pytest-xdist mixes the order) still sees DEBUG records."""
    loggers = logging.root.manager.loggerDict
    root_level = logging.root.level
    levels = {name: logger.level for name, logger in loggers.items() if isinstance(logger, logging.Logger)}
    yield
    logging.root.setLevel(root_level)
    for name, logger in list(loggers.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@contextlib.asynccontextmanager
async def serving(fake: V, clock: FakeClock) -> AsyncIterator[V]:
    """A vendor fake serving, its posts dated from the test clock (so ingest does not take them for the future)."""
    fake.now = clock.now
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest.fixture
async def x_fake(clock: FakeClock) -> AsyncIterator[XFake]:
    """The local X, serving on the test clock."""
    async with serving(XFake(), clock) as fake:
        yield fake


@pytest.fixture(scope="session")
def triager() -> Triager:
    return Triager(load_rules())


@pytest.fixture(scope="session")
def templates() -> ReplyTemplates:
    return ReplyTemplates()


@contextlib.asynccontextmanager
async def _pg_engine() -> AsyncIterator[tuple[AsyncEngine, str]]:
    assert PG_URL
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(PG_URL, schema=schema)
    try:
        yield engine, schema
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@contextlib.asynccontextmanager
async def pg_database(prefix: str) -> AsyncIterator[str]:
    """A PostgreSQL database of its own, by URL (for processes that take a URL, not a schema); dropped after."""
    assert PG_URL
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


STORES = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgresql,
            pytest.mark.skipif(not PG_URL, reason="PostgreSQL tests need INBOX_TEST_DATABASE_URL (.ci/run sets it)"),
        ],
    ),
]


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's one migrated, empty SQLite file goes (made by the first test that needs it)."""
    return tmp_path_factory.mktemp("template") / "migrated.db"


async def migrated_sqlite(path: Path, template: Path) -> None:
    """A migrated, empty SQLite store at `path`: a copy of the session's template, migrated once by the same code.

    Migrating costs a few hundred milliseconds a store; a copy of the closed file costs a millisecond.
    """
    if not template.exists():
        engine = create_engine(f"sqlite:///{template}")
        await migrate(engine)
        await engine.dispose()
        # Closed cleanly, the file holds everything: no write-ahead log is left beside it to copy.
        assert not template.with_name(template.name + "-wal").exists()
    shutil.copyfile(template, path)


@contextlib.asynccontextmanager
async def open_store(kind: str, folder: Path, template: Path) -> AsyncIterator[tuple[AsyncEngine, str, str | None]]:
    """A migrated, empty store of `kind` ("sqlite" in `folder`, or "postgresql" in a schema of its own), disposed after."""
    if kind == "sqlite":
        path = folder / "inbox.db"
        await migrated_sqlite(path, template)
        url = f"sqlite:///{path}"
        engine = create_engine(url)
        try:
            yield engine, url, None
        finally:
            await engine.dispose()
        return
    async with _pg_engine() as (engine, schema):
        await migrate(engine)
        assert PG_URL
        yield engine, PG_URL, schema


@pytest.fixture(params=STORES)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite_template: Path
) -> AsyncIterator[tuple[AsyncEngine, str, str | None]]:
    """A migrated, empty store: (engine, url, PostgreSQL schema or None)."""
    async with open_store(request.param, tmp_path, migrated_sqlite_template) as opened:
        yield opened


@pytest.fixture(params=STORES)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL a separate process can open: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inbox.db'}"
        return
    async with pg_database(request.module.__name__.rsplit(".", 1)[-1]) as url:
        yield url


@pytest.fixture
def engine(store: tuple[AsyncEngine, str, str | None]) -> AsyncEngine:
    return store[0]


def make_settings(tmp_path: Path, **extra: Any) -> Settings:
    """Settings as a config file would give them, with `extra` tables merged in."""
    return parse_config(extra, source="test", base_dir=tmp_path, env={}, types=registry)


@pytest.fixture
def inbox_factory(
    engine: AsyncEngine, clock: FakeClock, triager: Triager, templates: ReplyTemplates, tmp_path: Path
) -> Callable[..., Inbox]:
    """Build an Inbox on the test store with the fake clock; `recorder` collects notices."""

    def build(recorder: Recorder | None = None, **config: Any) -> Inbox:
        return Inbox(
            make_settings(tmp_path, **config),
            engine,
            clock=clock,
            notifiers=[recorder] if recorder else [],
            triager=triager,
            templates=templates,
        )

    return build


async def close_connectors(inbox: Inbox) -> None:
    """Close the HTTP sessions of every connector of `inbox`."""
    for connector in inbox.connectors.values():
        await connector.close()


async def thread_of(engine: AsyncEngine, external_id: str) -> int:
    """The thread of the stored item `external_id`."""
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(Item.thread_id).where(Item.external_id == external_id))).scalar_one()


async def insert_pending_reply(conn: AsyncConnection, thread_id: int, item_id: int, text: str, at: datetime) -> None:
    """A reply recorded by a process that died before it sent (or recorded sending) it: pending, claimed by nobody."""
    values = {"thread_id": thread_id, "item_id": item_id, "cycle": 1, "text": text, "agent": "ana", "created_at": at}
    await conn.execute(sa.insert(Reply).values(status=ReplyStatus.PENDING, **values))
