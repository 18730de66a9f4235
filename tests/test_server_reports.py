"""GET /reports.json and /reports.csv over real HTTP: the bearer token, the window and grouping, a store outage."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from inbox.connector import Kind, RawItem
from inbox.pipeline.ingest import Source
from inbox.reports import conversation_rows, csv_text, parse_window, report_zone
from inbox.server import start_server
from inbox.service import Inbox
from inbox.store.db import create_engine
from tests.conftest import FakeClock, make_settings, thread_of
from tests.test_server import get, sqlite_threads_stopped, unreachable_store

TOKEN = "reports-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def inbox(inbox_factory: Any, engine: Any, clock: FakeClock, tmp_path: Path) -> AsyncIterator[Inbox]:
    """Two conversations on X posted an hour ago: one answered after 10 minutes by ana, one after 45 by ben."""
    feed = {"name": "feed", "type": "jsonl", "path": str(tmp_path / "feed.jsonl"), "channel": "x"}
    built = inbox_factory(connectors=[feed], reports={"token": TOKEN})
    posted = clock.now
    source = Source.of(built.connectors["feed"])
    for key in ("a", "b"):
        await built.ingestor.ingest(source, [RawItem(key, "where is my parcel?", posted, Kind.MENTION, f"{key}-cust")])
    for key, minutes, agent in [("a", 10, "ana"), ("b", 45, "ben")]:
        clock.now = posted + timedelta(minutes=minutes)
        assert (await built.actions.reply(await thread_of(engine, key), "On it", agent)).status == "sent"
    clock.now = posted + timedelta(hours=1)
    yield built
    await built.connectors["feed"].close()


async def test_reports_json_with_the_token_gives_the_figures(inbox: Inbox) -> None:
    status, body = await get(inbox, "/reports.json?since=1d", headers=AUTH)
    assert status == 200, body
    [row] = json.loads(body)["rows"]
    assert (row["conversations"], row["met"], row["missed"], row["attainment"]) == (2, 1, 1, 0.5)
    assert row["first_response_minutes"] == {"p50": 27.5, "p90": 41.5, "p95": 43.25}
    status, body = await get(inbox, "/reports.json?by=agent", headers=AUTH)
    assert status == 200
    report = json.loads(body)
    assert report["by"] == "agent" and [r["group"] for r in report["rows"]] == ["ana", "ben"]


async def test_reports_csv_has_one_row_per_conversation(inbox: Inbox) -> None:
    status, body = await get(inbox, "/reports.csv?since=7d", headers=AUTH)
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(r["replied_by"], r["sla_outcome"], r["first_response_minutes"]) for r in rows] == [
        ("ana", "met", "10.0"),
        ("ben", "missed", "45.0"),
    ]
    # Streamed a page at a time, the same bytes as the CSV of all the rows at once.
    window = parse_window(inbox.clock(), report_zone(inbox.settings), since="7d")
    assert body == csv_text(await conversation_rows(inbox.engine, inbox.settings, window, inbox.clock()))


async def test_reports_csv_is_streamed_as_a_csv_attachment(inbox: Inbox) -> None:
    site = await start_server(inbox, "127.0.0.1", 0)
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{site.port}/reports.csv?since=7d", headers=AUTH) as response,
        ):
            assert response.status == 200
            assert response.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in response.headers
            assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
            assert response.headers["Content-Disposition"] == 'attachment; filename="reports.csv"'
            assert (await response.text()).count("\n") == 3
    finally:
        await site.runner.cleanup()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}])
async def test_without_the_right_bearer_token_the_answer_is_401(inbox: Inbox, headers: dict[str, str]) -> None:
    for path in ("/reports.json", "/reports.csv"):
        status, body = await get(inbox, path, headers=headers)
        assert status == 401 and "conversations" not in body and "a-cust" not in body


async def test_without_a_configured_token_the_endpoints_are_off(inbox_factory: Any) -> None:
    inbox = inbox_factory()
    for path in ("/reports.json", "/reports.csv"):
        status, body = await get(inbox, path, headers=AUTH)
        assert status == 404 and "[reports] token" in body


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("by=team", "is not a grouping"),
        ("since=forever", "is not a duration"),
        ("to=2026-12-01", "to needs from"),
        ("from=0001-01-01T00:00%2B05:00", "is out of range"),
        ("from=9999-12-01&to=9999-12-31T23:00-05:00", "is out of range"),
        ("from=2000-01-01&to=2026-01-01", "at most 3650 days"),
    ],
)
async def test_a_bad_window_or_grouping_is_400_with_what_is_accepted(inbox: Inbox, query: str, message: str) -> None:
    status, body = await get(inbox, f"/reports.json?{query}", headers=AUTH)
    assert status == 400 and message in json.loads(body)["error"]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_store_outage_is_503_never_500(kind: str, tmp_path: Path, clock: FakeClock) -> None:
    url = await unreachable_store(kind, tmp_path)
    engine = create_engine(url)
    settings = make_settings(tmp_path, database={"url": url}, reports={"token": TOKEN})
    inbox = Inbox(settings, engine, clock=clock, notifiers=[])
    try:
        for path in ("/reports.json", "/reports.csv"):
            status, body = await get(inbox, path, headers=AUTH)
            assert status == 503 and "try again later" in json.loads(body)["error"]
    finally:
        await engine.dispose()
        await sqlite_threads_stopped()
