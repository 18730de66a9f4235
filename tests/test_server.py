"""/healthz and /metrics over real HTTP: unhealthy connectors with their reasons, 503 without a store, Prometheus text."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inbox.connectors.webhook import sign
from inbox.pipeline.workers import Leases
from inbox.server import start_server
from inbox.service import Inbox
from inbox.store.db import create_engine, migrate
from inbox.views import open_queue
from tests.conftest import FakeClock, close_connectors, make_settings
from tests.inbox.test_logs import Captured, json_log  # noqa: F401 - json_log is a fixture


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def get(inbox: Inbox, path: str, **kwargs: Any) -> tuple[int, str]:
    site = await start_server(inbox, "127.0.0.1", 0)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.request(kwargs.pop("method", "GET"), f"http://127.0.0.1:{site.port}{path}", **kwargs) as response,
        ):
            return response.status, await response.text()
    finally:
        await site.runner.cleanup()


def connectors(tmp_path: Path) -> list[dict[str, Any]]:
    """A feed that works, an instance that cannot be reached, and a webhook (pushed, never polled)."""
    return [
        {"name": "feed", "type": "jsonl", "path": str(tmp_path / "feed.jsonl"), "channel": "x"},
        {
            "name": "acme-mastodon",
            "type": "mastodon",
            "api_url": f"http://127.0.0.1:{closed_port()}",
            "access_token": "mastodon-access-token",
        },
        {"name": "shop", "type": "webhook", "secret": "shop-secret-123456", "channel": "shop"},
    ]


@pytest.fixture
async def inbox(inbox_factory: Any, tmp_path: Path) -> AsyncIterator[Inbox]:
    inbox = inbox_factory(connectors=connectors(tmp_path))
    yield inbox
    await close_connectors(inbox)


def write_feed(tmp_path: Path, clock: FakeClock, *ids: str) -> None:
    posted = (clock.now - timedelta(minutes=5)).isoformat()
    with (tmp_path / "feed.jsonl").open("a") as feed:
        for external_id in ids:
            feed.write(
                json.dumps(
                    {
                        "id": external_id,
                        "text": "where is my parcel?",
                        "posted_at": posted,
                        "author": {"handle": f"c{external_id}"},
                    }
                )
                + "\n"
            )


async def test_healthz_lists_the_unhealthy_connectors_and_why(inbox: Inbox, tmp_path: Path, clock: FakeClock):
    write_feed(tmp_path, clock, "1")
    assert (await inbox.pollers["feed"].poll_once()).error is None
    status, body = await get(inbox, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"  # one failed poll is not news yet

    for _ in range(3):
        assert (await inbox.pollers["acme-mastodon"].poll_once()).error is not None
        clock.advance(minutes=1)
    status, body = await get(inbox, "/healthz")
    health = json.loads(body)
    assert status == 200  # a vendor's outage is no reason to restart the service
    assert (health["status"], health["database"], health["unhealthy"]) == ("degraded", "ok", ["acme-mastodon"])
    down = health["connectors"]["acme-mastodon"]
    assert (down["healthy"], down["failures"], down["type"]) == (False, 3, "mastodon")
    assert "cannot connect" in down["reason"].lower() or "ClientConnectorError" in down["reason"]
    feed = health["connectors"]["feed"]
    assert (feed["healthy"], feed["reason"], feed["polled"]) == (True, None, True) and feed["last_ok_at"]
    assert health["connectors"]["shop"]["healthy"] is True and health["connectors"]["shop"]["polled"] is True


async def test_healthz_says_which_worker_polls_each_connector(inbox: Inbox, clock: FakeClock):
    mine = Leases(inbox.engine, inbox.worker, ["feed", "acme-mastodon"], seconds=30, clock=clock)
    other = Leases(inbox.engine, "other-host:1:abcdef", ["feed", "acme-mastodon"], seconds=30, clock=clock)
    for _ in range(2):
        await mine.refresh()
        await other.refresh()
    _status, body = await get(inbox, "/healthz")
    health = json.loads(body)
    assert health["worker"] == inbox.worker and health["workers"] == sorted([inbox.worker, "other-host:1:abcdef"])
    holders = {name: health["connectors"][name]["polled_by"] for name in ("feed", "acme-mastodon")}
    assert sorted(holders.values()) == sorted([inbox.worker, "other-host:1:abcdef"])  # one each
    assert health["connectors"]["shop"]["polled_by"] is None  # pushed: any worker takes it
    clock.advance(seconds=31)  # both stopped renewing: nobody holds a lease, nobody counts as alive
    health = json.loads((await get(inbox, "/healthz"))[1])
    assert health["workers"] == [] and {c["polled_by"] for c in health["connectors"].values()} == {None}


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_healthz_answers_503_when_the_store_is_unreachable(
    kind: str, tmp_path: Path, clock: FakeClock, json_log: Captured
):
    url = await unreachable_store(kind, tmp_path)
    engine = create_engine(url)
    inbox = Inbox(make_settings(tmp_path, database={"url": url}), engine, clock=clock, notifiers=[])
    try:
        status, body = await get(inbox, "/healthz")
        health = json.loads(body)
        assert status == 503 and (health["status"], health["database"]) == ("down", "unreachable")
        assert "store cannot be read or written" in health["reason"]
        # Logged once when the store goes down, not at every request.
        await get(inbox, "/healthz")
        assert "the store is unavailable" in json_log.about("store is unavailable")["message"]
        # /metrics still answers, saying the store is down, so an alert can fire on it.
        status, text = await get(inbox, "/metrics")
        assert status == 200 and samples(text)[("inbox_store_up", ())] == 0
    finally:
        await engine.dispose()
        await sqlite_threads_stopped()


async def unreachable_store(kind: str, tmp_path: Path) -> str:
    """The URL of a store that cannot be reached: a SQLite file whose folder went away, or a closed port."""
    if kind == "sqlite":
        folder = tmp_path / "data"
        folder.mkdir()
        url = f"sqlite:///{folder / 'inbox.db'}"
        engine = create_engine(url)
        await migrate(engine)
        await engine.dispose()
        folder.rename(tmp_path / "moved")  # the volume went away under a running service
        return url
    return f"postgresql://inbox@127.0.0.1:{closed_port()}/inbox"


async def sqlite_threads_stopped() -> None:
    """aiosqlite stops a connection that failed to open on its own thread; let that finish while the loop still runs."""
    workers = [t for t in threading.enumerate() if t.name.endswith("(_connection_worker_thread)")]
    await asyncio.to_thread(lambda: [t.join(10) for t in workers])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_exposes_ingest_polls_queue_depth_and_response_times(
    inbox: Inbox, tmp_path: Path, clock: FakeClock
):
    write_feed(tmp_path, clock, "1", "2", "3")
    assert (await inbox.pollers["feed"].poll_once()).stored == 3
    await inbox.pollers["acme-mastodon"].poll_once()
    data = json.dumps(
        [{"id": "w1", "text": "refund please", "posted_at": clock.now.isoformat(), "author": {"handle": "dora"}}]
    ).encode()
    status, _ = await get(
        inbox,
        "/webhooks/shop",
        method="POST",
        data=data,
        headers={"X-Inbox-Signature": sign("shop-secret-123456", data)},
    )
    assert status == 202
    queue = await open_queue(inbox.engine, inbox.policies, clock.now)
    first = min(t.thread_id for t in queue if t.connector == "feed")
    clock.advance(minutes=10)
    assert (await inbox.actions.reply(first, "On its way!", "ana")).status == "sent"  # after 15 minutes
    clock.advance(minutes=17)
    await inbox.sweep.run()  # the feed's other two have waited 32 minutes (breached), the webhook's 27 (warned)

    status, text = await get(inbox, "/metrics")
    found = samples(text)
    assert status == 200
    assert found[("inbox_items_ingested_total", (("connector", "feed"),))] == 3
    assert found[("inbox_items_ingested_total", (("connector", "shop"),))] == 1
    assert found[("inbox_poll_errors_total", (("connector", "acme-mastodon"), ("kind", "transient")))] == 1
    assert found[("inbox_poll_duration_seconds_count", (("connector", "feed"),))] == 1
    assert found[("inbox_poll_duration_seconds_count", (("connector", "acme-mastodon"),))] == 1
    depth = {
        state: found[("inbox_queue_depth", (("state", state),))] for state in ("ok", "warning", "breached", "answered")
    }
    assert depth == {"ok": 0, "warning": 1, "breached": 2, "answered": 0}
    assert found[("inbox_store_up", ())] == 1
    assert found[("inbox_response_time_seconds_count", (("channel", "x"), ("clock_kind", "first_response")))] == 1
    assert found[("inbox_response_time_seconds_sum", (("channel", "x"), ("clock_kind", "first_response")))] == 15 * 60
    assert (
        "# TYPE inbox_slack_api_errors_total counter" in text and "# TYPE inbox_slack_api_retries_total counter" in text
    )


async def test_a_webhook_call_logs_with_its_connector(inbox: Inbox, json_log: Captured):
    status, _ = await get(
        inbox, "/webhooks/shop", method="POST", data=b"{}", headers={"X-Inbox-Signature": "sha256=00"}
    )
    assert status == 401
    line = json_log.about("refused a webhook call")
    assert line["connector"] == "shop" and line["level"] == "warning"
