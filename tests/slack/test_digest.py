"""`[reports] digest`: the weekly summary with its chart, posted to the leads' channel once a week, whatever happens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from inbox.fakes.slack import Fault
from inbox.service import Runner
from inbox.slack.digest import Digest, slot_before, week_before
from inbox.store.models import ReportDigest
from tests.slack.conftest import AGENT, LEADS, Harness, HarnessFactory

PARIS = ZoneInfo("Europe/Paris")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_the_slot_is_the_latest_weekday_and_time_at_or_before_now():
    monday_9 = datetime(2026, 11, 30, 9, 0, tzinfo=PARIS)
    assert slot_before(monday_9, "mon 09:00", PARIS) == monday_9
    assert slot_before(monday_9 - timedelta(seconds=1), "mon 09:00", PARIS) == monday_9 - timedelta(days=7)
    assert slot_before(datetime(2026, 12, 3, 12, 0, tzinfo=UTC), "mon 09:00", PARIS) == monday_9
    assert slot_before(monday_9, "", PARIS) is None
    week = week_before(monday_9, PARIS)
    assert (week.start, week.end) == (
        datetime(2026, 11, 23, 0, 0, tzinfo=PARIS).astimezone(UTC),
        datetime(2026, 11, 30, 0, 0, tzinfo=PARIS).astimezone(UTC),
    )
    assert week_before(monday_9, PARIS, weeks=2).end == week.start


async def digest_harness(harness_factory: HarnessFactory) -> Harness:
    # Slots on Mondays at 09:00 UTC (the fake clock starts on Monday 23 November 2026, 10:00 UTC).
    return await harness_factory(tables={"reports": {"digest": "mon 09:00", "timezone": "UTC"}})


async def last_week_traffic(harness: Harness) -> None:
    """Now: one conversation answered in 5 minutes, one in 50."""
    for external_id, waited in [("1", 5), ("2", 50)]:
        thread = await harness.customer_says(external_id, handle=f"c{external_id}", minutes_ago=waited)
        assert (await harness.inbox.actions.reply(thread, "Thanks!", AGENT)).status == "sent"


def uploads(harness: Harness) -> list[dict]:
    return [m for m in harness.fake.posted(LEADS) if m.get("files")]


async def test_the_digest_is_posted_with_its_chart_once_the_slot_has_come(harness_factory: HarnessFactory):
    harness = await digest_harness(harness_factory)
    digest = harness.slack.digest
    assert digest is not None
    harness.clock.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)  # Sunday: the last slot (Monday 23) is a day past
    assert await digest.run() is False
    await last_week_traffic(harness)
    harness.clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    assert await digest.run() is True
    [message] = uploads(harness)
    text = message["text"]
    assert "Mon 23 Nov to Sun 29 Nov 2026" in text
    assert "SLA attainment: *50%* (1 met, 1 missed)" in text
    assert "Conversations: 2 (last week 0)" in text
    [shared] = message["files"]
    stored = harness.fake.files[shared["id"]]
    assert stored["data"].startswith(PNG_MAGIC) and stored["channels"] == [LEADS]
    # The three steps of the external upload, in order, through the real client.
    steps = [c.method for c in harness.fake.calls if c.method.startswith("files.")]
    assert steps == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    # Once: the next rounds of the same week find it posted, and a restarted worker too.
    harness.clock.advance(minutes=5)
    assert await digest.run() is False
    restarted = Digest(harness.slack.core, harness.slack.client, LEADS, "another-worker")
    assert await restarted.run() is False
    assert len(uploads(harness)) == 1
    # The next week's slot posts the next one, comparing with this one.
    harness.clock.now = datetime(2026, 12, 7, 9, 0, 30, tzinfo=UTC)
    assert await digest.run() is True
    assert "Conversations: 0 (last week 2)" in uploads(harness)[-1]["text"]


async def test_several_workers_post_it_once(harness_factory: HarnessFactory):
    harness = await digest_harness(harness_factory)
    harness.clock.now = datetime(2026, 11, 30, 9, 1, tzinfo=UTC)
    core, client = harness.slack.core, harness.slack.client
    workers = [Digest(core, client, LEADS, f"worker-{n}") for n in range(4)]
    posted = await asyncio.gather(*(w.run() for w in workers))
    assert sorted(posted) == [False, False, False, True]
    assert len(uploads(harness)) == 1


async def test_a_crash_after_the_upload_does_not_post_it_twice(harness_factory: HarnessFactory):
    harness = await digest_harness(harness_factory)
    harness.clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    digest = harness.slack.digest
    assert digest is not None
    # Slack shares the file, but the answer is lost: the worker cannot tell whether it went out.
    harness.fake.fail("files.completeUploadExternal", Fault(status=500, happen=True))
    assert await digest.run() is False
    assert len(uploads(harness)) == 1
    harness.clock.advance(minutes=1)
    assert await digest.run() is False  # the claim still holds
    harness.clock.advance(minutes=10)  # the claim ran out: the channel shows the chart, so it is not posted again
    assert await digest.run() is False
    assert len(uploads(harness)) == 1
    async with harness.inbox.engine.connect() as conn:
        row = (await conn.execute(sa.select(ReportDigest))).one()
    assert row.posted_at is not None and row.file_id == uploads(harness)[0]["files"][0]["id"]


async def test_a_refused_post_is_tried_again_later(harness_factory: HarnessFactory):
    harness = await digest_harness(harness_factory)
    harness.clock.now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    digest = harness.slack.digest
    assert digest is not None
    harness.fake.fail("files.getUploadURLExternal", Fault(status=200, body={"ok": False, "error": "not_in_channel"}))
    assert await digest.run() is False
    assert uploads(harness) == []
    harness.clock.advance(minutes=1)
    assert await digest.run() is False  # waits before trying again
    harness.clock.advance(minutes=5)
    assert await digest.run() is True
    assert len(uploads(harness)) == 1


async def test_a_digest_a_day_late_is_skipped(harness_factory: HarnessFactory):
    harness = await digest_harness(harness_factory)
    harness.clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    digest = harness.slack.digest
    assert digest is not None and await digest.run() is False
    assert uploads(harness) == []


@pytest.mark.parametrize("digest", ["mon 09:00", ""])
async def test_inbox_run_schedules_it_only_when_set(harness_factory: HarnessFactory, digest: str):
    harness = await harness_factory(tables={"reports": {"digest": digest}})
    runner = Runner(harness.inbox)
    await runner.start()
    try:
        assert (runner.scheduler.get_job("report-digest") is not None) == bool(digest)
        assert ("report-digest" in harness.inbox.loops.report()) == bool(digest)
    finally:
        await runner.stop(grace=5)
