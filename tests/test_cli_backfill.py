"""`inbox backfill` as a user runs it: a real process against local fakes of X and Trustpilot, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from inbox.fakes.trustpilot import TrustpilotFake
from inbox.fakes.x import TWEEPY_DEV, XFake
from inbox.pipeline.sweep import SlaSweep
from inbox.service import Inbox
from inbox.sla import SlaState
from inbox.store.clocks import STOPPED
from inbox.store.db import create_engine, migrate
from inbox.store.models import Cursor, Event, EventKind, Item, Status, Thread
from tests.conftest import STORES, FakeClock, make_settings, migrated_sqlite, pg_database
from tests.connectors.test_trustpilot import NAME as TRUSTPILOT
from tests.connectors.test_trustpilot import trustpilot_config
from tests.connectors.test_x import config as x_config
from tests.processes import ROOT, inbox_env, toml_table


@pytest.fixture(params=STORES)
async def cli_store(
    request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite_template: Path
) -> AsyncIterator[tuple[Any, str]]:
    """A migrated, empty store a separate process can reach by URL alone: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        await migrated_sqlite(tmp_path / "inbox.db", migrated_sqlite_template)
        url = f"sqlite:///{tmp_path / 'inbox.db'}"
        engine = create_engine(url)
        yield engine, url
        await engine.dispose()
        return
    async with pg_database("backfill") as url:
        engine = create_engine(url)
        try:
            await migrate(engine)
            yield engine, url
        finally:
            await engine.dispose()


async def inbox(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run `inbox ARGS` (with `stdin` typed in) in a separate process while this event loop keeps serving the fakes."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "inbox",
        *args,
        cwd=ROOT,
        env=inbox_env(COLUMNS="200"),
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode() if stdin is not None else None), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def count(summary: str, row: str) -> int:
    """A number from the summary table's row."""
    match = re.search(rf"^\W*{re.escape(row)}\W+(\d+)", summary, re.MULTILINE)
    assert match, f"no {row!r} row in:\n{summary}"
    return int(match.group(1))


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[XFake, TrustpilotFake]]:
    x, trustpilot = XFake(), TrustpilotFake()
    x.now = trustpilot.now = datetime.now(UTC).replace(microsecond=0)
    await x.start()
    await trustpilot.start()
    yield x, trustpilot
    await x.close()
    await trustpilot.close()


async def test_backfill_stores_history_once_leaves_the_live_cursor_and_alerts_only_about_what_is_recent(
    cli_store, fakes, tmp_path, triager, templates
):
    engine, url = cli_store
    x, trustpilot = fakes
    now = x.now
    # `inbox run` polls with first_poll_hours = 1: its first polls took the last hour and saved the live cursors.
    tables = [x_config(x, first_poll_hours=1), trustpilot_config(trustpilot, first_poll_hours=1)]
    live = Inbox(
        make_settings(tmp_path, connectors=tables),
        engine,
        clock=FakeClock(now),
        notifiers=[],
        triager=triager,
        templates=templates,
    )
    live_ids = {
        x.add_customer_post("is my order shipped?", author="lia", minutes_ago=5),
        trustpilot.add_review("Quick delivery", author="Max", rating=4, minutes_ago=6).id,
    }
    for poller in live.pollers.values():
        assert (await poller.poll_once()).stored == 1
        await poller.connector.close()
    async with engine.connect() as conn:
        live_cursors = {c.connector: (c.value, c.updated_at) for c in await conn.execute(sa.select(Cursor))}
    assert set(live_cursors) == {"acme-x", TRUSTPILOT}

    # History the live polls never reached, within two days.
    expired_mention = x.add_customer_post("my parcel never came", author="olga", minutes_ago=600)
    dana = x.user("dana")
    conversation = "-".join(sorted((TWEEPY_DEV["id"], dana["id"]), key=int))
    answered_dm = x.add_dm("can I change my address?", author="dana", minutes_ago=300)
    x.dm(TWEEPY_DEV["id"], conversation, "Done, Dana!", now - timedelta(minutes=280))
    answered_review = trustpilot.add_review("Great shop", author="Ann", rating=5, minutes_ago=30 * 60)
    trustpilot.add_existing_reply(answered_review.id, "Thank you, Ann!")
    trustpilot.reviews[answered_review.id].reply_at = now - timedelta(hours=29)
    expired_review = trustpilot.add_review("Broken on arrival", author="Bea", rating=1, minutes_ago=20 * 60)
    # Older than two days: not fetched.
    x.add_customer_post("ancient history", author="pia", minutes_ago=3 * 24 * 60)
    trustpilot.add_review("ancient review", author="Cid", minutes_ago=3 * 24 * 60)
    # Arrived after the live polls (a running `inbox run` would take them at its next poll).
    recent = {
        x.add_customer_post("do you deliver on Sundays?", author="rui", minutes_ago=2),
        trustpilot.add_review("Where is my refund?", author="Dot", rating=2, minutes_ago=3).id,
    }
    config = tmp_path / "inbox.toml"
    config.write_text(
        f"[database]\nurl = {json.dumps(url)}\n" + "".join(f"\n[[connectors]]\n{toml_table(t)}" for t in tables)
    )

    runs = {
        name: await inbox("backfill", name, "--since", "2d", "--config", str(config)) for name in ("acme-x", TRUSTPILOT)
    }
    for name, (code, out, err) in runs.items():
        assert code == 0, out + err
        assert f"Backfill of {name}" in out and "2d back" in out
    x_out, tp_out = runs["acme-x"][1], runs[TRUSTPILOT][1]
    assert (
        count(x_out, "stored"),
        count(x_out, "already answered"),
        count(x_out, "past their deadline"),
        count(x_out, "already known"),
    ) == (3, 1, 1, 1)
    assert count(x_out, "skipped") == 1  # the brand's own DM
    assert (
        count(tp_out, "stored"),
        count(tp_out, "already answered"),
        count(tp_out, "past their deadline"),
        count(tp_out, "already known"),
    ) == (3, 1, 1, 1)

    history = {expired_mention, answered_dm, answered_review.id, expired_review.id}
    async with engine.connect() as conn:
        stored = list((await conn.execute(sa.select(Item.external_id))).scalars())
        after = {c.connector: (c.value, c.updated_at) for c in await conn.execute(sa.select(Cursor))}
    assert sorted(stored) == sorted(live_ids | history | recent)
    assert after == live_cursors  # never moved, never rewritten

    again = {
        name: await inbox("backfill", name, "--since", "2d", "--config", str(config)) for name in ("acme-x", TRUSTPILOT)
    }
    assert [(count(out, "stored"), count(out, "already known")) for _code, out, _err in again.values()] == [
        (0, 4),
        (0, 4),
    ]
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one() == len(stored)
        query = sa.select(Item.external_id.label("item"), Thread.id, Thread.status, Thread.sla_stage).join(
            Thread, Thread.id == Item.thread_id
        )
        thread_of = {r.item: r for r in await conn.execute(query)}
        announced = set(
            (await conn.execute(sa.select(Event.thread_id).where(Event.kind == EventKind.NEW_THREAD))).scalars()
        )
    for answered in (answered_dm, answered_review.id):
        assert (thread_of[answered].status, thread_of[answered].sla_stage) == (Status.REPLIED, STOPPED)
    assert thread_of[expired_review.id].sla_stage == thread_of[expired_mention].sla_stage == SlaState.BREACHED
    # Everything unanswered reaches the triage channel; what the platform shows answered does not.
    assert announced == {thread_of[i].id for i in live_ids | recent | {expired_mention, expired_review.id}}

    clock = FakeClock(now)
    sweep = SlaSweep(engine, clock)
    swept = await sweep.run()
    assert (swept.warned, swept.breached) == ([], [])  # nothing about the past
    waiting = sorted(thread_of[i].id for i in live_ids | recent)
    clock.advance(minutes=21)
    swept = await sweep.run()
    assert (swept.warned, swept.breached) == (waiting, [])
    clock.advance(minutes=10)
    swept = await sweep.run()
    assert (swept.warned, swept.breached) == ([], waiting)  # the recent ones breach; the history never alerts

    code, shown, err = await inbox("queue", "--config", str(config))
    assert code == 0, err
    assert "Bea" in shown and "breached" in shown and "Ann" not in shown  # honest: unanswered history shows as breached


async def test_bad_durations_and_connectors_without_history_are_refused_before_anything_starts(tmp_path):
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "inbox.db"}"\n'
        '[[connectors]]\nname = "hook"\ntype = "webhook"\nsecret = "0123456789abcdef0123"\n'
        '[[connectors]]\nname = "off"\ntype = "mastodon"\napi_url = "https://mastodon.example"\naccess_token = "t"\nenabled = false\n'
    )
    for args, problem in [
        (
            ("hook", "--since", "2 days"),
            "--since '2 days' is not a duration: write a number and a unit, e.g. 30m, 12h, 2d or 1w",
        ),
        (("hook", "--since", "0m"), "must be more than 0"),
        (("nope", "--since", "2d"), "no connector named 'nope' in the config; configured: hook, off"),
        (("off", "--since", "2d"), "connector 'off' is disabled"),
        (("hook", "--since", "2d"), "receives pushed items: it has no history to fetch"),
    ]:
        code, out, err = await inbox("backfill", *args, "--config", str(config))
        assert code == 2, out + err
        assert problem in " ".join(err.split()) and "Traceback" not in err
    assert not (tmp_path / "inbox.db").exists()  # refused before the store was opened


async def test_refused_credentials_stop_the_backfill_with_a_clear_message(tmp_path):
    trustpilot = TrustpilotFake()
    trustpilot.now = datetime.now(UTC)
    await trustpilot.start()
    try:
        trustpilot.add_review("hello", minutes_ago=60)
        config = tmp_path / "inbox.toml"
        table = trustpilot_config(trustpilot, access_token="revoked-token")
        config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "inbox.db"}"\n[[connectors]]\n{toml_table(table)}')
        code, out, err = await inbox("backfill", TRUSTPILOT, "--since", "1d", "--config", str(config))
    finally:
        await trustpilot.close()
    assert code == 1, out + err
    assert "credentials refused" in err and "inbox check" in err and "Traceback" not in err
    assert count(out, "stored") == 0  # what the stopped backfill did, shown all the same
