"""Store errors never end a loop: fast checks on SQLite, the store made unwritable for real by another connection's lock."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.connector import TransientError
from inbox.connectors.webhook import SIGNATURE_HEADER, sign
from inbox.pipeline.liveness import PROBE_TTL, Loops, StoreHealth
from inbox.server import start_server
from inbox.service import Runner
from inbox.store.db import BUSY_TIMEOUT_MS, store_wait
from inbox.store.models import ConnectorHealth, Item
from tests.conftest import FakeClock, close_connectors, open_store
from tests.inbox.pipeline.test_poller import poller_for

SECRET = "a-webhook-secret-of-32-characters"


class FakeMonotonic:
    """An injected monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path, migrated_sqlite_template: Path) -> AsyncIterator[tuple[AsyncEngine, str, str | None]]:
    """SQLite only: these tests lock the file from another connection."""
    async with open_store("sqlite", tmp_path, migrated_sqlite_template) as opened:
        yield opened


# What an answer would take at least if it waited for the lock as a writer does: answering sooner proves the short
# wait (/healthz's probe, a push's) was used, on a machine however loaded, where a tighter bound would only time it.
WRITER_WAIT = BUSY_TIMEOUT_MS / 1000


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holding the write lock (reads go on in WAL mode; every write waits, then fails)."""
    holder = sqlite3.connect(tmp_path / "inbox.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield holder
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()


async def health_row(engine: AsyncEngine) -> tuple[bool, int]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(ConnectorHealth))).one()
    return row.healthy, row.failures


async def test_a_poll_whose_health_write_fails_is_still_rescheduled(
    inbox_factory, engine, clock: FakeClock, tmp_path: Path, request
):
    inbox = inbox_factory()
    poller = poller_for(inbox, [TransientError("vendor down"), TransientError("vendor down"), 1], clock)
    inbox.pollers = {poller.name: poller}
    runner = Runner(inbox)
    await runner.leases.refresh()
    runner.scheduler.start()
    try:
        holder = request.getfixturevalue("locked")
        with store_wait(0.1):  # the lock wait the service would do (10 s), shortened for a fast test
            await runner._poll(poller)  # the vendor fails, then the health write fails on the lock
        job = runner.scheduler.get_job(f"poll:{poller.name}")
        assert job is not None, "the chain of polls ended"
        assert (job.next_run_time.timestamp() - time.time()) <= 30
        assert poller.failures == 1 and poller.store_failures == 1  # the vendor's failure is counted, not lost
        loop = inbox.loops.report()[f"poll:{poller.name}"]
        assert not loop["ok"] and "locked" in loop["reason"]
        holder.execute("ROLLBACK")
        await runner._poll(poller)
        # The second failure in a row is recorded with the first one's count; the store error added none.
        assert await health_row(engine) == (True, 2) and poller.store_failures == 0
        await runner._poll(poller)
        assert await health_row(engine) == (True, 0)
        assert inbox.loops.report()[f"poll:{poller.name}"]["ok"]
    finally:
        runner.scheduler.shutdown(wait=False)


async def test_the_sweep_outbox_and_lease_loops_survive_a_store_error_and_log_once(
    inbox_factory, engine, tmp_path: Path, request, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.INFO)
    inbox = inbox_factory(sla={"check_seconds": 0.2}, workers={"lease_seconds": 1})
    runner = Runner(inbox, outbox_seconds=0.1)
    names = ["leases", "sla-sweep", "reply-recovery", "outbox"]
    with store_wait(0.05):
        await runner.start()
        try:
            holder = request.getfixturevalue("locked")
            await wait_for(lambda: all(not inbox.loops.report()[n]["ok"] for n in names), "every loop failing")
            # Several rounds later, each loop has logged its failure once, and none has stopped.
            failures = {n: inbox.loops.loops[n].failures for n in names}
            await wait_for(
                lambda: all(inbox.loops.loops[n].failures > failures[n] for n in names if n != "reply-recovery"),
                "more rounds",
            )
            assert inbox.loops.stalled() == []
            for name in names:
                assert sum(f"{name} failed" in r.getMessage() for r in caplog.records) == 1, name
            holder.execute("ROLLBACK")
            await wait_for(
                lambda: all(inbox.loops.report()[n]["ok"] for n in names if n != "reply-recovery"),
                "every loop working again",
            )
            for name in ("leases", "sla-sweep", "outbox"):
                assert sum(f"{name} works again" in r.getMessage() for r in caplog.records) == 1, name
        finally:
            await runner.stop(grace=5)


async def wait_for(condition, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds:.0f} s: {what}"
        await asyncio.sleep(0.02)


async def test_a_loop_that_stalls_or_dies_makes_healthz_503(inbox_factory, engine):
    inbox = inbox_factory()
    monotonic = FakeMonotonic()
    inbox.loops = Loops(clock=inbox.clock, monotonic=monotonic)
    inbox.loops.add("sla-sweep", first_in=15, budget=300)
    inbox.loops.ok("sla-sweep", 15)
    site = await start_server(inbox, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{site.port}/healthz"
            monotonic.now += 300  # within the interval plus the round's budget: alive
            async with http.get(url) as response:
                body = await response.json()
                assert (
                    response.status == 200
                    and body["loops"]["sla-sweep"]["ok"]
                    and body["loops"]["sla-sweep"]["last_ok_at"]
                )
            monotonic.now += 60  # no round finished for far longer than its interval
            async with http.get(url) as response:
                body = await response.json()
                assert response.status == 503 and body["status"] == "down" and body["reason"] == "stalled: sla-sweep"
                assert body["loops"]["sla-sweep"]["stalled"]
            inbox.loops.ok("sla-sweep", 15)
            dead = asyncio.create_task(asyncio.sleep(0))
            await dead
            inbox.loops.add("outbox", first_in=0, budget=600, task=dead)  # a loop task that ended
            async with http.get(url) as response:
                body = await response.json()
                assert response.status == 503 and body["reason"] == "stalled: outbox"
    finally:
        await site.runner.cleanup()


async def test_healthz_is_503_fast_while_a_writer_holds_the_lock(inbox_factory, engine, request):
    inbox = inbox_factory()
    monotonic = FakeMonotonic()  # moves the cached probe's age; the probe itself waits in real time
    inbox.store_health = StoreHealth(engine, monotonic=monotonic)
    site = await start_server(inbox, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{site.port}/healthz"
            async with http.get(url) as response:
                assert response.status == 200
            holder = request.getfixturevalue("locked")
            async with http.get(url) as response:
                assert response.status == 200  # the cached probe, within its lifetime
            monotonic.now += PROBE_TTL + 0.1  # past the cached probe's lifetime
            started = time.monotonic()
            async with http.get(url) as response:
                body = await response.json()
            assert time.monotonic() - started < WRITER_WAIT
            assert response.status == 503 and "locked" in body["reason"], body
            holder.execute("ROLLBACK")
            async with http.get(url) as response:
                assert response.status == 503  # the cached failure, within its lifetime
            monotonic.now += PROBE_TTL + 0.1
            async with http.get(url) as response:
                assert response.status == 200
    finally:
        await site.runner.cleanup()


async def test_a_push_during_an_outage_gets_503_with_retry_after_in_time_and_is_stored_once_when_sent_again(
    inbox_factory, engine, clock: FakeClock, request
):
    inbox = inbox_factory(connectors=[{"name": "shop", "type": "webhook", "secret": SECRET}])
    site = await start_server(inbox, "127.0.0.1", 0)
    body = json.dumps(
        {"id": "p1", "text": "where is my parcel?", "posted_at": clock.now.isoformat(), "author": {"handle": "bob"}}
    ).encode()
    headers = {SIGNATURE_HEADER: sign(SECRET, body)}
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{site.port}/webhooks/shop"
            holder = request.getfixturevalue("locked")
            started = time.monotonic()
            async with http.post(url, data=body, headers=headers) as response:
                answer = await response.json()
                assert response.status == 503 and int(response.headers["Retry-After"]) > 0 and answer["reason"], answer
            assert time.monotonic() - started < WRITER_WAIT  # a writer's wait runs past a sender's timeout
            holder.execute("ROLLBACK")
            async with http.post(url, data=body, headers=headers) as response:
                assert response.status == 202
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one() == 1
    finally:
        await site.runner.cleanup()


async def test_a_meta_delivery_during_an_outage_gets_503_and_is_stored_once_when_sent_again(
    inbox_factory, engine, clock: FakeClock, request, triager
):
    from inbox.fakes.whatsapp import WhatsAppFake

    triager.warm_up()
    fake = WhatsAppFake(app_secret="wa-app-secret-0123456789")  # only builds and signs the deliveries
    fake.now = clock.now
    inbox = inbox_factory(
        connectors=[
            {
                "name": "wa",
                "type": "whatsapp",
                "api_url": "http://127.0.0.1:9",
                "phone_number_id": fake.phone_number_id,
                "access_token": "token",
                "app_secret": fake.app_secret,
                "verify_token": "wa-verify-token-0123456789",
            }
        ]
    )
    site = await start_server(inbox, "127.0.0.1", 0)
    fake.add_customer_post("où est mon colis ?", author="33612345678")
    [delivery] = fake.take_deliveries()
    url = f"http://127.0.0.1:{site.port}/webhooks/wa"
    try:
        holder = request.getfixturevalue("locked")
        started = time.monotonic()
        refused = await fake.deliver(url, delivery)
        assert refused.status == 503 and int(refused.headers["Retry-After"]) > 0, refused.text
        assert time.monotonic() - started < WRITER_WAIT
        holder.execute("ROLLBACK")
        for _ in range(2):  # Meta delivers at least once
            assert (await fake.deliver(url, delivery)).status == 200
        await inbox.pushes.settle()
        async with engine.connect() as conn:
            assert (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one() == 1
    finally:
        await site.runner.cleanup()
        await inbox.pushes.close()
        await close_connectors(inbox)
