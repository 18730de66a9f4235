"""The poller owns retries, backoff and health: a scripted connector raises, the core reacts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from pydantic import BaseModel

from inbox.connector import (
    AuthError,
    Connector,
    ConnectorSettings,
    Kind,
    Page,
    PermanentError,
    RawItem,
    ReplyTarget,
    SentReply,
    TransientError,
)
from inbox.pipeline.poller import AUTH_RETRY, UNHEALTHY_AFTER, Poller
from inbox.service import Runner
from inbox.store.cursors import load_cursor
from inbox.store.models import ConnectorHealth, EventKind
from tests.conftest import Recorder, thread_of
from tests.inbox.pipeline.test_ingest import SOURCE, item


class ScriptCursor(BaseModel):
    n: int = 0


class Scripted(Connector[ConnectorSettings, ScriptCursor]):
    """Each poll takes the next step: a number of items to return, or an exception to raise."""

    type = "scripted"
    channel = "x"
    settings_model = ConnectorSettings
    cursor_model = ScriptCursor

    def __init__(self, steps: list[object]) -> None:
        super().__init__(ConnectorSettings(name="scripted", type="scripted", poll_seconds=60))
        self.steps = steps
        self.seen: list[ScriptCursor | None] = []

    async def fetch(self, cursor: ScriptCursor | None) -> AsyncIterator[Page[ScriptCursor]]:
        self.seen.append(cursor)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        start = cursor.n if cursor else 0
        items = [
            RawItem(external_id=str(i), text="hi", posted_at=self.now, kind=Kind.MENTION, author_handle=f"u{i}")
            for i in range(start, start + int(step))  # type: ignore[call-overload]
        ]
        yield Page(items, ScriptCursor(n=start + len(items)))

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        raise PermanentError("not used")

    async def check(self) -> str:
        return "ok"


def poller_for(inbox, steps: list[object], clock) -> Poller:
    connector = Scripted(steps)
    connector.now = clock.now - timedelta(minutes=1)  # type: ignore[attr-defined]
    return Poller(connector, inbox.ingestor, clock=clock, jitter=lambda low, high: high)


async def health(engine) -> tuple[bool, str | None, int]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(ConnectorHealth))).one()
    return row.healthy, row.reason, row.failures


async def test_success_polls_at_the_configured_interval_with_jitter(inbox_factory, engine, clock):
    poller = poller_for(inbox_factory(), [3, 2], clock)
    first = await poller.poll_once()
    assert (first.stored, first.delay) == (3, pytest.approx(66))
    await poller.poll_once()
    assert poller.connector.seen == [None, ScriptCursor(n=3)]
    assert await load_cursor(engine, "scripted") == {"n": 5}


async def test_rate_limit_waits_for_the_vendor_reset(inbox_factory, engine, clock):
    poller = poller_for(inbox_factory(), [TransientError("429", retry_after=420)], clock)
    result = await poller.poll_once()
    assert result.delay == 420 and result.stored == 0
    assert await health(engine) == (True, "429", 1)


async def test_transient_errors_back_off_to_a_cap_then_unhealthy_then_recovered_once(inbox_factory, engine, clock):
    recorder = Recorder()
    inbox = inbox_factory(recorder)
    poller = poller_for(inbox, [TransientError("HTTP 503")] * 12 + [1, 1], clock)
    delays = [(await poller.poll_once()).delay for _ in range(12)]
    assert delays == sorted(delays) and delays[0] == 10 and delays[-1] == 900
    assert await health(engine) == (False, "HTTP 503", 12)
    await poller.poll_once()
    await poller.poll_once()
    assert await health(engine) == (True, None, 0)
    await inbox.outbox.dispatch()
    changes = [n.payload for n in recorder.notices if n.kind == EventKind.CONNECTOR_HEALTH]
    assert changes == [
        {"connector": "scripted", "healthy": False, "reason": "HTTP 503"},
        {"connector": "scripted", "healthy": True, "reason": None},
    ]
    assert UNHEALTHY_AFTER == 3


async def test_auth_failure_is_unhealthy_at_once_and_stops_hammering(inbox_factory, engine, clock):
    poller = poller_for(inbox_factory(), [AuthError("401 Unauthorized")], clock)
    result = await poller.poll_once()
    assert result.delay == AUTH_RETRY
    assert await health(engine) == (False, "credentials refused: 401 Unauthorized", 1)


async def test_malformed_payload_keeps_the_cursor(inbox_factory, engine, clock):
    poller = poller_for(inbox_factory(), [2, PermanentError("unexpected JSON shape"), 1], clock)
    await poller.poll_once()
    failed = await poller.poll_once()
    assert failed.error == "unexpected JSON shape"
    assert await load_cursor(engine, "scripted") == {"n": 2}
    await poller.poll_once()
    assert poller.connector.seen[-1] == ScriptCursor(n=2)


async def test_a_bug_in_a_connector_is_contained(inbox_factory, engine, clock):
    poller = poller_for(inbox_factory(), [KeyError("data")], clock)
    result = await poller.poll_once()
    assert result.error == "KeyError: 'data'"


class Hanging(Scripted):
    """A vendor that never answers."""

    async def fetch(self, cursor: ScriptCursor | None) -> AsyncIterator[Page[ScriptCursor]]:
        await asyncio.Event().wait()
        yield Page([])


async def test_a_hung_vendor_times_out_as_a_transient_failure(inbox_factory, engine, clock):
    poller = Poller(Hanging([]), inbox_factory().ingestor, clock=clock, timeout=0.05)
    result = await poller.poll_once()
    assert result.error == "no answer within 0 s" and result.delay > 0


async def test_one_hung_connector_never_delays_another(inbox_factory, engine, tmp_path):
    """Real scheduler, real time: the hung poll must not hold back the file connector's polls."""
    feed = tmp_path / "feed.jsonl"
    feed.write_text('{"id": "1", "text": "hi", "posted_at": "2026-11-23T09:00:00Z", "author": {"handle": "a"}}\n')
    inbox = inbox_factory(connectors=[{"name": "feed", "type": "jsonl", "path": str(feed), "poll_seconds": 0.1}])
    inbox.pollers["stuck"] = Poller(Hanging([]), inbox.ingestor)
    runner = Runner(inbox)
    await runner.start()
    try:
        async with asyncio.timeout(20):
            while not await load_cursor(engine, "feed"):
                await asyncio.sleep(0.05)
        with feed.open("a") as handle:
            handle.write(
                '{"id": "2", "text": "again", "posted_at": "2026-11-23T09:01:00Z", "author": {"handle": "b"}}\n'
            )
        async with asyncio.timeout(20):
            while (await load_cursor(engine, "feed"))["offset"] < feed.stat().st_size:
                await asyncio.sleep(0.05)
    finally:
        await runner.stop(grace=0.1)


class Gated(Scripted):
    """A poll that stops half-way until the test lets it go on, as a slow vendor would."""

    def __init__(self) -> None:
        super().__init__([3])
        self.now = datetime.now(UTC) - timedelta(minutes=1)
        self.started = asyncio.Event()
        self.go_on = asyncio.Event()

    async def fetch(self, cursor: ScriptCursor | None) -> AsyncIterator[Page[ScriptCursor]]:
        self.started.set()
        await self.go_on.wait()
        async for page in super().fetch(cursor):
            yield page


async def test_stopping_lets_a_poll_in_flight_finish_and_store_its_page(inbox_factory, engine):
    """SIGTERM's promise: in-flight work finishes. Real scheduler; the poll is held until stop has begun."""
    inbox = inbox_factory()
    connector = Gated()
    inbox.pollers["scripted"] = Poller(connector, inbox.ingestor)
    runner = Runner(inbox)
    await runner.start()
    async with asyncio.timeout(20):
        await connector.started.wait()
    stopping = asyncio.create_task(runner.stop(grace=20))
    await asyncio.sleep(0)  # stop has paused the scheduler and is waiting on the poll
    assert not stopping.done()
    connector.go_on.set()
    await stopping
    assert await load_cursor(engine, "scripted") == {"n": 3}, "the poll was cancelled instead of finished"


async def test_events_are_delivered_when_written_not_at_the_next_outbox_turn(inbox_factory, engine, clock):
    """The outbox's next turn here is an hour away: only the bell rung by ingest and actions can bring the events."""
    recorder = Recorder()
    inbox = inbox_factory(recorder)
    await inbox.ingestor.ingest(SOURCE, [item("0", clock, author_handle="first")])
    runner = Runner(inbox, outbox_seconds=3600)
    await runner.start()
    try:
        async with asyncio.timeout(10):
            while recorder.kinds() != [EventKind.NEW_THREAD]:  # the turn at start
                await asyncio.sleep(0.01)
        await inbox.ingestor.ingest(SOURCE, [item("1", clock)])  # as a webhook push would
        async with asyncio.timeout(10):
            while recorder.kinds() != [EventKind.NEW_THREAD] * 2:
                await asyncio.sleep(0.01)
        await inbox.actions.assign(await thread_of(engine, "1"), "U_ANA")
        async with asyncio.timeout(10):
            while recorder.kinds() != [EventKind.NEW_THREAD] * 2 + [EventKind.ASSIGNED]:
                await asyncio.sleep(0.01)
    finally:
        await runner.stop(grace=5)
