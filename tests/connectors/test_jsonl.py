"""The jsonl connector: complete lines only, broken lines skipped with a log line, cursor kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import sqlalchemy as sa

from inbox.connectors.jsonl import JsonlConnector, JsonlSettings
from inbox.store.cursors import load_cursor
from inbox.store.models import Item
from tests.connectors.contract import fetch_all


def line(i: int, **extra: object) -> str:
    record = {
        "id": str(i),
        "text": f"message {i}",
        "posted_at": "2026-11-23T09:00:00+01:00",
        "author": {"handle": f"u{i}"},
    }
    record.update(extra)
    return json.dumps(record) + "\n"


async def test_reads_complete_lines_and_resumes_from_the_cursor(tmp_path: Path):
    path = tmp_path / "feed.jsonl"
    path.write_text(line(1) + line(2) + '{"id": "3", "text": "half a li')
    connector = JsonlConnector(JsonlSettings(name="feed", path=path))
    items, cursor = await fetch_all(connector, None)
    assert [i.external_id for i in items] == ["1", "2"]
    assert items[0].posted_at.isoformat() == "2026-11-23T09:00:00+01:00"
    with path.open("a") as handle:
        handle.write('ne"}\n' + line(4))
    items, cursor = await fetch_all(connector, cursor)
    assert [i.external_id for i in items] == ["4"]  # the finished line 3 is broken JSON
    assert cursor is not None and cursor.offset == path.stat().st_size
    assert await fetch_all(connector, cursor) == ([], cursor)


async def test_broken_lines_are_logged_and_skipped(tmp_path: Path, caplog):
    path = tmp_path / "feed.jsonl"
    path.write_text(line(1) + "not json\n" + json.dumps({"id": "2"}) + "\n" + line(3, rating=9) + line(4))
    connector = JsonlConnector(JsonlSettings(name="feed", path=path))
    with caplog.at_level(logging.WARNING):
        items, _ = await fetch_all(connector, None)
    assert [i.external_id for i in items] == ["1", "4"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all(m.startswith("feed: skipped line at byte") for m in messages)
    assert any("rating" in m for m in messages)


async def test_a_replaced_file_is_read_from_the_start(tmp_path: Path):
    path = tmp_path / "feed.jsonl"
    path.write_text(line(1) + line(2))
    connector = JsonlConnector(JsonlSettings(name="feed", path=path))
    _, cursor = await fetch_all(connector, None)
    path.write_text(line(3))
    items, _ = await fetch_all(connector, cursor)
    assert [i.external_id for i in items] == ["3"]


async def test_missing_file_is_unhealthy_with_its_reason_until_it_appears(inbox_factory, engine, tmp_path: Path):
    # `inbox check` said FAIL for a missing file while `inbox run` polled it as healthy, for ever, without a word.
    from inbox.pipeline.poller import UNHEALTHY_AFTER
    from inbox.store.models import ConnectorHealth

    path = tmp_path / "nope.jsonl"
    inbox = inbox_factory(connectors=[{"name": "feed", "type": "jsonl", "path": str(path)}])
    try:
        await inbox.connectors["feed"].check()
    except Exception as exc:  # noqa: BLE001
        assert "does not exist" in str(exc)
    else:
        raise AssertionError("check passed on a missing file")

    async def health() -> tuple[bool, str | None]:
        async with engine.connect() as conn:
            row = (await conn.execute(sa.select(ConnectorHealth).where(ConnectorHealth.connector == "feed"))).one()
        return row.healthy, row.reason

    for _ in range(UNHEALTHY_AFTER):
        result = await inbox.pollers["feed"].poll_once()
        assert result.error and "nope.jsonl does not exist" in result.error
    healthy, reason = await health()
    assert not healthy and reason and "nope.jsonl does not exist" in reason
    path.write_text(line(1))
    assert (await inbox.pollers["feed"].poll_once()).stored == 1
    assert await health() == (True, None)


async def test_big_file_in_batches_each_with_its_cursor(inbox_factory, engine, tmp_path: Path):
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(line(i) for i in range(1200)))
    inbox = inbox_factory(connectors=[{"name": "feed", "type": "jsonl", "path": str(path), "batch_size": 500}])
    result = await inbox.pollers["feed"].poll_once()
    assert (result.stored, result.pages) == (1200, 3)
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one() == 1200
    assert (await load_cursor(engine, "feed"))["offset"] == path.stat().st_size
