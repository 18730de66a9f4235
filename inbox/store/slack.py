"""Slack messages: the ts of each thread's triage message and of each event's post, and what the Slack app reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.models import Event, EventKind, Item, Reply, ReplyStatus, SlackMessage, SlackPost
from inbox.store.sqlutil import insert_for


@dataclass(frozen=True, slots=True)
class Posted:
    """A message we posted or are posting: `ts` None means a post was begun and its outcome is unknown."""

    channel: str
    ts: str | None
    created_at: datetime


class Ledger:
    """One row per message, keyed by thread (triage messages) or by event (every other post).

    A row is written before the post and completed with its ts right after, so a retry after a
    crash or a timeout knows to look in Slack before posting a second copy.
    """

    def __init__(self, engine: AsyncEngine, table: type[SlackMessage] | type[SlackPost], key: str) -> None:
        self.engine = engine
        self.table: Any = table
        self.key = getattr(table, key)
        self.key_name = key

    async def get(self, key: int) -> Posted | None:
        """The recorded message for `key`, if any."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(self.table.channel, self.table.ts, self.table.created_at).where(self.key == key)
                )
            ).one_or_none()
        return None if row is None else Posted(row.channel, row.ts, row.created_at)

    async def begin(self, key: int, channel: str, now: datetime) -> bool:
        """Record that a post is starting; False when another attempt already recorded one."""
        values: dict[str, Any] = {self.key_name: key, "channel": channel, "ts": None, "created_at": now}
        if self.table is SlackMessage:
            values["updated_at"] = now
        async with self.engine.begin() as conn:
            insert = (
                insert_for(conn, self.table).values(**values).on_conflict_do_nothing(index_elements=[self.key_name])
            )
            result = await conn.execute(insert)
        return bool(result.rowcount)

    async def done(self, key: int, ts: str, now: datetime) -> None:
        """Record the ts Slack gave the post."""
        values: dict[str, Any] = {"ts": ts}
        if self.table is SlackMessage:
            values["updated_at"] = now
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(self.table).where(self.key == key).values(**values))

    async def touch(self, key: int, now: datetime) -> None:
        """Note that the message was updated."""
        if self.table is SlackMessage:
            async with self.engine.begin() as conn:
                await conn.execute(sa.update(self.table).where(self.key == key).values(updated_at=now))

    async def forget(self, key: int) -> None:
        """Drop an unfinished record after Slack said plainly that the post did not happen."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(self.table).where(self.key == key, self.table.ts.is_(None)))


class SlackStore:
    """The two ledgers, and the lookup from a Slack thread back to its conversation."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.messages = Ledger(engine, SlackMessage, "thread_id")
        self.posts = Ledger(engine, SlackPost, "event_id")

    async def thread_for(self, channel: str, ts: str) -> int | None:
        """The conversation whose triage message is `ts` in `channel`."""
        async with self.engine.connect() as conn:
            query = sa.select(SlackMessage.thread_id).where(SlackMessage.channel == channel, SlackMessage.ts == ts)
            return (await conn.execute(query)).scalar_one_or_none()

    async def outcome(self, thread_id: int, *, resolved: bool) -> tuple[Any, Any]:
        """The thread's latest sent reply (text, agent, sent_at) and, if `resolved`, its last resolution event
        (payload, created_at); each None when there is none."""
        async with self.engine.connect() as conn:
            reply = (
                await conn.execute(
                    sa.select(Reply.text, Reply.agent, Reply.sent_at)
                    .where(Reply.thread_id == thread_id, Reply.status == ReplyStatus.SENT)
                    .order_by(Reply.cycle.desc())
                    .limit(1)
                )
            ).one_or_none()
            resolution = None
            if resolved:
                resolution = (
                    await conn.execute(
                        sa.select(Event.payload, Event.created_at)
                        .where(Event.thread_id == thread_id, Event.kind == EventKind.RESOLVED)
                        .order_by(Event.id.desc())
                        .limit(1)
                    )
                ).one_or_none()
        return reply, resolution

    async def item_of(self, event_id: int) -> Any:
        """The item an event announces (id, author_handle, text, posted_at), or None."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    sa.select(Item.id, Item.author_handle, Item.text, Item.posted_at)
                    .join(Event, Event.item_id == Item.id)
                    .where(Event.id == event_id)
                )
            ).one_or_none()

    async def posts_of(self, thread_id: int, customers: list[int] | None = None) -> list[int]:
        """The events of a thread that posted (or began to post) a Slack message, oldest first; with `customers`,
        only those about an item of theirs (a follow-up, an edit)."""
        query = (
            sa.select(SlackPost.event_id)
            .join(Event, Event.id == SlackPost.event_id)
            .where(Event.thread_id == thread_id)
            .order_by(SlackPost.event_id)
        )
        if customers is not None:
            query = query.join(Item, Item.id == Event.item_id).where(Item.customer_id.in_(customers or [-1]))
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).scalars())

    async def drop_message(self, thread_id: int) -> None:
        """Forget a thread's triage message (gone from Slack), so the next change posts a new one."""
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(SlackMessage).where(SlackMessage.thread_id == thread_id))
