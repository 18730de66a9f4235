"""The store: migrations match the models, URLs map to the async drivers, the sweep uses its index."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from inbox.store.db import async_url, migrate


async def test_migrations_match_the_models(engine):
    await migrate(engine)  # a second run is a no-op

    def diff(conn: sa.Connection) -> list:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


def test_user_urls_map_to_async_drivers():
    assert async_url("sqlite:///inbox.db") == "sqlite+aiosqlite:///inbox.db"
    assert async_url("postgresql://u:p@h:5432/db") == "postgresql+asyncpg://u:p@h:5432/db"
    assert async_url("postgres://h/db") == "postgresql+asyncpg://h/db"
    assert async_url("postgresql+asyncpg://h/db") == "postgresql+asyncpg://h/db"


async def test_the_sla_sweep_and_the_open_queue_read_their_partial_indexes(engine, clock):
    """The statements the sweep and the queue really send, explained: each reads its index, none scans thread."""
    from inbox.pipeline.sweep import SlaSweep
    from inbox.settings import SlaSettings
    from inbox.views import open_queue

    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, many):
        if "FROM thread" in statement or statement.lstrip().startswith("UPDATE thread"):
            sent.append((statement, parameters))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await SlaSweep(engine, clock).run()
        await open_queue(engine, SlaSettings().policies(), clock.now)
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
    plans = []
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(sa.text("SET enable_seqscan = off"))
            # As after a few runs of a cached statement: a plan for any parameter values, which must still
            # fall inside the partial indexes (it can only if their predicates are constants in the SQL).
            await conn.execute(sa.text("SET plan_cache_mode = force_generic_plan"))
        for statement, parameters in sent:
            if conn.dialect.name == "sqlite":
                rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
                plans.append(" ".join(str(r[-1]) for r in rows))
            else:
                rows = await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
                plans.append(" ".join(r[0] for r in rows))
        await conn.rollback()
    assert len(plans) == 5, sent  # breach, warning, reply window closed, reply window closing, queue
    breach, warn, window_closed, window_warned, queue = plans
    assert "ix_thread_sla_due" in breach and "ix_thread_sla_warn" in warn and "ix_thread_open" in queue, plans
    assert "ix_thread_window" in window_closed and "ix_thread_window" in window_warned, plans


async def test_one_of_finds_the_same_rows_with_one_statement_text_for_any_count(engine):
    from datetime import UTC, datetime

    from inbox.store.models import Customer
    from inbox.store.sqlutil import one_of

    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(Customer),
            [{"channel": "x", "handle": h, "first_seen_at": now, "last_seen_at": now} for h in ("ana", "bob", "eve")],
        )
        texts = set()
        for handles in (["ana"], ["ana", "eve", "zed"], ["bob", "eve"]):
            query = sa.select(Customer.handle).where(one_of(conn, Customer.handle, handles)).order_by(Customer.handle)
            found = (await conn.execute(query)).scalars().all()
            assert found == sorted(set(handles) & {"ana", "bob", "eve"})
            # As sent: an IN list is expanded into one parameter per value only when executed.
            texts.add(str(query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})))
    # PostgreSQL prepares each text once; SQLite's IN lists do not need to match.
    assert len(texts) == 1 or conn.dialect.name != "postgresql"


async def test_times_are_stored_as_naive_utc_in_the_stores_own_format(engine):
    """An aware time of any zone reads back equal; on SQLite its text is what SQLAlchemy's DATETIME writes."""
    from datetime import UTC, datetime, timedelta, timezone

    from inbox.store.models import Customer

    times = [
        datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 18, 0, tzinfo=timezone(timedelta(hours=5, minutes=30))),  # 12:30 UTC, no microseconds
        datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),
    ]
    async with engine.begin() as conn:
        for handle, when in enumerate(times):
            await conn.execute(
                sa.insert(Customer).values(channel="x", handle=str(handle), first_seen_at=when, last_seen_at=when)
            )
        rows = (await conn.execute(sa.select(Customer.last_seen_at).order_by(Customer.handle))).scalars().all()
        assert rows == times
        assert all(t.tzinfo is UTC for t in rows)
        if conn.dialect.name == "sqlite":
            stored = (await conn.execute(sa.text("SELECT last_seen_at FROM customer ORDER BY handle"))).scalars().all()
            written = sa.DateTime().dialect_impl(conn.dialect).bind_processor(conn.dialect)
            assert stored == [written(t.astimezone(UTC).replace(tzinfo=None)) for t in times]
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        async with engine.begin() as conn:
            await conn.execute(sa.insert(Customer).values(channel="x", handle="n", last_seen_at=datetime(2026, 1, 1)))


async def test_in_transaction_commits_together_rolls_back_on_raise_and_runs_sqlite_in_the_store_thread(engine):
    """Plain code in one transaction: on a SQLite file in the store's own thread (one hand-off), else on this loop;
    after the engine is disposed it still works (the store thread's connections are closed, then made anew)."""
    import threading
    from datetime import UTC, datetime

    from inbox.store.db import in_transaction
    from inbox.store.models import Customer

    now = datetime.now(UTC)

    def add(handles: list[str], fail: bool, conn: sa.Connection) -> str:
        for handle in handles:
            conn.execute(sa.insert(Customer).values(channel="x", handle=handle, first_seen_at=now, last_seen_at=now))
        if fail:
            raise RuntimeError("the work failed")
        return threading.current_thread().name

    where = await in_transaction(engine, lambda conn: add(["ana", "bob"], False, conn))
    with pytest.raises(RuntimeError, match="the work failed"):
        await in_transaction(engine, lambda conn: add(["eve", "zed"], True, conn))
    await engine.dispose()
    assert await in_transaction(engine, lambda conn: add(["kim"], False, conn)) == where
    async with engine.connect() as conn:
        handles = (await conn.execute(sa.select(Customer.handle).order_by(Customer.handle))).scalars().all()
    assert handles == ["ana", "bob", "kim"]
    if engine.dialect.name == "sqlite":
        assert where.startswith("inbox-store")
    else:
        assert where == threading.current_thread().name


async def test_insert_new_writes_what_sqlalchemys_insert_writes_and_skips_taken_keys(engine):
    """Every column as SQLAlchemy's own insert stores it (types, defaults left out); taken keys skipped, not returned."""
    from datetime import UTC, datetime, timedelta

    from inbox.sla import SlaState
    from inbox.store.db import in_transaction
    from inbox.store.models import Customer, Thread
    from inbox.store.sqlutil import insert_new

    now = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC)

    def thread(connector: str, key: str, customer_id: int) -> dict[str, object]:
        return {
            "connector": connector,
            "channel": "x",
            "external_id": key,
            "customer_id": customer_id,
            "kind": "mention",
            "opened_at": now,
            "last_customer_at": now + timedelta(minutes=1),
            "clock_start": now,
            "warn_at": now + timedelta(minutes=20),
            "due_at": now + timedelta(minutes=30),
            "sla_stage": SlaState.BREACHED,
            "first_response_at": None,
            "updated_at": now,
            "rating_before": 4,
            "sla_target_minutes": 30.0,
        }

    def write(conn: sa.Connection) -> tuple[list[tuple[int, str]], list[tuple[object, ...]], list[tuple[object, ...]]]:
        customer = conn.execute(
            sa.insert(Customer).values(channel="x", handle="ana", first_seen_at=now, last_seen_at=now)
        ).inserted_primary_key[0]
        conn.execute(sa.insert(Thread), [thread("old", key, customer) for key in ("t1", "t2")])
        conn.execute(sa.insert(Thread), [thread("new", "t1", customer)])  # taken before
        written = insert_new(
            conn,
            Thread,
            [thread("new", key, customer) for key in ("t1", "t2")],
            ["connector", "external_id"],
            ["id", "external_id"],
        )
        rows = conn.exec_driver_sql("SELECT * FROM thread ORDER BY connector, external_id").all()
        columns = [c.name for c in Thread.__table__.columns]
        plain = [tuple(v for c, v in zip(columns, row, strict=True) if c not in ("id", "connector")) for row in rows]
        return [(row.id, row.external_id) for row in written], plain[2:], plain[:2]

    written, new, old = await in_transaction(engine, write)
    assert [key for _, key in written] == ["t2"]
    assert new == old  # t1 (SQLAlchemy's) and t2 (insert_new's), as the stored values SQLAlchemy wrote for "old"
