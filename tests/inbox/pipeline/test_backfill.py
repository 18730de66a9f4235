"""Backfill in the core, on both stores, against vendor fakes over real HTTP: retries, refusals, windows, a live poll alongside."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console

from inbox import connectors as registry
from inbox.cli.render import BackfillDisplay, print_backfill
from inbox.fakes.google import ACCESS_TOKEN
from inbox.fakes.google_play import PACKAGE, GooglePlayFake
from inbox.fakes.mastodon import MastodonFake
from inbox.fakes.x import XFake
from inbox.pipeline.backfill import Backfill, BackfillError, BackfillProgress, connector_settings, parse_duration
from inbox.service import run_backfill
from inbox.store.cursors import load_cursor
from inbox.store.models import Cursor, Item, Thread
from tests.conftest import FakeClock, close_connectors, make_settings
from tests.connectors.contract import Fault
from tests.connectors.test_mastodon import connector_config as mastodon_config
from tests.connectors.test_x import NAME as X_NAME
from tests.connectors.test_x import config as x_config

DAY = timedelta(days=1)


@pytest.fixture
def clock() -> FakeClock:
    # Connectors reach back from the wall clock, so the inbox's clock starts at the real time here too.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def x(x_fake: XFake) -> XFake:
    return x_fake


class Sleeps:
    """An injected sleep: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def stored_ids(engine: Any) -> list[str]:
    async with engine.connect() as conn:
        return sorted((await conn.execute(sa.select(Item.external_id))).scalars())


async def cursors(engine: Any) -> list[tuple[str, Any, datetime]]:
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(sa.select(Cursor.connector, Cursor.value, Cursor.updated_at))]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("2d", timedelta(days=2)),
        (" 1W ", timedelta(weeks=1)),
    ],
)
def test_durations_in_minutes_hours_days_and_weeks(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2", "not a duration"),
        ("two days", "not a duration"),
        ("1.5d", "not a duration"),
        ("-2d", "not a duration"),
        ("2y", "not a duration"),
        ("", "not a duration"),
        ("0h", "more than 0"),
        ("99999w", "at most 3650 days"),
    ],
)
def test_other_durations_are_refused_saying_what_is_accepted(text: str, problem: str) -> None:
    with pytest.raises(BackfillError, match=problem) as refused:
        parse_duration(text)
    assert "30m" in str(refused.value) or "3650" in str(refused.value) or "more than 0" in str(refused.value)


def test_unknown_disabled_and_historyless_connectors_are_refused(tmp_path, x) -> None:
    settings = make_settings(
        tmp_path,
        connectors=[
            x_config(x),
            {**x_config(x), "name": "old-x", "enabled": False},
            {"name": "hook", "type": "webhook", "secret": "0123456789abcdef0123"},
            {"name": "feed", "type": "jsonl", "path": "feed.jsonl"},
        ],
    )
    assert connector_settings(settings, X_NAME, registry).name == X_NAME
    for name, problem in [
        ("nope", "no connector named 'nope' in the config; configured: acme-x, old-x, hook, feed"),
        ("old-x", "is disabled"),
        ("hook", "receives pushed items: it has no history to fetch"),
        ("feed", "cannot reach back in time"),
    ]:
        with pytest.raises(BackfillError, match=problem):
            connector_settings(settings, name, registry)


async def test_a_transient_error_mid_backfill_waits_as_a_poll_would_and_resumes_after_the_last_safe_page(
    tmp_path, x, engine, clock
):
    old = [x.add_customer_post(f"old question {n}", author=f"c{n}", minutes_ago=600 + n) for n in range(3)]
    dm = x.add_dm("my refund?", author="dana", minutes_ago=300)
    settings = make_settings(tmp_path, connectors=[x_config(x)])
    out = Console(file=io.StringIO(), width=200)
    display = BackfillDisplay(out)
    sleeps = Sleeps()
    failed: list[int] = []

    def report(progress: BackfillProgress) -> None:
        display.update(progress)
        if progress.pages == 1 and not failed:
            # The mentions are stored (their page carried a cursor); the DM listing fails once, as X sometimes does.
            failed.append(progress.pages)
            x.faults.append(Fault(503, {}, '{"title": "Service Unavailable"}'))

    with display:
        result = await run_backfill(
            settings, X_NAME, timedelta(days=2), report=report, engine=engine, clock=clock, sleep=sleeps
        )
    print_backfill(out, result)
    assert await stored_ids(engine) == sorted([*old, dm])
    assert (result.stored, result.retries, result.overdue) == (4, 1, 4)
    assert len(sleeps.delays) == 1 and 5 <= sleeps.delays[0] <= 10  # the poller's first backoff
    mentions = [r for r in x.fetch_requests() if "mentions" in r.path]
    # The retry resumed from the mentions' cursor (since_id), not from the start of the history.
    assert "since_id" not in mentions[0].query and mentions[1].query["since_id"] == max(old, key=int)
    assert await cursors(engine) == []  # the live cursor was never written
    text = out.file.getvalue()
    assert "Backfill of acme-x (x), 2d back" in text and "503" in text


async def test_a_rate_limit_waits_for_the_vendors_reset(tmp_path, x, engine, clock):
    x.add_customer_post("old question", minutes_ago=600)
    x.faults.append(x.fault_rate_limited(reset_in=120))
    sleeps = Sleeps()
    target = connector_settings(make_settings(tmp_path, connectors=[x_config(x)]), X_NAME, registry)
    inbox_ingestor = (await _inbox(tmp_path, engine, clock, x)).ingestor
    result = await Backfill(target, inbox_ingestor, 2 * DAY, types=registry, sleep=sleeps).run()
    assert result.stored == 1 and len(sleeps.delays) == 1 and 110 <= sleeps.delays[0] <= 130


async def test_rate_limits_in_a_row_wait_for_each_reset_and_are_not_failures(tmp_path, x, engine, clock):
    x.add_customer_post("old question", minutes_ago=600)
    x.faults.extend(x.fault_rate_limited(reset_in=900) for _ in range(4))
    sleeps = Sleeps()
    target = connector_settings(make_settings(tmp_path, connectors=[x_config(x)]), X_NAME, registry)
    inbox_ingestor = (await _inbox(tmp_path, engine, clock, x)).ingestor
    # More refusals than the failures a backfill tolerates: X's Basic tier refuses most reads of a long history.
    result = await Backfill(target, inbox_ingestor, 2 * DAY, types=registry, sleep=sleeps, max_attempts=3).run()
    assert result.stored == 1 and len(sleeps.delays) == 4
    assert all(890 <= delay <= 905 for delay in sleeps.delays)  # each the vendor's reset plus a second or two


async def test_an_auth_error_stops_with_a_clear_message_and_repeated_errors_give_up(tmp_path, x, engine, clock):
    x.add_customer_post("old question", minutes_ago=600)
    target = connector_settings(make_settings(tmp_path, connectors=[x_config(x)]), X_NAME, registry)
    ingestor = (await _inbox(tmp_path, engine, clock, x)).ingestor
    x.faults.append(x.fault_unauthorized())
    sleeps = Sleeps()
    with pytest.raises(BackfillError, match=r"credentials refused.*inbox check"):
        await Backfill(target, ingestor, 2 * DAY, types=registry, sleep=sleeps).run()
    assert sleeps.delays == []  # credentials do not fix themselves by waiting

    x.faults.extend(Fault(502, {}, "Bad Gateway") for _ in range(3))
    with pytest.raises(BackfillError, match=r"gave up after 3 failed attempts in a row.*run the same backfill again"):
        await Backfill(
            target, ingestor, 2 * DAY, types=registry, sleep=sleeps, max_attempts=3, jitter=lambda low, high: high
        ).run()
    assert sleeps.delays == [10.0, 20.0]  # the poller's exponential backoff
    assert await stored_ids(engine) == []


async def test_google_play_says_it_reaches_back_only_seven_days(tmp_path, engine, clock):
    play = GooglePlayFake()
    play.now = clock.now
    await play.start()
    try:
        recent = play.add_review("crashes on start", author="ola", minutes_ago=3 * 24 * 60)
        play.add_review("too old for Play to list", author="per", minutes_ago=9 * 24 * 60)
        config = {
            "name": "acme-android",
            "type": "google_play",
            "api_url": play.base_url,
            "package_name": PACKAGE,
            "access_token": ACCESS_TOKEN,
        }
        result = await run_backfill(
            make_settings(tmp_path, connectors=[config]), "acme-android", timedelta(days=30), engine=engine, clock=clock
        )
    finally:
        await play.close()
    assert result.note == "google_play lists only the last 1w: the backfill reaches back 1w, not 30d"
    assert result.horizon == result.started_at - timedelta(days=7)
    assert await stored_ids(engine) == [play.external_id(recent)]


async def test_a_backfill_beside_a_live_poll_stores_everything_once_and_leaves_the_cursor_to_the_poll(
    tmp_path, engine, clock
):
    mastodon = await MastodonFake().start()
    mastodon.now = clock.now
    try:
        old = [
            mastodon.add_customer_post(f"old {n}", author=f"o{n}", minutes_ago=600 - n) for n in range(45)
        ]  # two pages
        new = [mastodon.add_customer_post(f"new {n}", author=f"n{n}", minutes_ago=5 - n) for n in range(3)]
        config = {**mastodon_config.__wrapped__(mastodon), "first_poll_hours": 1}  # type: ignore[attr-defined]
        inbox = await _inbox(tmp_path, engine, clock, config=config)
        poller = inbox.pollers[config["name"]]
        target = connector_settings(inbox.settings, config["name"], registry)
        polled, backfilled = await asyncio.gather(
            poller.poll_once(), Backfill(target, inbox.ingestor, 2 * DAY, types=registry).run()
        )
        cursor = await load_cursor(engine, config["name"])
        before = await cursors(engine)
        again = await Backfill(target, inbox.ingestor, 2 * DAY, types=registry).run()
        await close_connectors(inbox)
    finally:
        await mastodon.close()
    assert await stored_ids(engine) == sorted([*old, *new])
    assert polled.stored + backfilled.stored == 48 and backfilled.stored >= 45
    assert cursor == {"notification_id": mastodon.notifications[-1]["id"]}  # the live poll's, as it saved it
    assert (again.stored, again.known, again.fetched) == (0, 48, 48) and await cursors(engine) == before
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(Thread))).scalar_one() == 48


async def _inbox(
    tmp_path: Any, engine: Any, clock: FakeClock, x: XFake | None = None, *, config: dict[str, Any] | None = None
) -> Any:
    from inbox.service import Inbox

    table = config if config is not None else x_config(x)
    return Inbox(make_settings(tmp_path, connectors=[table]), engine, clock=clock, notifiers=[])
