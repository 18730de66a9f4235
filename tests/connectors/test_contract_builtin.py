"""The built-in connectors (`jsonl`, `webhook`) through the shared contract suite.

Scenarios about a vendor's HTTP answers (rate limits, 5xx, 401, a malformed or odd-shaped body) have
no counterpart for a file or for pushed items; they are removed here (set to None), not skipped.
A push that is malformed or unsigned is refused with 400/401: see test_webhook.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError

from inbox.connector import PermanentError
from inbox.connectors.webhook import WebhookSettings, sign
from inbox.fakes.vendor import SentReply, VendorFake
from inbox.pipeline.poller import PollResult
from inbox.server import build_app
from tests.connectors.contract import ConnectorContract

SECRET = "contract-secret-0123456789"


class ItemSource(VendorFake):
    """Writes items in cx-inbox's own JSON format; subclasses decide how they travel."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.counter = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/replies", self._reply)

    async def _reply(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.replies.append(
            SentReply(body["in_reply_to"], body["text"], {"key": request.headers.get("Idempotency-Key")})
        )
        return web.json_response({"id": f"r-{len(self.replies)}"})

    def _item(self, text: str, author: str, minutes_ago: float, **extra: Any) -> dict[str, Any]:
        self.counter += 1
        item = {
            "id": f"i{self.counter}",
            "text": text,
            "author": {"handle": author},
            "posted_at": (self.now - timedelta(minutes=minutes_ago)).isoformat(),
            **extra,
        }
        self.pending.append(item)
        return item

    def add_customer_post(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, reply_to: str | None = None
    ) -> str:
        thread = next((i.get("thread_id") or i["id"] for i in self.sent + self.pending if i["id"] == reply_to), None)
        return self._item(text, author, minutes_ago, thread_id=thread)["id"]

    def add_brand_post(self, text: str) -> list[str]:
        return [self._item(text, "acme", 1, from_brand=True)["id"]]


class FileSource(ItemSource):
    """Appends the items to a jsonl file."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.sent = []

    def flush(self) -> None:
        lines = []
        for n, item in enumerate(self.pending):
            lines.append(json.dumps(item))
            if self.duplicating and n % self.page_size == self.page_size - 1:
                lines.append(json.dumps(item))
        with self.path.open("a") as handle:
            handle.write("".join(line + "\n" for line in lines))
        self.sent += self.pending
        self.pending = []

    @property
    def replies_path(self) -> Path:
        return self.path.with_name(self.path.name + ".replies.jsonl")

    @property  # type: ignore[override]
    def replies(self) -> list[SentReply]:
        """What the connector wrote to its replies file: the file is the platform."""
        if not self.replies_path.exists():
            return []
        records = [json.loads(line) for line in self.replies_path.read_text().splitlines()]
        return [SentReply(r["in_reply_to"], r["text"]) for r in records]

    @replies.setter
    def replies(self, _value: list[SentReply]) -> None:
        pass

    def add_existing_reply(self, target: str, text: str) -> None:
        with self.replies_path.open("a") as handle:
            handle.write(json.dumps({"id": f"reply-{target}", "in_reply_to": target, "text": text}) + "\n")

    def add_broken_item(self) -> None:
        self.pending.append({"id": "broken", "text": 42})


class FilePoller:
    """Flushes what the test wrote, then polls: the file is the vendor."""

    def __init__(self, source: FileSource, poller: Any) -> None:
        self.source, self.poller = source, poller

    async def poll_once(self) -> PollResult:
        self.source.flush()
        return await self.poller.poll_once()


NOT_FOR_FILES_OR_PUSHES = (
    "test_rate_limit_waits_for_the_vendors_reset",
    "test_server_error_then_recovery",
    "test_unauthorized_marks_the_connector_unhealthy",
    "test_malformed_body_is_skipped_and_the_cursor_kept",
    "test_unexpected_shape_is_skipped_and_the_cursor_kept",
    "test_level_the_three_error_kinds_and_rate_limits",
)
# Pushed items are never fetched: the connector-level fetch scenarios have no counterpart for a webhook either
# (its replies are checked by test_reply_lands_where_the_customer_wrote and test_reply_after_a_crash_is_not_sent_twice).
NOT_FOR_PUSHES = (
    "test_level_a_fetch_from_the_cursor_yields_only_what_is_new",
    "test_level_items_carry_the_platforms_time",
    "test_level_a_broken_item_is_logged_and_skipped_the_rest_kept",
    "test_level_a_follow_up_joins_its_thread",
    "test_level_pages_end_with_a_safe_cursor",
    "test_level_own_posts_and_reposts_are_marked",
    "test_level_reply_lands_and_is_found_again",
)


class TestJsonlContract(ConnectorContract):
    name = "feed"

    @pytest.fixture
    async def fake(self, tmp_path: Path):
        source = FileSource(tmp_path / "feed.jsonl")
        source.page_size = 20
        yield source

    @pytest.fixture
    def connector_config(self, fake: FileSource) -> dict[str, Any]:
        return {"name": "feed", "type": "jsonl", "path": str(fake.path), "channel": "x", "batch_size": fake.page_size}

    @pytest.fixture
    def poller(self, inbox: Any, fake: FileSource) -> FilePoller:
        return FilePoller(fake, inbox.pollers["feed"])

    async def test_check_tries_the_credentials(self, fake, inbox):
        fake.flush()
        assert await inbox.connectors["feed"].check()
        fake.path.unlink()
        with pytest.raises(PermanentError, match="does not exist or is not readable"):
            await inbox.connectors["feed"].check()


for _name in NOT_FOR_FILES_OR_PUSHES:
    setattr(TestJsonlContract, _name, None)


class PushSource(ItemSource):
    """POSTs the items, signed, to /webhooks/NAME; receives replies at /replies."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = []
        self.keys_seen: set[str] = set()

    async def _reply(self, request: web.Request) -> web.Response:
        # A receiver honouring Idempotency-Key answers a repeat without acting twice.
        key = request.headers.get("Idempotency-Key", "")
        if key in self.keys_seen:
            return web.json_response({"id": "repeat"})
        self.keys_seen.add(key)
        return await super()._reply(request)

    def add_existing_reply(self, target: str, text: str) -> None:
        self.keys_seen.add(hashlib.sha256(f"{target}\n{text}".encode()).hexdigest())
        self.replies.append(SentReply(target, text))

    def add_broken_item(self) -> None:
        self.pending.append({"id": "broken", "text": "no author or time"})


class Pusher:
    """Pushes pending items the way an integrating system would, and reads the answer."""

    def __init__(self, source: PushSource, client: TestClient) -> None:
        self.source, self.client = source, client

    async def poll_once(self) -> PollResult:
        stored = duplicates = pages = 0
        page = self.source.page_size
        for start in range(0, len(self.source.pending), page):
            chunk = self.source.pending[start : start + page]
            if self.source.duplicating and start:
                chunk = [self.source.pending[start - 1], *chunk]
            body = json.dumps({"items": chunk}).encode()
            response = await self.client.post(
                "/webhooks/shop", data=body, headers={"X-Inbox-Signature": sign(SECRET, body)}
            )
            answer = await response.json()
            stored += answer.get("stored", 0)
            duplicates += answer.get("duplicates", 0)
            pages += 1
        self.source.sent += self.source.pending
        self.source.pending = []
        return PollResult(stored, pages, 0.0, duplicates=duplicates)


class TestWebhookContract(ConnectorContract):
    name = "shop"

    @pytest.fixture
    async def fake(self):
        source = await PushSource().start()
        yield source
        await source.close()

    @pytest.fixture
    def connector_config(self, fake: PushSource) -> dict[str, Any]:
        return {
            "name": "shop",
            "type": "webhook",
            "secret": SECRET,
            "reply_url": f"{fake.base_url}/replies",
            "max_reply_chars": 1000,
        }

    @pytest.fixture
    async def poller(self, inbox: Any, fake: PushSource):
        async with TestClient(TestServer(build_app(inbox))) as client:
            yield Pusher(fake, client)

    async def test_incremental_poll_fetches_only_what_is_new(self, fake, poller, engine):
        # Pushed items carry no cursor: "only what is new" means nothing pushed twice is stored twice.
        first = fake.add_customer_post("first", author="a")
        await poller.poll_once()
        fake.pending.append(fake.sent[0])
        new = [fake.add_customer_post(f"new {n}", author=f"b{n}", minutes_ago=0.5) for n in range(2)]
        result = await poller.poll_once()
        assert (result.stored, result.duplicates) == (2, 1)
        assert await self.stored(engine) == sorted([first, *new])

    async def test_check_tries_the_credentials(self, fake, inbox, connector_config):
        assert await inbox.connectors["shop"].check()
        # A weak secret never gets this far: the config refuses it (tests/inbox/test_settings.py).
        for weak in ("", "short"):
            with pytest.raises(ValidationError, match="at least 16 characters"):
                WebhookSettings.model_validate({**connector_config, "secret": weak})


for _name in NOT_FOR_FILES_OR_PUSHES + NOT_FOR_PUSHES:
    setattr(TestWebhookContract, _name, None)
