"""Platform reply windows on both stores: set at ingest, moved by the customer, swept once, shown when they matter,
and a send refused once the platform would refuse it; reply modes (a private reply) sent once each."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import BaseModel
from rich.console import Console

from inbox.cli.render import print_queue
from inbox.connector import (
    CHANNELS,
    Channel,
    Connector,
    ConnectorSettings,
    Kind,
    Page,
    ReplyMode,
    ReplyTarget,
    ReplyWindow,
    SentReply,
)
from inbox.pipeline.actions import ActionError, Actions
from inbox.pipeline.ingest import Source
from inbox.slack import blocks
from inbox.slack.blocks import Outcome
from inbox.store.models import Event, EventKind, Item, Reply, Thread, WindowStage
from inbox.views import open_queue, thread_view
from tests.conftest import FakeClock, thread_of
from tests.inbox.pipeline.test_actions import jsonl_connector, replies
from tests.inbox.pipeline.test_ingest import SOURCE, item

# A channel standing for Messenger: DMs have 24 h, 7 days with the connector's tag.
CHAT = Source(name="acme-chat", channel="chat")
TEMPLATE_HINT = "Send will use the approved template `order_update` (fr)"


@pytest.fixture(autouse=True)
def chat_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    window = ReplyWindow(timedelta(hours=24), timedelta(days=7))
    monkeypatch.setitem(
        CHANNELS, "chat", Channel("chat", "Chat", frozenset({Kind.DM, Kind.COMMENT}), reply_windows={Kind.DM: window})
    )


def dm(external_id: str, clock: FakeClock, minutes_ago: float = 1, **kw: Any) -> Any:
    return item(external_id, clock, minutes_ago, kind=Kind.DM, thread_id="conv-1", **kw)


async def thread_row(engine, thread_id: int) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(Thread).where(Thread.id == thread_id))).one()


async def events(engine, *kinds: EventKind) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Event.kind, Event.thread_id).where(Event.kind.in_(kinds)).order_by(Event.id)
        )
        return [(k, t) for k, t in rows]


class Settings(ConnectorSettings):
    type: str = "recording"


class Cursor(BaseModel):
    n: int = 0


class Recording(Connector[Settings, Cursor]):
    """A connector that keeps what reply() was given, and may send a template after the window (as WhatsApp)."""

    type = "recording"
    channel = "chat"

    def __init__(self, *, template: str | None = None) -> None:
        super().__init__(Settings(name="acme-chat"))
        self.template = template
        self.targets: list[tuple[ReplyTarget, str]] = []

    async def fetch(self, cursor: Cursor | None) -> AsyncIterator[Page[Cursor]]:
        return
        yield  # pragma: no cover

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        self.targets.append((target, text))
        return SentReply(f"sent-{len(self.targets)}")

    def after_window(self, kind: Kind, language: str) -> str | None:
        return self.template

    async def check(self) -> str:
        return "recording"


def actions_for(inbox: Any, connector: Connector[Any, Any], clock: FakeClock) -> Actions:
    return Actions(inbox.engine, {connector.name: connector}, clock)


async def test_the_window_comes_from_the_registry_and_moves_with_each_customer_message(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(CHAT, [dm("m1", clock, minutes_ago=60)])
    thread = await thread_of(engine, "m1")
    first = clock.now - timedelta(minutes=60)
    row = await thread_row(engine, thread)
    # The thread's door is the last moment any reply is taken: 7 days with the tag; the item keeps both.
    assert row.reply_window_closes_at == first + timedelta(days=7)
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(Item).where(Item.external_id == "m1"))).one()
    assert (stored.reply_window_closes_at, stored.extended_window_closes_at) == (
        first + timedelta(hours=24),
        first + timedelta(days=7),
    )
    clock.advance(hours=5)
    await inbox.ingestor.ingest(CHAT, [dm("m2", clock, minutes_ago=1)])
    moved = await thread_row(engine, thread)
    assert moved.reply_window_closes_at == clock.now - timedelta(minutes=1) + timedelta(days=7)
    # An older message arriving late does not move it back.
    await inbox.ingestor.ingest(CHAT, [dm("m0", clock, minutes_ago=600)])
    assert (await thread_row(engine, thread)).reply_window_closes_at == moved.reply_window_closes_at
    # Comments on this channel have no window; nor have today's channels (X mentions).
    await inbox.ingestor.ingest(CHAT, [item("c1", clock, kind=Kind.COMMENT, author_handle="eve")])
    await inbox.ingestor.ingest(SOURCE, [item("x1", clock, author_handle="ann")])
    for external_id in ("c1", "x1"):
        assert (await thread_row(engine, await thread_of(engine, external_id))).reply_window_closes_at is None


async def test_a_connector_gives_an_item_its_own_closing_time(inbox_factory, engine, clock):
    inbox = inbox_factory()
    closes = clock.now + timedelta(hours=3)
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, reply_window_closes_at=closes)])
    row = await thread_row(engine, await thread_of(engine, "1"))
    assert (row.reply_window_closes_at, row.window_stage) == (closes, WindowStage.NONE)


async def test_the_window_is_shown_only_when_nearer_than_the_sla_deadline(inbox_factory, engine, clock):
    inbox = inbox_factory()
    soon, later = clock.now + timedelta(minutes=10), clock.now + timedelta(hours=5)
    await inbox.ingestor.ingest(
        SOURCE,
        [
            item("soon", clock, reply_window_closes_at=soon, author_handle="ann"),
            item("later", clock, reply_window_closes_at=later, author_handle="bob"),
        ],
    )
    views = {v.author_handle: v for v in await open_queue(engine, inbox.policies, clock.now)}
    assert views["ann"].window_note() == "X's reply window closes in 10 min"
    assert views["bob"].window_note() is None  # the SLA deadline (30 min) comes first
    console = Console(record=True, width=160)
    print_queue(console, list(views.values()))
    shown = console.export_text()
    assert shown.count("reply window closes in") == 1 and "closes in 10 min" in shown
    narrow = Console(record=True, width=80)
    print_queue(narrow, list(views.values()))
    assert narrow.export_text().count("reply window closes in 10 min") == 1
    # Past the SLA deadline the window is the next door to close: it is shown.
    clock.advance(minutes=40)
    views = {v.author_handle: v for v in await open_queue(engine, inbox.policies, clock.now)}
    assert views["bob"].window_note() == "X's reply window closes in 4 h 20 min"
    assert views["ann"].window_note() == "X's reply window closed 30 min ago: a reply can no longer be sent"


async def test_leads_are_warned_once_before_it_closes_then_it_is_marked_closed(inbox_factory, engine, clock):
    a, b = inbox_factory(), inbox_factory()
    await a.ingestor.ingest(
        CHAT, [dm("m1", clock, minutes_ago=1, reply_window_closes_at=clock.now + timedelta(hours=3))]
    )
    thread = await thread_of(engine, "m1")
    resolved_id = "r1"
    await a.ingestor.ingest(
        SOURCE, [item(resolved_id, clock, author_handle="eve", reply_window_closes_at=clock.now + timedelta(hours=3))]
    )
    await a.actions.resolve(await thread_of(engine, resolved_id), "ana")
    assert (await a.sweep.run()).window_warned == []  # 3 h left, the lead is 2 h
    clock.advance(minutes=61)
    results = await asyncio.gather(a.sweep.run(), b.sweep.run(), a.sweep.run(), b.sweep.run())
    assert sorted(t for r in results for t in r.window_warned) == [thread]  # one sweep of four, and not the resolved
    assert (await a.sweep.run()).window_warned == []
    assert await events(engine, EventKind.WINDOW_WARNING) == [(EventKind.WINDOW_WARNING, thread)]
    clock.advance(hours=2)
    results = await asyncio.gather(a.sweep.run(), b.sweep.run())
    assert sorted(t for r in results for t in r.window_closed) == [thread]
    assert await events(engine, EventKind.WINDOW_WARNING, EventKind.WINDOW_CLOSED) == [
        (EventKind.WINDOW_WARNING, thread),
        (EventKind.WINDOW_CLOSED, thread),
    ]


async def test_a_new_customer_message_opens_a_new_window_warned_about_again(inbox_factory, engine, clock):
    inbox = inbox_factory(sla={"reply_window_warn_minutes": 30})
    await inbox.ingestor.ingest(CHAT, [dm("m1", clock, minutes_ago=24 * 60 - 20, extended_window_closes_at=None)])
    thread = await thread_of(engine, "m1")
    assert (await inbox.sweep.run()).window_warned == []  # the door is 7 days away (the tag's window)
    async with engine.begin() as conn:  # as for a connector without the tag: the door is the 24 h
        await conn.execute(
            sa.update(Thread)
            .values(reply_window_closes_at=clock.now + timedelta(minutes=20))
            .where(Thread.id == thread)
        )
    assert (await inbox.sweep.run()).window_warned == [thread]  # 20 min left, the lead is 30 min
    clock.advance(minutes=5)
    await inbox.ingestor.ingest(CHAT, [dm("m2", clock, minutes_ago=0)])
    assert (await thread_row(engine, thread)).window_stage == WindowStage.NONE
    clock.advance(days=7, minutes=-20)
    assert (await inbox.sweep.run()).window_warned == [thread]
    assert len(await events(engine, EventKind.WINDOW_WARNING)) == 2


async def test_a_send_after_the_window_is_refused_without_calling_the_platform(inbox_factory, engine, clock, tmp_path):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, reply_window_closes_at=clock.now + timedelta(minutes=5))])
    thread = await thread_of(engine, "1")
    clock.advance(minutes=65)
    with pytest.raises(ActionError, match="X's reply window closed 60 min ago, so it no longer takes a reply here"):
        await inbox.actions.reply(thread, "Sorry for the wait", "ana")
    assert replies(tmp_path) == []
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(Reply))).scalar_one() == 0
    view = await thread_view(engine, inbox.policies, thread, clock.now)
    assert view is not None and inbox.actions.refusal(view) is not None


async def test_the_extended_window_and_the_fallback_reach_the_connector(inbox_factory, engine, clock):
    inbox = inbox_factory()
    tagged = Recording()
    await inbox.ingestor.ingest(Source.of(tagged), [dm("m1", clock, minutes_ago=30 * 60)])
    thread = await thread_of(engine, "m1")
    # 30 h after the message: past the 24 h, inside the 7 days the connector's tag allows.
    assert (await actions_for(inbox, tagged, clock).reply(thread, "Hello", "ana")).status == "sent"
    [(target, _)] = tagged.targets
    assert not target.in_window(clock.now) and target.in_extended_window(clock.now)
    assert (target.mode, target.language, target.kind) == ("reply", "en", Kind.DM)

    # A WhatsApp-like connector: no extension, but a template after the window; the agent is told beforehand.
    fallback = Recording(template=TEMPLATE_HINT)
    whatsapp = Source.of(fallback)
    await inbox.ingestor.ingest(
        whatsapp,
        [item("w1", clock, kind=Kind.DM, author_handle="eve", reply_window_closes_at=clock.now + timedelta(minutes=5))],
    )
    other = await thread_of(engine, "w1")
    clock.advance(minutes=10)
    view = await thread_view(engine, inbox.policies, other, clock.now)
    assert view is not None and view.window_note() == f"Chat's reply window closed: {TEMPLATE_HINT}"
    assert (await actions_for(inbox, fallback, clock).reply(other, "Your order has shipped", "ana")).status == "sent"
    [(target, _)] = fallback.targets
    assert not target.in_window(clock.now) and not target.in_extended_window(clock.now)


async def test_the_window_line_in_slack_is_escaped(inbox_factory, engine, clock):
    inbox = inbox_factory()
    sly = Recording(template="Send will use <!channel> <https://evil.example|the template>")
    await inbox.ingestor.ingest(
        Source.of(sly), [dm("m1", clock, reply_window_closes_at=clock.now + timedelta(minutes=3))]
    )
    view = await thread_view(engine, inbox.policies, await thread_of(engine, "m1"), clock.now)
    assert view is not None
    [line] = [b for b in blocks.triage_message(view, Outcome()) if b.get("block_id") == "reply_window"]
    text = line["text"]["text"]
    assert "closes in 3 min" in text and "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "<https://evil" not in text


async def test_a_private_reply_goes_out_once_and_not_after_its_window(inbox_factory, engine, clock, tmp_path):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    private = [ReplyMode("private", "Send privately", clock.now + timedelta(days=7))]
    await inbox.ingestor.ingest(SOURCE, [item("1", clock, kind=Kind.COMMENT, reply_modes=private)])
    thread = await thread_of(engine, "1")
    outcomes = await asyncio.gather(
        *(inbox.actions.reply(thread, "Check your DMs", "ana", "private") for _ in range(4))
    )
    assert sorted(o.status for o in outcomes) == ["duplicate"] * 3 + ["sent"]
    # The ordinary reply is another mode: it still goes out, once.
    assert (await inbox.actions.reply(thread, "We sent you a message", "ana")).status == "sent"
    assert [(r["mode"], r["in_reply_to"]) for r in replies(tmp_path)] == [("private", "1"), ("reply", "1")]
    # The customer wrote again after our replies: the new comment gets its own private reply, once.
    await inbox.ingestor.ingest(SOURCE, [item("2", clock, kind=Kind.COMMENT, thread_id="1", reply_modes=private)])
    assert (await inbox.actions.reply(thread, "Again?", "ana", "private")).status == "sent"  # item 2's own
    async with engine.connect() as conn:
        modes = (await conn.execute(sa.select(Reply.mode, Reply.cycle).order_by(Reply.id))).all()
    assert [tuple(m) for m in modes] == [("private", 1), ("reply", 1), ("private", 2)]

    await inbox.ingestor.ingest(SOURCE, [item("3", clock, kind=Kind.COMMENT, author_handle="eve", reply_modes=private)])
    late = await thread_of(engine, "3")
    with pytest.raises(ActionError, match="offers no 'dm' reply"):
        await inbox.actions.reply(late, "Hi", "ana", "dm")
    clock.advance(days=7)
    with pytest.raises(ActionError, match="“Send privately” was possible until"):
        await inbox.actions.reply(late, "Hi", "ana", "private")
    assert len(replies(tmp_path)) == 3


async def test_bad_reply_modes_are_left_out_and_the_item_kept(inbox_factory, engine, clock):
    inbox = inbox_factory()
    modes = [ReplyMode("Private DM", "x"), ReplyMode("reply", "x"), ReplyMode("ok", "OK"), ReplyMode("ok", "again")]
    result = await inbox.ingestor.ingest(SOURCE, [item("1", clock, reply_modes=modes)])
    assert result.stored == 1
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(Item.reply_modes))).scalar_one()
    assert stored == [{"name": "ok", "label": "OK", "closes_at": None}]


def test_the_window_closing_time_must_be_a_time() -> None:
    from inbox.windows import for_raw

    raw = item("1", FakeClock(), kind=Kind.DM, reply_window_closes_at="tomorrow")
    closes, extended = for_raw(raw, "x")
    assert (closes, extended) == (None, None)
    naive = item("2", FakeClock(), kind=Kind.DM, reply_window_closes_at=datetime(2026, 11, 24, 10, 0))
    assert for_raw(naive, "x")[0] is not None and for_raw(naive, "x")[0].tzinfo is not None
