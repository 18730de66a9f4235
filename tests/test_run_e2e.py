"""`inbox run` as a user starts it, against local fakes of X, Mastodon and Google reviews."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from inbox.fakes.google_reviews import GoogleReviewsFake
from inbox.fakes.mastodon import MastodonFake
from inbox.fakes.x import XFake
from inbox.store.db import create_engine
from inbox.store.models import Item
from tests.connectors.test_google_reviews import connector_config as google_config
from tests.connectors.test_mastodon import connector_config as mastodon_config
from tests.connectors.test_x import config as x_config
from tests.processes import ROOT, inbox_env, toml_table

# An interval far longer than the wait below: the items can only arrive in time if the first polls run at start,
# and the test needs no tight bound on a busy machine.
POLL_SECONDS = 3600
STARTUP_WAIT_SECONDS = 60


async def stored(engine: Any) -> dict[str, tuple[str, datetime]]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(Item.external_id, Item.connector, Item.ingested_at))
        return {external_id: (connector, ingested) for external_id, connector, ingested in rows}


async def test_run_shows_items_from_three_platforms_at_start_not_one_poll_interval_later(tmp_path: Path):
    fakes = [await XFake().start(), await MastodonFake().start(), await GoogleReviewsFake().start()]
    now = datetime.now(UTC)
    for fake in fakes:
        fake.now = now
    x, mastodon, google = fakes
    expected = {
        x.add_customer_post("@tweepy_dev my order never came", author="ana", minutes_ago=2): "acme-x",
        mastodon.add_customer_post("is the shop open on Sunday?", author="ben", minutes_ago=2): "mastodon-test",
        google.add_customer_post("Great staff, thanks!", author="Cora", minutes_ago=2): "acme-google",
    }
    tables = [
        {**x_config(x), "poll_seconds": POLL_SECONDS},
        {**mastodon_config.__wrapped__(mastodon), "poll_seconds": POLL_SECONDS},  # type: ignore[attr-defined]
        {**google_config.__wrapped__(google), "poll_seconds": POLL_SECONDS},  # type: ignore[attr-defined]
    ]
    database = tmp_path / "inbox.db"
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{database}"\n[server]\nhost = "127.0.0.1"\nport = 0\n'
        + "".join(f"\n[[connectors]]\n{toml_table(t)}" for t in tables)
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inbox",
        "run",
        "--config",
        str(config),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    log: list[str] = []
    engine = create_engine(f"sqlite:///{database}")
    try:
        assert process.stdout is not None
        async with asyncio.timeout(60):
            while not any("inbox running" in line for line in log):
                line = (await process.stdout.readline()).decode()
                assert line, "inbox run exited early:\n" + "".join(log)
                log.append(line)
        began = time.monotonic()
        items: dict[str, tuple[str, datetime]] = {}
        while time.monotonic() - began < STARTUP_WAIT_SECONDS and not set(expected) <= set(items):
            await asyncio.sleep(0.2)
            items = await stored(engine)
        if not set(expected) <= set(items):
            process.send_signal(signal.SIGTERM)
            log.append((await process.communicate())[0].decode())
        assert {k: v[0] for k, v in items.items() if k in expected} == expected, "".join(log)
        queue = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "inbox",
            "queue",
            "--config",
            str(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=inbox_env(COLUMNS="200"),
        )
        shown = (await queue.communicate())[0].decode()
        assert all(name in shown for name in ("@ana", "ben", "Cora")), shown
    finally:
        process.send_signal(signal.SIGTERM)
        rest, _ = await process.communicate()
        await engine.dispose()
        for fake in fakes:
            await fake.close()
    assert process.returncode == 0, "".join(log) + rest.decode()
