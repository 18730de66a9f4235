"""The store: migrations match the models, URLs map to the async drivers, the sweep uses its index."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from inbox.store.db import async_url, migrate, plain_engines


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
        for handles in (["ana"], ["ana", "eve", "zed"], ["bob", "eve"], []):
            query = one_of(
                conn.dialect.name, sa.select(Customer.handle).where(Customer.channel == "x"), Customer.handle
            )
            found = sorted((await conn.execute(query, {"keys": handles})).scalars().all())
            assert found == sorted(set(handles) & {"ana", "bob", "eve"})
            # As sent: an IN list is expanded into one parameter per value only when executed.
            texts.add(
                str(
                    query.params(keys=handles).compile(
                        dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
                    )
                )
            )
    # PostgreSQL prepares each text once; SQLite's IN lists do not need to match.
    assert len(texts) == 1 or conn.dialect.name != "postgresql"


async def test_one_of_looks_each_key_up_in_the_index_before_the_table_has_statistics(engine):
    """Thousands of rows the planner has no statistics of yet (a young store): the keys are found through the
    unique index on (channel, handle), not by reading every row of the channel, with a fresh or a generic plan."""
    from datetime import UTC, datetime

    from inbox.store.models import Customer
    from inbox.store.sqlutil import one_of

    now = datetime.now(UTC)
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, many):
        if "FROM customer" in statement:
            sent.append((statement, parameters))

    async with engine.begin() as conn:
        # Not committed: no statistics can be gathered on them before the plans below.
        rows = [{"channel": "x", "handle": f"h{n}", "first_seen_at": now, "last_seen_at": now} for n in range(3000)]
        await conn.execute(sa.insert(Customer), rows)
        query = one_of(conn.dialect.name, sa.select(Customer.id).where(Customer.channel == "x"), Customer.handle)
        sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            assert len((await conn.execute(query, {"keys": ["h7", "h2999"]})).all()) == 2
        finally:
            sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
        [(statement, parameters)] = sent
        if conn.dialect.name == "sqlite":
            plan = " ".join(
                str(r[-1]) for r in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            )
            assert "SEARCH customer USING" in plan and "INDEX" in plan and "(channel=? AND handle=?)" in plan, plan
            return
        for mode in ("force_custom_plan", "force_generic_plan"):
            await conn.execute(sa.text(f"SET LOCAL plan_cache_mode = {mode}"))
            plan = [r[0] for r in await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)]
            probes = [line for line in plan if "Index Cond" in line]
            assert len(probes) == 1 and "handle" in probes[0] and "channel" in probes[0], plan
            assert not any("Filter" in line or "Seq Scan" in line or "Hash" in line for line in plan), plan


async def test_insert_new_writes_times_nulls_and_json_lists_and_returns_what_it_wrote(engine):
    """The same rows on both stores, whatever their count in one statement text on PostgreSQL: times in any zone,
    NULLs, JSON objects and lists (a list is one value, not an array's row)."""
    from datetime import UTC, datetime, timedelta, timezone

    from inbox.store.db import in_transaction
    from inbox.store.models import Customer, Event
    from inbox.store.sqlutil import insert_new

    noon = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    paris = timezone(timedelta(hours=1))

    def person(handle: str, name: str | None) -> dict:
        return {"channel": "x", "handle": handle, "display_name": name, "first_seen_at": noon, "last_seen_at": noon}

    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, many):
        if statement.startswith("INSERT INTO customer"):
            sent.append(statement)

    def work(conn: sa.Connection) -> tuple:
        key, returning = ["channel", "handle"], ["id", "handle"]
        first = insert_new(conn, Customer, [person("ana", "Ana")], key, returning)
        everyone = [person("bob", None), person("ana", "Other"), person("eve", "Ève")]
        second = insert_new(conn, Customer, everyone, key, returning)
        events = [
            # A list first: an array of lists would be taken for a two-dimensional array.
            {"kind": "c", "thread_id": None, "payload": [], "created_at": noon},
            {"kind": "a", "thread_id": None, "payload": {"k": [1, "two"]}, "created_at": noon.astimezone(paris)},
            {"kind": "b", "thread_id": None, "payload": [{"name": "dm"}], "created_at": noon},
        ]
        assert insert_new(conn, Event, events) == []
        assert insert_new(conn, Event, []) == []
        return [r.handle for r in first], sorted(r.handle for r in second)

    for engine_ in {*plain_engines(engine)}:
        sa.event.listen(engine_, "before_cursor_execute", record)
    try:
        assert await in_transaction(engine, work) == (["ana"], ["bob", "eve"])
    finally:
        for engine_ in {*plain_engines(engine)}:
            sa.event.remove(engine_, "before_cursor_execute", record)
    async with engine.connect() as conn:
        people = (await conn.execute(sa.select(Customer.handle, Customer.display_name, Customer.first_seen_at))).all()
        assert sorted(people) == [("ana", "Ana", noon), ("bob", None, noon), ("eve", "Ève", noon)]
        events = (await conn.execute(sa.select(Event.kind, Event.payload, Event.created_at, Event.attempts))).all()
        assert sorted(events) == [
            ("a", {"k": [1, "two"]}, noon, 0),
            ("b", [{"name": "dm"}], noon, 0),
            ("c", [], noon, 0),
        ]
    if engine.dialect.name == "postgresql":
        assert len(sent) == 2 and len(set(sent)) == 1, sent


async def test_customers_added_in_a_transaction_of_their_own_commit_without_waiting_for_the_disk(engine):
    """`durable=False`: PostgreSQL's commit does not wait for the flush when customers were written, and does
    when the transaction only read them, or when they are written with the caller's other changes. SQLite has no
    such setting: the same calls write and find the customers as usual."""
    from datetime import UTC, datetime

    from inbox.store.customers import customer_ids
    from inbox.store.db import in_transaction

    now = datetime.now(UTC)
    postgresql = engine.dialect.name == "postgresql"

    def seen(handles: list[str], durable: bool, conn: sa.Connection) -> str | None:
        ids = customer_ids(conn, {("x", h): None for h in handles}, now, durable=durable)
        assert set(ids) == {("x", h) for h in handles}
        return str(conn.execute(sa.text("SHOW synchronous_commit")).scalar()) if postgresql else None

    waits = ["off", "on", "on"] if postgresql else [None, None, None]
    assert await in_transaction(engine, lambda conn: seen(["ana"], False, conn)) == waits[0]
    assert await in_transaction(engine, lambda conn: seen(["ana"], False, conn)) == waits[1]  # known: read only
    assert await in_transaction(engine, lambda conn: seen(["bob"], True, conn)) == waits[2]
    async with engine.connect() as conn:
        assert (await conn.execute(sa.text("SELECT count(*) FROM customer"))).scalar() == 2


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
