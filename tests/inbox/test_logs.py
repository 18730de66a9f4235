"""Log lines: context fields (connector, item, thread, event) on every line about them, in JSON and on a terminal."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.logs import current_context, log_context, log_fields, log_handler, setup_logging
from inbox.pipeline.outbox import Notice
from inbox.store.models import Item
from tests.inbox.pipeline.test_actions import jsonl_connector
from tests.inbox.pipeline.test_ingest import SOURCE, item
from tests.inbox.test_metrics import sent_before_a_crash


class Captured:
    """What a handler built like `inbox run`'s wrote, one JSON object per line."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def about(self, fragment: str) -> dict[str, Any]:
        """The one line whose message contains `fragment`."""
        [line] = [line for line in self.lines() if fragment in line["message"]]
        return line


@pytest.fixture
def json_log() -> Iterator[Captured]:
    """The root logger also writes to a JSON handler as `inbox run` builds it (context filter, redaction)."""
    stream = io.StringIO()
    handler = log_handler(json_lines=True, stream=stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield Captured(stream)
    root.removeHandler(handler)
    root.setLevel(level)


async def test_context_fields_reach_nested_code_new_tasks_and_library_loggers(json_log: Captured):
    library = logging.getLogger("aiohttp.client")

    async def nested() -> None:
        logging.getLogger("inbox.somewhere").warning("deep inside")

    async def in_a_library() -> None:
        await asyncio.sleep(0)
        library.warning("from a library")

    with log_context(connector="acme-x", thread_id=7):
        await nested()
        with log_context(item_id=42, event_id=None):  # None fields are left out
            await asyncio.create_task(in_a_library())
            assert current_context() == {"connector": "acme-x", "thread_id": 7, "item_id": 42}
        logging.getLogger("inbox.x").info("explicit wins", extra={"connector": "other"})
    logging.getLogger("inbox").info("outside")

    deep, lib, explicit, outside = json_log.lines()
    assert (deep["connector"], deep["thread_id"]) == ("acme-x", 7) and "item_id" not in deep
    assert (lib["logger"], lib["connector"], lib["thread_id"], lib["item_id"]) == ("aiohttp.client", "acme-x", 7, 42)
    assert "event_id" not in lib
    assert explicit["connector"] == "other"
    assert "connector" not in outside and current_context() == {}


async def test_a_task_started_inside_a_context_keeps_it(json_log: Captured):
    async def later() -> None:
        await asyncio.sleep(0)
        logging.getLogger("inbox.slack").info("work after the acknowledgement")

    with log_context(thread_id=3, item_id=9):
        task = asyncio.create_task(later())
    await task
    line = json_log.about("work after")
    assert (line["thread_id"], line["item_id"]) == (3, 9)


async def test_log_fields_reads_fields_from_the_arguments(json_log: Captured):
    class Source:
        name = "acme-mastodon"

    @log_fields(connector="source.name", item_id="item_id")
    async def ingest(source: Source, item_id: int | None = None) -> None:
        logging.getLogger("inbox.ingest").info("stored")

    await ingest(Source(), item_id=5)
    await ingest(Source())
    first, second = json_log.lines()
    assert (first["connector"], first["item_id"]) == ("acme-mastodon", 5)
    assert second["connector"] == "acme-mastodon" and "item_id" not in second

    with pytest.raises(TypeError, match="no argument 'sorce'"):
        log_fields(connector="sorce.name")(ingest)


async def test_every_line_of_a_poll_names_its_connector_and_item_lines_their_item(
    inbox_factory, clock, tmp_path, json_log: Captured
):
    feed = tmp_path / "x.jsonl"
    future = (clock.now + timedelta(hours=2)).isoformat()
    feed.write_text(
        json.dumps(
            {
                "id": "ok-1",
                "text": "where is my parcel?",
                "posted_at": clock.now.isoformat(),
                "author": {"handle": "bob"},
            }
        )
        + "\n"
        + json.dumps({"id": "broken", "text": "no author"})
        + "\n"
        + json.dumps({"id": "later", "text": "from the future", "posted_at": future, "author": {"handle": "eve"}})
        + "\n"
    )
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    result = await inbox.pollers["acme-x"].poll_once()
    assert result.stored == 2
    lines = json_log.lines()
    assert len(lines) >= 3 and all(line["connector"] == "acme-x" for line in lines), lines
    assert {line["logger"] for line in lines} >= {"inbox.connectors.jsonl", "inbox.ingest"}
    assert json_log.about("dated in the future")["external_id"] == "later"
    stored = json_log.about("stored 2 item(s)")
    assert not stored["message"].startswith("acme-x")  # the field says it; the terminal puts it in front


async def test_a_failing_delivery_names_its_event_thread_item_and_connector(
    inbox_factory, engine, clock, json_log: Captured
):
    class Down:
        async def notify(self, notice: Notice) -> None:
            logging.getLogger("inbox.slack.notifier").info("posting")
            raise ConnectionError("Slack is down")

    inbox = inbox_factory(Down())  # type: ignore[arg-type]
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    assert await inbox.outbox.dispatch() == 0
    async with engine.connect() as conn:
        item_id, thread_id = (await conn.execute(sa.select(Item.id, Item.thread_id))).one()
    for fragment in ("posting", "delivery failed"):
        line = json_log.about(fragment)
        assert (line["connector"], line["thread_id"], line["item_id"]) == ("acme-x", thread_id, item_id)
        assert isinstance(line["event_id"], int)


async def test_an_agent_action_finished_after_a_crash_names_its_reply_thread_and_item(
    inbox_factory, engine, clock, tmp_path, json_log: Captured
):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    thread, item_id, reply_id = await sent_before_a_crash(inbox, engine, clock, "1")
    clock.advance(minutes=2)
    assert await inbox.actions.recover() == 1
    line = json_log.about("had been sent before a restart")
    assert (line["connector"], line["thread_id"], line["item_id"], line["reply_id"]) == (
        "acme-x",
        thread,
        item_id,
        reply_id,
    )


def test_the_terminal_shows_the_connector_in_front_once_and_the_ids_after():
    stream = io.StringIO()
    handler = log_handler(json_lines=False, stream=stream)
    log = logging.getLogger("tests.terminal")
    log.addHandler(handler)
    log.propagate = False
    try:
        with log_context(connector="acme-x", thread_id=12, item_id=34):
            log.warning("poll failed (transient), next try in 5 s")
            log.warning("acme-x: skipped mention 99: no author")  # a connector's own prefix is not doubled
        log.warning("no context here")
    finally:
        log.removeHandler(handler)
        log.propagate = True
    first, second, third = stream.getvalue().splitlines()
    assert "acme-x: poll failed (transient), next try in 5 s  thread_id=12 item_id=34" in first
    assert "acme-x: skipped mention 99" in second and "acme-x: acme-x" not in second
    assert third.rstrip().endswith("no context here") and "acme-x" not in third


def test_setup_logging_writes_json_lines_when_not_on_a_terminal():
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()  # not a tty
    try:
        handler = setup_logging(logging.INFO, stream=stream)
        assert root.handlers == [handler]
        with log_context(connector="acme-x"):
            logging.getLogger("inbox.poller").info("polling works again after %d failure(s)", 3)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    [line] = [json.loads(text) for text in stream.getvalue().splitlines()]
    assert line["message"] == "polling works again after 3 failure(s)"
    assert (line["level"], line["logger"], line["connector"]) == ("info", "inbox.poller", "acme-x")
