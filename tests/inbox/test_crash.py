"""Kill the process between fetch and commit: nothing is lost, nothing is stored twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from inbox.store.cursors import load_cursor
from inbox.store.models import Item

ROOT = Path(__file__).resolve().parents[2]


def write_items(path: Path, count: int) -> None:
    start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    with path.open("w") as handle:
        for i in range(count):
            record = {
                "id": str(i),
                "text": f"where is my order {i}?",
                "posted_at": (start + timedelta(seconds=i)).isoformat(),
                "author": {"handle": f"user{i % 13}"},
            }
            handle.write(json.dumps(record) + "\n")


def run_until(store, path: Path, point: str, marker: str) -> None:
    _engine, url, schema = store
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crash_child.py")), url, schema or "", str(path), point],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.startswith(marker), f"child did not reach {point}: {line!r}"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize(("point", "marker"), [("after-fetch", "FETCHED"), ("before-commit", "COMMITTING")])
async def test_kill_between_fetch_and_commit_loses_nothing(store, inbox_factory, tmp_path, point, marker):
    engine = store[0]
    path = tmp_path / "feed.jsonl"
    write_items(path, 120)
    run_until(store, path, point, marker)

    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one()
    assert stored == 0, "items were committed without their cursor"
    assert await load_cursor(engine, "feed") is None

    inbox = inbox_factory(connectors=[{"name": "feed", "type": "jsonl", "path": str(path)}])
    await inbox.pollers["feed"].poll_once()
    await inbox.pollers["feed"].poll_once()
    async with engine.connect() as conn:
        ids = (await conn.execute(sa.select(Item.external_id))).scalars().all()
    assert sorted(ids, key=int) == [str(i) for i in range(120)]
    assert (await load_cursor(engine, "feed"))["offset"] == path.stat().st_size
