"""CSAT end to end on both stores: resolve with a reply, time passes, one question on the right endpoint, the answer.

Over X DMs, Mastodon direct messages and the webhook callback, with the real connectors against their local fakes
and an injected clock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inbox.connector import Kind, RawItem
from inbox.connectors.webhook import sign
from inbox.fakes.mastodon import MastodonFake
from inbox.fakes.x import XFake
from inbox.pipeline.ingest import Source
from inbox.reports import Window, build_report, conversation_rows, csv_text, report_json
from inbox.server import build_app
from inbox.settings import ConfigError
from inbox.slack import blocks
from inbox.store import csat as store_csat
from inbox.store.models import CsatQuestion, Event, EventKind, Item, Status, Thread
from inbox.views import thread_view
from tests.conftest import FakeClock, Recorder, close_connectors, make_settings
from tests.connectors.test_mastodon import TOKEN as MASTODON_TOKEN
from tests.connectors.test_x import config as x_config

CSAT = {"enabled": True, "ask_after_minutes": 30, "answer_hours": 48}
SECRET = "s3cret-s3cret-s3cret"


async def questions(engine: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(sa.select(CsatQuestion).order_by(CsatQuestion.id)))


async def thread_row(engine: Any, thread_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(Thread).where(Thread.id == thread_id))).one()


async def thread_count(engine: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(Thread))).scalar_one())


async def event_kinds(engine: Any, thread_id: int) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(Event.kind).where(Event.thread_id == thread_id).order_by(Event.id))
        return list(rows.scalars())


@pytest.fixture
def clock() -> FakeClock:
    # The connectors reach back `first_poll_hours` from the wall clock: the test clock starts at the real time.
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


# -- X DMs ------------------------------------------------------------------------------------------------------------


@pytest.fixture
async def inbox(x_fake: XFake, inbox_factory: Any) -> AsyncIterator[Any]:
    """An inbox with CSAT on and the X connector, its sessions closed after the test."""
    built = inbox_factory(connectors=[x_config(x_fake)], csat=CSAT)
    yield built
    await close_connectors(built)


async def x_conversation(inbox: Any, fake: XFake, engine: Any, clock: FakeClock, text: str = "charged twice") -> int:
    """A customer's DM, polled and answered by an agent: the thread id."""
    fake.now = clock.now
    dm = fake.add_dm(text, author="dana", minutes_ago=0)
    await inbox.pollers["acme-x"].poll_once()
    async with engine.connect() as conn:
        thread_id = int((await conn.execute(sa.select(Item.thread_id).where(Item.external_id == dm))).scalar_one())
    clock.advance(minutes=5)
    assert (await inbox.actions.reply(thread_id, "Refunded, sorry Dana.", "ana")).status == "sent"
    return thread_id


async def x_asked(inbox: Any, fake: XFake, engine: Any, clock: FakeClock) -> int:
    """A DM conversation answered, resolved, and asked once ask_after_minutes have passed: the thread id."""
    thread_id = await x_conversation(inbox, fake, engine, clock)
    await inbox.actions.resolve(thread_id, "ana")
    clock.advance(minutes=31)
    await inbox.sweep.run()
    return thread_id


async def customer_dm(inbox: Any, fake: XFake, clock: FakeClock, text: str) -> Any:
    fake.now = clock.now
    fake.add_dm(text, author="dana", minutes_ago=0)
    return await inbox.pollers["acme-x"].poll_once()


async def test_x_dm_resolved_with_a_reply_gets_one_question_and_the_answer_is_stored_not_a_conversation(
    x_fake: XFake, inbox_factory: Any, engine: Any, clock: FakeClock
) -> None:
    recorder = Recorder()
    inbox = inbox_factory(recorder, connectors=[x_config(x_fake)], csat=CSAT)
    try:
        thread_id = await x_conversation(inbox, x_fake, engine, clock)
        await inbox.actions.resolve(thread_id, "ana")
        [question] = await questions(engine)
        assert (question.status, question.ask_at) == ("scheduled", clock.now + timedelta(minutes=30))
        # Not before ask_after_minutes.
        clock.advance(minutes=29)
        await inbox.sweep.run()
        assert len(x_fake.replies_by_kind["dm"]) == 1
        clock.advance(minutes=1)
        assert (await inbox.sweep.run()).csat_asked == 1
        await inbox.sweep.run()  # a second sweep sends nothing
        dms = x_fake.replies_by_kind["dm"]
        conversation = "-".join(sorted((x_fake.brand["id"], x_fake.user("dana")["id"]), key=int))
        assert len(dms) == 2 and dms[1].target == conversation
        assert "1 to 5" in dms[1].text and x_fake.replies_by_kind["tweet"] == []
        threads = await thread_count(engine)
        clock.advance(hours=2)
        result = await customer_dm(inbox, x_fake, clock, "5")
        assert (result.error, result.stored) == (None, 1)
        [question] = await questions(engine)
        assert (question.status, question.score, question.answered_at) == ("answered", 5, clock.now)
        assert await thread_count(engine) == threads
        thread = await thread_row(engine, thread_id)
        assert (thread.status, thread.cycle) == (Status.RESOLVED, 1)
        kinds = await event_kinds(engine, thread_id)
        assert kinds.count(EventKind.CSAT_ASKED) == 1 and kinds[-1] == EventKind.CSAT_ANSWERED
        assert EventKind.FOLLOW_UP not in kinds
        await inbox.outbox.dispatch()
        assert recorder.kinds()[-1] == EventKind.CSAT_ANSWERED
        # The Slack message (the thread's view) shows the answer.
        view = await thread_view(engine, inbox.policies, thread_id, clock.now)
        assert view is not None and (view.csat_status, view.csat_score) == ("answered", 5)
        assert "the customer answered *5/5* ★★★★★" in json.dumps(
            blocks.triage_message(view, blocks.Outcome()), ensure_ascii=False
        )
        assert await store_csat.csat_counts(engine, [thread_id]) == {thread_id: (1, 1, 1, 5)}
        day = timedelta(days=1)
        assert await store_csat.answers_between(engine, clock.now - day, clock.now) == (1, 1, 1, None)
        assert await store_csat.answers_between(engine, clock.now - 2 * day, clock.now - day) == (0, 0, 0, None)
        # The report counts the question and its answer, and the conversation's row has the score.
        window = Window(clock.now - day, clock.now)
        [row] = report_json(await build_report(engine, inbox.settings, window, None, clock.now))["rows"]
        assert row["csat"] == {"questions": 1, "answers": 1, "satisfied": 1.0, "response_rate": 1.0}
        assert (row["conversations"], row["met"], row["first_response_minutes"]["p50"]) == (1, 1, 5.0)
        [conversation] = await conversation_rows(engine, inbox.settings, window, clock.now)
        assert (conversation.csat, conversation.replied_by, conversation.sla_outcome) == (5, "ana", "met")
        # A later message is a normal follow-up that reopens the conversation.
        await customer_dm(inbox, x_fake, clock, "4")
        thread = await thread_row(engine, thread_id)
        assert (thread.status, thread.cycle) == (Status.NEW, 2)
    finally:
        await close_connectors(inbox)


async def test_a_next_message_that_is_no_rating_is_a_follow_up_and_closes_the_question(
    x_fake: XFake, inbox: Any, engine: Any, clock: FakeClock
) -> None:
    thread_id = await x_asked(inbox, x_fake, engine, clock)
    await customer_dm(inbox, x_fake, clock, "5 minutes later still nothing")
    [question] = await questions(engine)
    assert (question.status, question.score) == ("closed", None)
    assert (await thread_row(engine, thread_id)).status == Status.NEW
    # Its answer after that no longer counts: "5" is a follow-up too.
    await customer_dm(inbox, x_fake, clock, "5")
    assert (await questions(engine))[0].score is None


async def test_an_answer_after_answer_hours_is_a_follow_up(
    x_fake: XFake, inbox: Any, engine: Any, clock: FakeClock
) -> None:
    thread_id = await x_asked(inbox, x_fake, engine, clock)
    clock.advance(hours=49)
    await customer_dm(inbox, x_fake, clock, "5")
    [question] = await questions(engine)
    assert (question.status, question.score) == ("closed", None)
    assert (await thread_row(engine, thread_id)).status == Status.NEW


async def test_a_conversation_is_never_asked_twice(x_fake: XFake, inbox: Any, engine: Any, clock: FakeClock):
    thread_id = await x_asked(inbox, x_fake, engine, clock)
    await customer_dm(inbox, x_fake, clock, "5")
    # The customer comes back, is answered, and the conversation is resolved again.
    clock.advance(hours=1)
    await customer_dm(inbox, x_fake, clock, "one more thing: the invoice?")
    assert (await inbox.actions.reply(thread_id, "Sent by email.", "ana")).status == "sent"
    await inbox.actions.resolve(thread_id, "ana")
    clock.advance(hours=2)
    await inbox.sweep.run()
    assert len(await questions(engine)) == 1
    assert len(x_fake.replies_by_kind["dm"]) == 3  # two replies, one question


async def test_resolved_without_a_reply_or_reopened_before_the_question_is_due_is_not_asked(
    x_fake: XFake, inbox: Any, engine: Any, clock: FakeClock
) -> None:
    thread_id = await x_conversation(inbox, x_fake, engine, clock)
    x_fake.now = clock.now
    dm = x_fake.add_dm("hello?", author="eve", minutes_ago=0)
    await inbox.pollers["acme-x"].poll_once()
    async with engine.connect() as conn:
        silent = (await conn.execute(sa.select(Item.thread_id).where(Item.external_id == dm))).scalar_one()
    await inbox.actions.resolve(silent, "ana")  # no reply: never asked
    await inbox.actions.resolve(thread_id, "ana")
    clock.advance(minutes=10)
    await customer_dm(inbox, x_fake, clock, "actually, one more question")
    clock.advance(minutes=30)
    await inbox.sweep.run()
    [question] = await questions(engine)
    assert (question.thread_id, question.status) == (thread_id, "cancelled")
    assert len(x_fake.replies_by_kind["dm"]) == 1
    # Answered and resolved again: now it is asked, once.
    await inbox.actions.reply(thread_id, "Here you go.", "ana")
    await inbox.actions.resolve(thread_id, "ana")
    clock.advance(minutes=31)
    await inbox.sweep.run()
    await inbox.sweep.run()
    assert [q.status for q in await questions(engine)] == ["sent"]
    assert len(x_fake.replies_by_kind["dm"]) == 3


async def test_csat_off_asks_nothing(x_fake: XFake, inbox_factory: Any, engine: Any, clock: FakeClock) -> None:
    inbox = inbox_factory(connectors=[x_config(x_fake)])
    try:
        thread_id = await x_conversation(inbox, x_fake, engine, clock)
        await inbox.actions.resolve(thread_id, "ana")
        clock.advance(hours=2)
        await inbox.sweep.run()
        assert await questions(engine) == []
        await customer_dm(inbox, x_fake, clock, "5")
        assert (await thread_row(engine, thread_id)).status == Status.NEW
    finally:
        await close_connectors(inbox)


async def test_a_public_mention_is_never_asked(x_fake: XFake, inbox_factory: Any, engine: Any, clock: FakeClock):
    inbox = inbox_factory(connectors=[x_config(x_fake)], csat=CSAT)
    try:
        post = x_fake.add_customer_post("@tweepy_dev where is my parcel", author="fred", minutes_ago=2)
        await inbox.pollers["acme-x"].poll_once()
        async with engine.connect() as conn:
            thread_id = (await conn.execute(sa.select(Item.thread_id).where(Item.external_id == post))).scalar_one()
        await inbox.actions.reply(thread_id, "On its way!", "ana")
        await inbox.actions.resolve(thread_id, "ana")
        clock.advance(hours=1)
        await inbox.sweep.run()
        assert await questions(engine) == []
        assert len(x_fake.replies_by_kind["tweet"]) == 1
    finally:
        await close_connectors(inbox)


# -- crash safety -----------------------------------------------------------------------------------------------------


async def test_a_restart_between_scheduling_and_sending_sends_once(
    x_fake: XFake, inbox_factory: Any, engine: Any, clock: FakeClock
) -> None:
    first = inbox_factory(connectors=[x_config(x_fake)], csat=CSAT)
    thread_id = await x_conversation(first, x_fake, engine, clock)
    await first.actions.resolve(thread_id, "ana")
    await close_connectors(first)  # the process dies with the question scheduled
    clock.advance(minutes=31)
    second = inbox_factory(connectors=[x_config(x_fake)], csat=CSAT)
    try:
        await second.sweep.run()
        await second.sweep.run()
    finally:
        await close_connectors(second)
    assert len(x_fake.replies_by_kind["dm"]) == 2
    assert [q.status for q in await questions(engine)] == ["sent"]


async def test_a_crash_after_claiming_sends_once_when_the_claim_runs_out(
    x_fake: XFake, inbox_factory: Any, engine: Any, clock: FakeClock
) -> None:
    first = inbox_factory(connectors=[x_config(x_fake)], csat=CSAT)
    thread_id = await x_conversation(first, x_fake, engine, clock)
    await first.actions.resolve(thread_id, "ana")
    clock.advance(minutes=31)
    # The dead worker claimed it and died before sending: nobody else touches it while its claim holds.
    assert first.csat is not None
    await store_csat.claim_due(engine, clock.now, first.csat._claim(clock.now))
    await close_connectors(first)
    second = inbox_factory(connectors=[x_config(x_fake)], csat=CSAT)
    try:
        await second.sweep.run()
        assert len(x_fake.replies_by_kind["dm"]) == 1
        clock.advance(seconds=first.csat.claim.total_seconds() + 1)
        await second.sweep.run()
        await second.sweep.run()
    finally:
        await close_connectors(second)
    assert len(x_fake.replies_by_kind["dm"]) == 2
    [question] = await questions(engine)
    assert (question.status, question.attempts) == ("sent", 2)


async def test_a_question_sent_but_not_recorded_before_a_crash_is_found_on_x_not_resent(
    x_fake: XFake, inbox_factory: Any, engine: Any, clock: FakeClock
) -> None:
    first = inbox_factory(connectors=[x_config(x_fake)], csat=CSAT)
    thread_id = await x_conversation(first, x_fake, engine, clock)
    await first.actions.resolve(thread_id, "ana")
    clock.advance(minutes=31)
    assert first.csat is not None

    async def crash(*args: Any) -> None:
        raise SystemExit("the process died right after X took the DM")

    real = store_csat.mark_sent
    store_csat.mark_sent = crash  # type: ignore[assignment]
    try:
        with pytest.raises(SystemExit):
            await first.sweep.run()
    finally:
        store_csat.mark_sent = real  # type: ignore[assignment]
        await close_connectors(first)
    assert len(x_fake.replies_by_kind["dm"]) == 2
    clock.advance(seconds=first.csat.claim.total_seconds() + 1)
    second = inbox_factory(connectors=[x_config(x_fake)], csat=CSAT)
    try:
        await second.sweep.run()
    finally:
        await close_connectors(second)
    assert len(x_fake.replies_by_kind["dm"]) == 2
    [question] = await questions(engine)
    assert question.status == "sent"


# -- Mastodon direct --------------------------------------------------------------------------------------------------


@pytest.fixture
async def mastodon() -> AsyncIterator[MastodonFake]:
    server = await MastodonFake().start()
    yield server
    await server.close()


async def test_mastodon_direct_gets_a_direct_question_and_its_answer_is_stored(
    mastodon: MastodonFake, inbox_factory: Any, engine: Any, clock: FakeClock
) -> None:
    mastodon.now = clock.now
    table = {"name": "masto", "type": "mastodon", "api_url": mastodon.base_url, "access_token": MASTODON_TOKEN}
    inbox = inbox_factory(connectors=[table], csat=CSAT)
    try:
        dm = mastodon.add_customer_post("ma commande est en retard", author="zoe", visibility="direct", minutes_ago=2)
        public = mastodon.add_customer_post("do you ship to Peru?", author="luis", minutes_ago=2)
        await inbox.pollers["masto"].poll_once()
        async with engine.connect() as conn:
            ids = dict((await conn.execute(sa.select(Item.external_id, Item.thread_id))).all())
        for external_id in (dm, public):
            await inbox.actions.reply(ids[external_id], "Merci, c'est réglé.", "ana")
            await inbox.actions.resolve(ids[external_id], "ana")
        clock.advance(minutes=31)
        await inbox.sweep.run()
        [question] = mastodon.replies[2:]
        assert (question.target, question.details["visibility"]) == (dm, "direct")
        assert question.details["status"].startswith("@zoe ") and "1 à 5" in question.text  # in French
        threads = await thread_count(engine)
        mastodon.now = clock.now
        answer = mastodon.add_customer_post(
            "⭐⭐⭐⭐", author="zoe", visibility="direct", minutes_ago=0, reply_to=question.details["id"]
        )
        await inbox.pollers["masto"].poll_once()
        [row] = await questions(engine)
        assert (row.thread_id, row.status, row.score) == (ids[dm], "answered", 4)
        assert await thread_count(engine) == threads
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.select(Item.thread_id).where(Item.external_id == answer))).scalar_one()
        assert stored == ids[dm] and (await thread_row(engine, ids[dm])).status == Status.RESOLVED
    finally:
        await close_connectors(inbox)


# -- the webhook callback ---------------------------------------------------------------------------------------------


async def test_webhook_callback_gets_the_question_and_a_pushed_answer_is_stored(
    inbox_factory: Any, engine: Any, clock: FakeClock
) -> None:
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        raw = await request.read()
        assert request.headers["X-Inbox-Signature"] == sign(SECRET, raw)
        received.append(json.loads(raw))
        return web.json_response({"id": f"r-{len(received)}"})

    app = web.Application()
    app.router.add_post("/replies", receive)

    def push(item_id: str, text: str) -> bytes:
        return json.dumps(
            {
                "id": item_id,
                "text": text,
                "posted_at": clock.now.isoformat(),
                "kind": "dm",
                "thread_id": "chat-7",
                "author": {"handle": "bob"},
            }
        ).encode()

    async with TestServer(app) as server:
        table = {"name": "shop", "type": "webhook", "secret": SECRET, "reply_url": str(server.make_url("/replies"))}
        inbox = inbox_factory(connectors=[table], csat=CSAT)
        async with TestClient(TestServer(build_app(inbox))) as client:
            data = push("m1", "my order never came")
            response = await client.post("/webhooks/shop", data=data, headers={"X-Inbox-Signature": sign(SECRET, data)})
            assert response.status == 202
            async with engine.connect() as conn:
                thread_id = (await conn.execute(sa.select(Item.thread_id))).scalar_one()
            await inbox.actions.reply(thread_id, "Sent again today.", "ana")
            await inbox.actions.resolve(thread_id, "ana")
            clock.advance(minutes=31)
            await inbox.sweep.run()
            assert [r["thread_id"] for r in received] == ["chat-7", "chat-7"]
            assert received[1]["to"] == "bob" and "1 to 5" in received[1]["text"]
            clock.advance(minutes=5)
            data = push("m2", "4/5")
            response = await client.post("/webhooks/shop", data=data, headers={"X-Inbox-Signature": sign(SECRET, data)})
            assert response.status == 202
        await inbox.close()
    [row] = await questions(engine)
    assert (row.status, row.score, row.external_id) == ("answered", 4, "r-2")
    assert (await thread_row(engine, thread_id)).status == Status.RESOLVED


# -- reviews: the stars before and after ------------------------------------------------------------------------------


async def test_a_review_keeps_its_first_stars_and_follows_its_edits(inbox_factory: Any, engine: Any, clock: FakeClock):
    inbox = inbox_factory()
    source = Source("acme-google", "google_reviews")

    def version(external_id: str, stars: int, minutes: int) -> RawItem:
        when = datetime(2026, 11, 23, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        return RawItem(external_id, "meh", when, Kind.REVIEW, "Cora", thread_id="rev-1", rating=stars)

    await inbox.ingestor.ingest(source, [version("rev-1", 2, 0)])
    async with engine.connect() as conn:
        thread_id = (await conn.execute(sa.select(Thread.id))).scalar_one()
    assert ((t := await thread_row(engine, thread_id)).rating_before, t.rating_after) == (2, 2)
    await inbox.ingestor.ingest(source, [version("rev-1@1", 4, 60), version("rev-1@2", 5, 90)])
    assert ((t := await thread_row(engine, thread_id)).rating_before, t.rating_after) == (2, 5)
    await inbox.ingestor.ingest(source, [version("rev-1@3", 1, 120)])
    assert ((t := await thread_row(engine, thread_id)).rating_before, t.rating_after) == (2, 1)
    # The report's row: the stars when the conversation opened, and now.
    window = Window(datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC))
    [row] = await conversation_rows(engine, inbox.settings, window, clock.now)
    assert (row.rating_before, row.rating_after, row.kind, row.csat) == (2, 1, "review", None)
    assert csv_text([row]).splitlines()[1].endswith(",,2,1")


# -- config -----------------------------------------------------------------------------------------------------------


def test_a_review_site_in_csat_channels_is_refused_by_key_path(tmp_path: Any) -> None:
    with pytest.raises(ConfigError) as refused:
        make_settings(tmp_path, csat={"enabled": True, "channels": ["x", "google_reviews", "fax"], "answer_hours": 0})
    assert refused.value.problems[0].startswith("csat.channels[1]: 'google_reviews' is a review site")
    assert refused.value.problems[1].startswith("csat.channels[2]: 'fax' is not a connector type")
    assert refused.value.problems[2] == "csat.answer_hours: Input should be greater than 0"


async def test_channels_limit_the_types_asked(x_fake: XFake, inbox_factory: Any, engine: Any, clock: FakeClock):
    inbox = inbox_factory(connectors=[x_config(x_fake)], csat={**CSAT, "channels": ["mastodon"]})
    try:
        thread_id = await x_conversation(inbox, x_fake, engine, clock)
        await inbox.actions.resolve(thread_id, "ana")
        assert await questions(engine) == []
    finally:
        await close_connectors(inbox)


async def test_a_refused_question_is_not_retried_and_an_unanswered_one_is_sent_again_once(
    inbox_factory: Any, engine: Any, clock: FakeClock
) -> None:
    answers = {"c1": [400], "c2": [503, 200, 200]}  # per conversation: the statuses reply_url answers, in turn
    received: list[str] = []

    async def receive(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        received.append(body["thread_id"])
        status = answers[body["thread_id"]].pop(0) if len(received) > 2 else 200  # the agents' replies pass
        return web.json_response({"id": f"r-{len(received)}"}, status=status)

    app = web.Application()
    app.router.add_post("/replies", receive)
    async with TestServer(app) as server:
        table = {"name": "shop", "type": "webhook", "secret": SECRET, "reply_url": str(server.make_url("/replies"))}
        inbox = inbox_factory(connectors=[table], csat=CSAT)
        source = Source("shop", "webhook")
        for key in ("c1", "c2"):
            item = RawItem(key, "where is it", clock.now, Kind.DM, f"customer-{key}", thread_id=key)
            await inbox.ingestor.ingest(source, [item])
        async with engine.connect() as conn:
            threads = dict((await conn.execute(sa.select(Thread.external_id, Thread.id))).all())
        for key in ("c1", "c2"):
            assert (await inbox.actions.reply(threads[key], "Found it.", "ana")).status == "sent"
            await inbox.actions.resolve(threads[key], "ana")
        clock.advance(minutes=31)
        await inbox.sweep.run()  # c1 refused (400), c2 unanswered (503)
        clock.advance(minutes=1)
        await inbox.sweep.run()  # c2 again, once
        await inbox.sweep.run()
        await inbox.close()
    assert received == ["c1", "c2", "c1", "c2", "c2"]
    status = {q.thread_id: (q.status, q.attempts) for q in await questions(engine)}
    assert status == {threads["c1"]: ("failed", 1), threads["c2"]: ("sent", 2)}


def test_a_broken_question_template_folder_stops_the_start_with_exit_2(tmp_path: Path) -> None:
    folder = tmp_path / "csat"
    folder.mkdir()
    (folder / "csat.fr.j2").write_text("{% if %}broken\n")
    config = tmp_path / "inbox.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "inbox.db"}"\n[csat]\nenabled = true\ntemplates = "csat"\n'
    )
    run = subprocess.run(
        [sys.executable, "-m", "inbox", "queue", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "INBOX_CONFIG": ""},
        timeout=60,
    )
    assert run.returncode == 2
    assert "csat.fr.j2: " in run.stderr and "csat.en.j2 is missing" in run.stderr
