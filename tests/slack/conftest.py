"""A running inbox with Slack on, against the fake Slack Web API, served over real HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.fakes import slack_payloads as payloads
from inbox.fakes.slack import TOKEN, FakeSlack
from inbox.server import Site, start_server
from inbox.service import Inbox
from inbox.slack import Slack
from inbox.store.models import Item
from inbox.templates import ReplyTemplates
from inbox.triage import Triager
from tests.conftest import FakeClock, close_connectors, make_settings

TRIAGE, LEADS, ADMIN = "CTRIAGE01", "CLEADS001", "CADMIN001"
AGENT = "UAGENT001"


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(autouse=True)
def quick_rate_limit_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """slack_sdk's rate-limit handler sleeps Retry-After (+ up to 1 s of jitter): record it, wait a hundredth."""
    from slack_sdk.http_retry import builtin_async_handlers

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await real_sleep(seconds / 100)

    monkeypatch.setattr(builtin_async_handlers, "asyncio", type("FastAsyncio", (), {"sleep": staticmethod(sleep)}))
    return waits


class Harness:
    """The inbox with Slack on, its HTTP server, a jsonl connector and helpers to drive them."""

    def __init__(self, inbox: Inbox, site: Site, fake: FakeSlack, clock: FakeClock, folder: Path) -> None:
        self.inbox = inbox
        self.site = site
        self.fake = fake
        self.clock = clock
        self.folder = folder
        self.feed = folder / "x.jsonl"
        self.http = aiohttp.ClientSession()
        self.url = f"http://127.0.0.1:{site.port}"

    @property
    def slack(self) -> Slack:
        assert self.inbox.slack is not None
        return self.inbox.slack

    async def close(self) -> None:
        await self.http.close()
        await self.site.runner.cleanup()
        await self.slack.close()

    # ------------------------------------------------------------------ customers

    async def customer_says(
        self,
        external_id: str,
        text: str = "Where is my order #12345? It is late!",
        *,
        minutes_ago: float = 1,
        **extra: Any,
    ) -> int:
        """A customer item through the jsonl connector and the poller; returns its thread id."""
        record = {
            "id": external_id,
            "text": text,
            "posted_at": (self.clock.now - timedelta(minutes=minutes_ago)).isoformat(),
            "author": {"handle": extra.pop("handle", "bob"), "name": extra.pop("name", "Bob")},
            "kind": "mention",
            "url": f"https://x.example/bob/status/{external_id}",
        }
        record.update(extra)
        with self.feed.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        result = await self.inbox.pollers["acme-x"].poll_once()
        assert result.error is None, result.error
        async with self.inbox.engine.connect() as conn:
            return (await conn.execute(sa.select(Item.thread_id).where(Item.external_id == external_id))).scalar_one()

    def replies(self) -> list[dict[str, Any]]:
        """What reached the customer (the jsonl connector's replies file)."""
        path = self.folder / "x.jsonl.replies.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    # ------------------------------------------------------------------ Slack side

    async def dispatch(self) -> int:
        """Deliver due outbox events to Slack."""
        return await self.inbox.outbox.dispatch()

    async def settle(self) -> None:
        """Wait for acknowledged work to finish, then deliver what it recorded."""
        await self.slack.tasks.drain(10)
        await self.dispatch()

    def triage_message(self, thread_id: int) -> dict[str, Any]:
        """The triage message of a thread, as the fake Slack holds it now."""
        for message in self.fake.posted(TRIAGE, in_thread=False):
            if (message.get("metadata") or {}).get("event_payload", {}).get("thread_id") == thread_id:
                return message
        raise AssertionError(f"no triage message for thread {thread_id}")

    def value_of(self, thread_id: int, action_id: str = "inbox_send") -> str:
        """The value of a button on the thread's triage message."""
        for block in self.triage_message(thread_id)["blocks"]:
            for element in block.get("elements", []):
                if element.get("action_id") == action_id:
                    return element["value"]
        raise AssertionError(f"no {action_id} button on thread {thread_id}")

    async def post(self, body: str, headers: dict[str, str]) -> tuple[int, str, float]:
        """POST to /slack/events; (status, body, seconds until the answer)."""
        started = time.perf_counter()
        async with self.http.post(f"{self.url}/slack/events", data=body.encode(), headers=headers) as response:
            text = await response.text()
            return response.status, text, time.perf_counter() - started

    async def click(
        self, thread_id: int, action_id: str, *, user: str = AGENT, value: str | None = None
    ) -> tuple[int, str, float]:
        """A signed button click on the thread's triage message."""
        body = self.click_body(thread_id, action_id, user=user, value=value)
        return await self.post(body, payloads.signed(body))

    def click_body(self, thread_id: int, action_id: str, *, user: str = AGENT, value: str | None = None) -> str:
        """The form body Slack sends for a click on the thread's triage message (unsigned)."""
        payload = payloads.block_action(
            action_id,
            value or self.value_of(thread_id, action_id),
            user=user,
            channel=TRIAGE,
            message_ts=self.triage_message(thread_id)["ts"],
            response_url=self.fake.response_url(),
        )
        return payloads.form(payload)

    async def send_event(
        self, inner: dict[str, Any], *, event_id: str | None = None, retry: int | None = None
    ) -> tuple[int, str, float]:
        """A signed Events API request."""
        body = payloads.event(inner, event_id=event_id)
        headers = payloads.signed(body, content_type="application/json")
        if retry is not None:
            headers.update({"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"})
        return await self.post(body, headers)

    def ephemerals(self, user: str = AGENT) -> list[str]:
        """Texts of the ephemeral messages `user` was shown."""
        return [c["text"] for c in self.fake.called("chat.postEphemeral") if c.get("user") == user]


def slack_config(fake: FakeSlack, folder: Path, **slack: Any) -> dict[str, Any]:
    """Config tables for an inbox with Slack on, pointed at the fake, and one jsonl connector standing in for X."""
    return {
        "slack": {
            "bot_token": TOKEN,
            "signing_secret": payloads.SECRET,
            "api_url": f"{fake.url}api/",
            "triage_channel": TRIAGE,
            "leads_channel": LEADS,
            **slack,
        },
        "server": {"host": "127.0.0.1", "port": 0},
        "connectors": [{"name": "acme-x", "type": "jsonl", "path": str(folder / "x.jsonl"), "channel": "x"}],
    }


HarnessFactory = Callable[..., Awaitable[Harness]]


@pytest.fixture
async def harness_factory(
    engine: AsyncEngine,
    clock: FakeClock,
    triager: Triager,
    templates: ReplyTemplates,
    tmp_path: Path,
    fake_slack: FakeSlack,
) -> AsyncIterator[HarnessFactory]:
    """Build (and later close) running inboxes with Slack on; keyword arguments go to the [slack] table.

    `connectors` replaces the jsonl connector standing in for X (a vendor fake's connector instead); `tables` adds
    to the other config tables (`{"server": {"public_url": ...}}`).
    """
    built: list[Harness] = []

    fake_slack.now = lambda: clock.now.timestamp()

    async def build(
        connectors: list[dict[str, Any]] | None = None, tables: dict[str, dict[str, Any]] | None = None, **slack: Any
    ) -> Harness:
        config = slack_config(fake_slack, tmp_path, **slack)
        if connectors is not None:
            config["connectors"] = connectors
        for name, table in (tables or {}).items():
            config[name] = {**config.get(name, {}), **table}
        settings = make_settings(tmp_path, **config)
        inbox = Inbox(settings, engine, clock=clock, triager=triager, templates=templates)
        site = await start_server(inbox, "127.0.0.1", 0)
        assert inbox.slack is not None
        await inbox.slack.start()
        harness = Harness(inbox, site, fake_slack, clock, tmp_path)
        built.append(harness)
        return harness

    yield build
    for harness in built:
        await harness.close()
        await harness.inbox.pushes.close()  # waits for a push being written, if any
        await close_connectors(harness.inbox)


@pytest.fixture
async def harness(harness_factory: HarnessFactory) -> Harness:
    return await harness_factory()
