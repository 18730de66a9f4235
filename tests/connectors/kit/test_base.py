"""The kit's connector pieces: the own account, the HTTP connector base, the thread cache's walk, JSON events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import BaseModel

from inbox.connector import ConnectorSettings, Page, PermanentError, ReplyTarget, SentReply
from inbox.connectors.kit.account import OwnAccount
from inbox.connectors.kit.connector import HttpConnector
from inbox.connectors.kit.http import VendorClient
from inbox.connectors.kit.parse import Id, fitting
from inbox.connectors.kit.sse import json_events
from inbox.connectors.kit.text import idempotency_key
from inbox.connectors.kit.threads import ThreadCache


@dataclass
class Found:
    id: str
    handle: str


async def test_the_own_account_is_configured_or_looked_up_once_and_a_check_refuses_another() -> None:
    lookups: list[str] = []

    async def lookup() -> Found:
        lookups.append("me")
        return Found("7", "acme")

    looked_up = OwnAccount("acme-m", "account_id", None, lookup)
    assert (await looked_up.id(), await looked_up.id(), lookups) == ("7", "7", ["me"])
    assert await OwnAccount("acme-m", "account_id", "7", lookup).check() == Found("7", "acme")
    configured = OwnAccount("acme-m", "account_id", "42", lookup)
    assert await configured.id() == "42" and lookups == ["me", "me"]
    with pytest.raises(PermanentError, match="acme-m: the token belongs to account 7, not account_id 42"):
        await configured.check()
    with pytest.raises(PermanentError, match="acme-m: not @acme"):
        await configured.check(lambda account: f"not @{account.handle}")


class Settings(ConnectorSettings):
    stream: bool = False
    max_reply_chars: int = 500


class Cursor(BaseModel):
    pass


class Acme(HttpConnector[Settings, Cursor]):
    type = "mastodon"

    def __init__(self, settings: Settings, url: str) -> None:
        super().__init__(settings)
        self.client, self.auth = VendorClient("acme", url), VendorClient("acme-auth", url)

    async def fetch(self, cursor: Cursor | None) -> AsyncIterator[Page[Cursor]]:
        yield Page([])

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        return SentReply(None)

    async def check(self) -> str:
        return "acme"


@pytest.fixture
async def events() -> AsyncIterator[TestServer]:
    """A vendor with a JSON endpoint and a stream of a heartbeat, a notification, an update and a broken notification."""

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"id": 12})

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        body = ':thump\n\nevent: notification\ndata: {"id": "1"}\n\nevent: update\ndata: {}\n\n'
        await response.write((body + "event: notification\ndata: {oops\n\n").encode())
        return response

    app = web.Application()
    app.router.add_get("/thing", answer)
    app.router.add_get("/stream", stream)
    async with TestServer(app, host="127.0.0.1") as server:
        yield server


async def test_the_http_connector_closes_every_client_and_reads_stream_and_limit_from_its_settings(events) -> None:
    acme = Acme(Settings(name="acme", type="mastodon", stream=True, max_reply_chars=900), str(events.make_url("/")))

    class Thing(BaseModel):
        id: Id

    assert (acme.streaming, acme.max_reply_chars) == (True, 900)
    assert (await acme.client.get_as(Thing, "/thing", "thing")).id == "12"
    await acme.auth.get("/thing")
    sessions = [acme.client.session(), acme.auth.session()]
    await acme.close()
    assert all(session.closed for session in sessions)
    assert not Acme(Settings(name="acme", type="mastodon"), "http://127.0.0.1:1").streaming


async def test_json_events_yield_the_wanted_kind_and_skip_what_is_not_json(events, caplog) -> None:
    client = VendorClient("acme", str(events.make_url("/")))
    try:
        got = [e async for e in json_events(client, str(events.make_url("/stream")), 10, "notification")]
    finally:
        await client.close()
    assert got == [{"id": "1"}]
    assert [r.getMessage() for r in caplog.records] == ["acme: skipped a stream event that is not JSON: '{oops'"]


async def test_a_posts_thread_is_its_own_its_parents_or_found_and_then_remembered() -> None:
    cache: ThreadCache[str] = ThreadCache()
    found: list[str] = []

    async def find() -> str:
        found.append("looked")
        return "root"

    assert await cache.thread_of("a", None, "a", find) == "a"
    assert await cache.thread_of("b", "a", "b", find) == "a"
    assert await cache.thread_of("c", "elsewhere", "c", find) == "root" and found == ["looked"]
    assert cache["c"] == "root" and cache["b"] == "a"


def test_lookups_pass_over_what_does_not_fit_and_idempotency_keys_are_stable() -> None:
    class Ref(BaseModel):
        id: Id

    entries: list[Any] = [{"id": 1}, "odd", {"id": None}, {"id": "b"}]
    assert [r.id for r in fitting(Ref, entries)] == ["1", "b"]
    assert (
        idempotency_key("acme", "1", "hi") == idempotency_key("acme", "1", "hi") != idempotency_key("acme", "1", "ho")
    )


def test_a_first_poll_reaches_back_first_poll_hours_on_the_injected_clock() -> None:
    from datetime import UTC, datetime, timedelta

    class Polled(Settings):
        first_poll_hours: float = 6

    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    acme = Acme(Polled(name="acme", type="mastodon"), "http://127.0.0.1:1")
    acme.clock = lambda: now
    assert acme.first_poll_start() == now - timedelta(hours=6)
