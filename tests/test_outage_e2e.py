"""`inbox run` survives its store going away for real, while it polls, takes pushes and Slack clicks.

PostgreSQL: the test's own database stops accepting connections and its backends are terminated, for 12 s at least.
SQLite: another connection holds an exclusive lock for 25 s at least, longer than the service's busy wait (10 s).
During: /healthz 503 with a reason, pushes 503 with Retry-After (or 202 and kept), a click acknowledged and the agent
told in Slack. After: /healthz 200, polling resumed from its cursor, a new item and every accepted push in Slack
exactly once, with no restart.

The store comes back only when the test has seen all that happen, so "answered while the store is away" is an
order of events, not a race against a timer a busy machine can lose: an answer that waited for the store would
never come (the client gives up after CLIENT_SECONDS and the test fails). Every other wait is on a condition with
a generous ceiling. How fast /healthz and a push are answered in an outage, and that a poll meeting one is
rescheduled within 30 s, are checked in-process (tests/inbox/test_outage.py).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from inbox.connectors.webhook import SIGNATURE_HEADER, sign
from inbox.fakes.slack import FakeSlack
from inbox.slack.blocks import ASSIGN, THREAD_EVENT
from inbox.slack.interactions import STORE_DOWN
from inbox.store.db import create_engine
from tests.conftest import PG_URL, STORES, pg_database
from tests.processes import AGENT, TRIAGE, InboxProcess, free_port, slack_table, toml_table, until

SECRET = "a-webhook-secret-of-32-characters"
POLL_SECONDS = 2
WAIT = 240  # seconds: a ceiling for each condition, generous because the machine is shared
CLIENT_SECONDS = 60  # an HTTP answer taking longer than this is taken as never coming
T = TypeVar("T")


@dataclass
class Outage:
    """How to cut this store and bring it back, and for how long."""

    url: str
    seconds: float
    cut: Callable[[], Awaitable[None]]
    restore: Callable[[], Awaitable[None]]


@pytest.fixture(params=STORES)
async def outage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Outage]:
    if request.param == "sqlite":
        path = tmp_path / "inbox.db"
        holder: list[sqlite3.Connection] = []

        async def lock() -> None:
            connection = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            # In WAL mode readers carry on; every writer (the service's) waits for this lock, then fails.
            await asyncio.to_thread(connection.execute, "BEGIN EXCLUSIVE")
            holder.append(connection)

        async def unlock() -> None:
            connection = holder.pop()
            connection.execute("ROLLBACK")
            connection.close()

        yield Outage(f"sqlite:///{path}", 25.0, lock, unlock)
        while holder:
            await unlock()
        return
    assert PG_URL
    async with pg_database("outage") as url:
        name = make_url(url).database
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")

        async def allow(allowed: bool) -> None:
            async with admin.connect() as conn:
                await conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}'))
                if not allowed:
                    await conn.execute(
                        sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                        {"name": name},
                    )

        try:
            yield Outage(url, 12.0, lambda: allow(False), lambda: allow(True))
        finally:
            await allow(True)
            await admin.dispose()


def write_config(folder: Path, url: str, slack: FakeSlack, port: int) -> Path:
    config = folder / "inbox.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        "[sla]\ncheck_seconds = 1\n"
        f"[slack]\n{toml_table(slack_table(slack))}"
        + "\n[[connectors]]\n"
        + toml_table(
            {"name": "feed", "type": "jsonl", "path": str(folder / "feed.jsonl"), "poll_seconds": POLL_SECONDS}
        )
        + "\n[[connectors]]\n"
        + toml_table({"name": "shop", "type": "webhook", "secret": SECRET})
    )
    return config


def item(external_id: str) -> dict[str, Any]:
    posted = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return {
        "id": external_id,
        "text": f"where is parcel {external_id}?",
        "posted_at": posted,
        "author": {"handle": f"c{external_id}"},
    }


def append(feed: Path, external_id: str) -> None:
    with feed.open("a") as handle:
        handle.write(json.dumps(item(external_id)) + "\n")


def in_slack(slack: FakeSlack, external_id: str) -> list[dict[str, Any]]:
    """Triage messages showing this item (each conversation's message is posted once, then updated)."""
    needle = f"parcel {external_id}?"
    return [
        m
        for m in slack.posted(TRIAGE, in_thread=False)
        if (m.get("metadata") or {}).get("event_type") == THREAD_EVENT and needle in json.dumps(m["blocks"])
    ]


class Service(InboxProcess):
    """An `inbox run` process, and what a monitor, a sender and an agent do to it over HTTP."""

    async def push(self, external_id: str) -> tuple[int, dict[str, Any], dict[str, str], float]:
        body = json.dumps(item(external_id)).encode()
        started = time.monotonic()
        async with self.http.post(
            f"http://127.0.0.1:{self.port}/webhooks/shop", data=body, headers={SIGNATURE_HEADER: sign(SECRET, body)}
        ) as response:
            answer = await response.json(content_type=None)
            return response.status, answer, dict(response.headers), time.monotonic() - started


async def test_a_store_outage_is_survived_and_nothing_is_lost_or_doubled(outage: Outage, tmp_path: Path) -> None:
    slack = FakeSlack()
    await slack.start()
    feed = tmp_path / "feed.jsonl"
    feed.touch()
    port = free_port()
    config = write_config(tmp_path, outage.url, slack, port)
    log = tmp_path / "inbox.log"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CLIENT_SECONDS)) as http:
        service = Service(config, port, log, http)
        await service.start()
        try:
            await run_scenario(service, outage, slack, feed)
            assert await service.stop() == 0
            text = log.read_text()
            assert "raised an exception" not in text and "Server got itself in trouble" not in text, text[-5000:]
        except BaseException:
            print(log.read_text()[-20000:])
            raise
        finally:
            await service.stop()
            await slack.stop()


async def run_scenario(service: Service, outage: Outage, slack: FakeSlack, feed: Path) -> None:
    async def healthy() -> bool:
        try:
            status, _, _ = await service.healthz()
        except aiohttp.ClientError:
            return False  # not listening yet
        return status == 200

    await until("the service answers /healthz 200", healthy, WAIT)
    # Before: a polled item and a pushed one reach Slack.
    append(feed, "before-poll")
    status, *_ = await service.push("before-push")
    assert status == 202
    before = await until(
        "the first items in Slack",
        lambda: _async(in_slack(slack, "before-poll") and in_slack(slack, "before-push")),
        WAIT,
    )
    [message] = in_slack(slack, "before-poll")
    assert before

    await outage.cut()
    cut_at = time.monotonic()
    append(feed, "during-poll")  # written while the store is away: polled once it is back

    async def down() -> dict[str, Any] | None:
        status, body, _ = await service.healthz()
        return body if status == 503 else None

    # Answered at all while the store is still away (it is not back until this function brings it back).
    body = await until("/healthz 503 while the store is away", down, WAIT)
    assert body["status"] == "down" and body["reason"], body

    accepted: list[str] = []
    refused: list[str] = []
    for n in range(2):
        external_id = f"during-push-{n}"
        status, answer, headers, _ = await service.push(external_id)  # answered while the store is away
        if status == 202:
            accepted.append(external_id)
        else:
            assert status == 503 and int(headers["Retry-After"]) > 0 and answer["reason"], (status, answer)
            refused.append(external_id)

    assert await service.click(message, ASSIGN) == 200  # acknowledged at once, whatever the store does

    async def told() -> bool:
        return any(STORE_DOWN in c["text"] for c in slack.called("chat.postEphemeral") if c.get("user") == AGENT)

    await until("the agent told in Slack that the click was not done", told, WAIT)
    # An outage of the planned length at least, so the poller meets it too; then the store comes back.
    await asyncio.sleep(max(0.0, outage.seconds - (time.monotonic() - cut_at)))
    await outage.restore()

    # After: the senders try again, polling resumes, everything arrives once.
    for external_id in refused:
        status, *_ = await service.push(external_id)
        assert status == 202
    await until("the item written during the outage in Slack", lambda: _async(in_slack(slack, "during-poll")), WAIT)
    append(feed, "after-poll")
    await until("a new item in Slack after the outage", lambda: _async(in_slack(slack, "after-poll")), WAIT)
    await until(
        "every accepted push in Slack",
        lambda: _async(all(in_slack(slack, p) for p in accepted + refused)),
        WAIT,
    )
    await until("/healthz 200 again", healthy, WAIT)
    for external_id in ["before-poll", "before-push", "during-poll", "after-poll", *accepted, *refused]:
        assert len(in_slack(slack, external_id)) == 1, (
            f"{external_id} is in Slack {len(in_slack(slack, external_id))} times"
        )
    # Polling resumed from its cursor: nothing read twice, nothing skipped.
    engine = create_engine(outage.url)
    try:
        async with engine.connect() as conn:
            from inbox.store.models import Item

            ids = (await conn.execute(sa.select(Item.external_id))).scalars().all()
    finally:
        await engine.dispose()
    assert sorted(ids) == sorted(["before-poll", "before-push", "during-poll", "after-poll", *accepted, *refused])

    async def every_loop_ok() -> bool:
        status, body, _ = await service.healthz()
        return status == 200 and body["status"] == "ok" and all(loop["ok"] for loop in body["loops"].values())

    # Each loop's next round works again (reply recovery runs every lease period, 30 s by default).
    await until("every loop working again", every_loop_ok, WAIT)


async def _async(value: T) -> T:
    return value
