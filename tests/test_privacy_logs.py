"""The log and /healthz never carry a customer's words or name: items pushed and polled, announced, breached, answered."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from inbox.connectors.webhook import sign
from inbox.fakes.slack import TOKEN, FakeSlack
from inbox.logs import setup_logging
from inbox.pipeline.outbox import LogNotifier
from inbox.views import open_queue
from tests.conftest import FakeClock, close_connectors
from tests.inbox.test_logs import Captured
from tests.test_server import connectors, get

PUSHED_TEXT = "Wombatrix voucher never worked"
PUSHED_NAME = "Iolanda Przybyl"
POLLED_TEXT = "Glacewort delivery left at the wrong door"
POLLED_NAME = "Teodor Quennell"


@pytest.fixture
def verbose_log() -> Iterator[Captured]:
    """The log as `inbox run -v` sets it up (debug level, JSON lines), restored after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    stream = io.StringIO()
    setup_logging(logging.DEBUG, json_lines=True, stream=stream)
    yield Captured(stream)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in libraries.items():
        logging.getLogger(name).setLevel(was)


async def test_the_log_and_healthz_never_carry_customer_text(
    inbox_factory: Any, tmp_path: Path, clock: FakeClock, verbose_log: Captured
):
    json_log = verbose_log
    inbox = inbox_factory(LogNotifier(), connectors=connectors(tmp_path))
    try:
        posted = (clock.now - timedelta(minutes=1)).isoformat()
        (tmp_path / "feed.jsonl").write_text(
            json.dumps(
                {"id": "p1", "text": POLLED_TEXT, "posted_at": posted, "author": {"handle": "teo", "name": POLLED_NAME}}
            )
            + "\n"
        )
        assert (await inbox.pollers["feed"].poll_once()).stored == 1
        data = json.dumps(
            [{"id": "w1", "text": PUSHED_TEXT, "posted_at": posted, "author": {"handle": "io", "name": PUSHED_NAME}}]
        ).encode()
        headers = {"X-Inbox-Signature": sign("shop-secret-123456", data)}
        for _ in range(20):  # as a sender does: a 503 (the store busy on a loaded machine) is tried again
            status, _ = await get(inbox, "/webhooks/shop", method="POST", data=data, headers=headers)
            if status != 503:
                break
        assert status == 202
        await inbox.outbox.dispatch()  # new conversations announced in the log
        queue = await open_queue(inbox.engine, inbox.policies, clock.now)
        polled = next(t.thread_id for t in queue if t.connector == "feed")
        clock.advance(minutes=40)
        await inbox.sweep.run()  # both breach: escalations in the log
        await inbox.actions.reply(
            polled, f"So sorry {POLLED_NAME}, a new {POLLED_TEXT.split()[0]} is on its way", "ana"
        )
        await inbox.outbox.dispatch()
        status, health = await get(inbox, "/healthz")
        _status, metrics = await get(inbox, "/metrics")
    finally:
        await close_connectors(inbox)

    log = json_log.text
    assert "new: thread" in log and "SLA BREACH" in log  # the log did speak of both conversations
    assert "@teo" in log and "@io" in log  # by their handle, which `inbox forget` cannot reach: see docs/privacy.md
    for secret in ("Wombatrix", "Glacewort", "Iolanda", "Przybyl", "Teodor", "Quennell"):
        assert secret not in log, f"{secret!r} in the log"
        assert secret not in health and secret not in metrics, f"{secret!r} in /healthz or /metrics"
    assert status == 200


async def test_debug_logging_never_shows_what_vendor_clients_send(verbose_log: Captured) -> None:
    """`inbox run -v` is our debug log: slack_sdk's own debug lines carry every message body it posts."""
    slack = FakeSlack()
    url = await slack.start()
    try:
        client = AsyncWebClient(token=TOKEN, base_url=f"{url}api/")
        await client.chat_postMessage(channel="CTRIAGE01", text=f"{PUSHED_NAME}: {PUSHED_TEXT}")
        assert [m["text"] for m in slack.posted("CTRIAGE01")] == [f"{PUSHED_NAME}: {PUSHED_TEXT}"]
    finally:
        await slack.stop()
    logging.getLogger("inbox.test").debug("debug lines of our own still show")
    assert "debug lines of our own still show" in verbose_log.text
    assert PUSHED_TEXT not in verbose_log.text and PUSHED_NAME not in verbose_log.text
