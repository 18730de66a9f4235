"""Outbox events to Slack: one triage message per thread updated in place, alerts and follow-ups posted once."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypedDict

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.pipeline.outbox import LogNotifier, Notice
from inbox.settings import SlackSettings
from inbox.slack import blocks
from inbox.store import replies
from inbox.store.models import EventKind, Status
from inbox.store.slack import Ledger, SlackStore
from inbox.views import ThreadView

log = logging.getLogger(__name__)

# Slack answered, so the post certainly did not happen (unlike a timeout or a 5xx).
_CERTAIN = frozenset({200, 400, 401, 403, 404, 429})
_ESCALATIONS = (EventKind.SLA_WARNING, EventKind.SLA_BREACH)
# Slack's clock and ours may differ a little; a lost post is looked for this much either side of its window.
_SKEW = timedelta(seconds=10)
_PAGE = 999  # Slack's largest page of history
_MAX_PAGES = 50


class _Window(TypedDict):
    """The arguments that bound a read of a channel's history to the window a post can be in."""

    oldest: str
    latest: str
    inclusive: bool
    include_all_metadata: bool
    limit: int


class InFlight(Exception):
    """Another attempt is posting the same message right now; the outbox retries this one later."""


class SlackNotifier:
    """A Notifier: announces each outbox event in Slack exactly once, and logs each escalation once."""

    def __init__(
        self,
        settings: SlackSettings,
        client: AsyncWebClient,
        engine: AsyncEngine,
        clock: Callable[[], datetime],
        *,
        in_flight: float = 60.0,
    ) -> None:
        self.settings = settings
        self.client = client
        self.engine = engine
        self.clock = clock
        self.store = SlackStore(engine)
        # A begun post not found in Slack may still be on its way for this long (the outbox's claim on its
        # event: a delivery is cut off well before the claim runs out, and only the claimant delivers).
        self.in_flight = timedelta(seconds=in_flight)
        self.log = LogNotifier()
        self._logged: OrderedDict[int, None] = OrderedDict()

    async def notify(self, notice: Notice) -> None:
        """Announce one notice; raise to have the outbox retry it later."""
        await self._log_once(notice)
        kind, view = notice.kind, notice.thread
        if kind == EventKind.CONNECTOR_HEALTH:
            await self._health(notice)
            return
        if view is None:
            return
        if view.erased:
            # Nothing of an erased conversation is drawn again: its messages are edited once, then left alone.
            if kind == EventKind.ERASED:
                await self._erase(view.thread_id, str(notice.payload.get("reason") or "request"))
            return
        channel, ts = await self.sync(view)
        if kind == EventKind.FOLLOW_UP:
            item = await self.store.item_of(notice.event_id)
            if item is not None:
                text, body = blocks.follow_up(item.author_handle, item.text, item.posted_at)
                await self._post_once(notice.event_id, channel, text, body, thread_ts=ts)
        elif kind == EventKind.ITEM_CHANGED and notice.payload.get("change") in ("edited", "removed"):
            item = await self.store.item_of(notice.event_id)
            if item is not None:
                change = str(notice.payload["change"])
                text, body = blocks.item_changed(view, change, item.author_handle, item.text)
                await self._post_once(notice.event_id, channel, text, body, thread_ts=ts)
        elif kind == EventKind.REPLIED:
            reply = await self._reply(notice.payload.get("reply_id"))
            if reply is not None:
                text, body = blocks.reply_note(view, reply.agent, reply.text, reply.sent_at or notice.created_at)
                await self._post_once(notice.event_id, channel, text, body, thread_ts=ts)
        elif kind == EventKind.REPLY_FAILED:
            agent, error = str(notice.payload.get("agent") or ""), str(notice.payload.get("error") or "")
            text, body = blocks.reply_failed(view, agent, error)
            await self._post_once(notice.event_id, channel, text, body, thread_ts=ts)
        elif kind in _ESCALATIONS:
            breach = kind == EventKind.SLA_BREACH
            permalink = await self._permalink(channel, ts)
            text, body = blocks.sla_alert(view, breach=breach, permalink=permalink, group=self.settings.leads_group)
            await self._post_once(notice.event_id, self.settings.leads_channel or channel, text, body)
        elif kind == EventKind.WINDOW_WARNING:
            permalink = await self._permalink(channel, ts)
            text, body = blocks.window_alert(view, permalink=permalink)
            await self._post_once(notice.event_id, self.settings.leads_channel or channel, text, body)

    async def sync(self, view: ThreadView) -> tuple[str, str]:
        """Post the thread's triage message, or update it in place if it exists; return (channel, ts)."""
        body = blocks.triage_message(view, await self._outcome(view))
        text = blocks.fallback(view)
        ledger = self.store.messages
        found = await self._existing(ledger, view.thread_id, blocks.THREAD_EVENT, "thread_id")
        if found is not None:
            # The message stays where it was posted, even if triage_channel has changed since.
            channel, ts = found
            try:
                await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)
                await ledger.touch(view.thread_id, self.clock())
                return channel, ts
            except SlackApiError as exc:
                if _error(exc) != "message_not_found":
                    raise
                # Someone deleted the triage message: the thread gets a new one rather than none.
                log.warning("Slack: the triage message of thread %d was deleted; posting it again", view.thread_id)
                await self.store.drop_message(view.thread_id)
        channel = self.settings.triage_channel or ""
        metadata = {"event_type": blocks.THREAD_EVENT, "event_payload": {"thread_id": view.thread_id}}
        return channel, await self._post(ledger, view.thread_id, channel, text, body, metadata=metadata)

    async def _existing(
        self, ledger: Ledger, key: int, event_type: str, field: str, thread_ts: str | None = None
    ) -> tuple[str, str] | None:
        """(channel, ts) already recorded for `key`, looking in Slack when an earlier attempt left it unknown."""
        record = await ledger.get(key)
        if record is None:
            return None
        if record.ts is not None:
            return record.channel, record.ts
        found = await self._find(record.channel, record.created_at, event_type, field, key, thread_ts)
        if found is not None:
            await ledger.done(key, found, self.clock())
            return record.channel, found
        # Not in Slack: either it never got there, or another worker is posting it right now.
        if self.clock() - record.created_at < self.in_flight:
            raise InFlight(f"a Slack post for {field} {key} is in flight")
        await ledger.forget(key)
        return None

    async def _post(
        self,
        ledger: Ledger,
        key: int,
        channel: str,
        text: str,
        body: list[dict[str, Any]],
        *,
        metadata: dict[str, Any],
        thread_ts: str | None = None,
    ) -> str:
        if not await ledger.begin(key, channel, self.clock()):
            raise InFlight(f"a Slack post for {key} is in flight")
        try:
            answer = await self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=body,
                metadata=metadata,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            if exc.response is not None and exc.response.status_code in _CERTAIN:
                await ledger.forget(key)
            raise
        ts = str(answer["ts"])
        await ledger.done(key, ts, self.clock())
        return ts

    async def _post_once(
        self, event_id: int, channel: str, text: str, body: list[dict[str, Any]], *, thread_ts: str | None = None
    ) -> None:
        ledger = self.store.posts
        if await self._existing(ledger, event_id, blocks.POST_EVENT, "event_id", thread_ts) is not None:
            return
        metadata = {"event_type": blocks.POST_EVENT, "event_payload": {"event_id": event_id}}
        await self._post(ledger, event_id, channel, text, body, metadata=metadata, thread_ts=thread_ts)

    async def _find(
        self, channel: str, since: datetime, event_type: str, field: str, key: int, thread_ts: str | None
    ) -> str | None:
        """A message we posted but never heard back about, found by its metadata.

        Only the window in which the post can have happened is read, page by page: in a busy channel more
        than one page of messages can follow it.
        """
        window: _Window = {
            "oldest": f"{(since - _SKEW).timestamp():.6f}",
            "latest": f"{(since + self.in_flight + _SKEW).timestamp():.6f}",
            "inclusive": True,
            "include_all_metadata": True,
            "limit": _PAGE,
        }
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            if thread_ts:
                answer = await self.client.conversations_replies(channel=channel, ts=thread_ts, cursor=cursor, **window)
            else:
                answer = await self.client.conversations_history(channel=channel, cursor=cursor, **window)
            for message in answer.get("messages") or []:
                meta = message.get("metadata") or {}
                if meta.get("event_type") == event_type and (meta.get("event_payload") or {}).get(field) == key:
                    return str(message["ts"])
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
            if not answer.get("has_more") or cursor is None:
                return None
        # Not knowing is not "not posted": posting again could make a second copy. The outbox retries later.
        raise InFlight(f"{field} {key}: {_MAX_PAGES} pages of {channel} read without reaching the end of the window")

    async def _health(self, notice: Notice) -> None:
        payload = notice.payload
        channel = self.settings.admin_channel or self.settings.leads_channel or self.settings.triage_channel or ""
        text, body = blocks.health_notice(
            str(payload.get("connector", "?")), bool(payload.get("healthy")), payload.get("reason")
        )
        await self._post_once(notice.event_id, channel, text, body)

    async def _erase(self, thread_id: int, reason: str) -> None:
        """Edit (or delete) every message posted about an erased conversation; again after a crash, harmlessly."""
        triage = await self._existing(self.store.messages, thread_id, blocks.THREAD_EVENT, "thread_id")
        found = []
        for event_id in await self.store.posts_of(thread_id):
            thread_ts = triage[1] if triage else None
            post = await self._existing(self.store.posts, event_id, blocks.POST_EVENT, "event_id", thread_ts)
            if post is not None:
                found.append(post)
        # The replies in its Slack thread first: the triage message last, so a crash leaves none of them unseen.
        for channel, ts in [*found, *([triage] if triage else [])]:
            try:
                if self.settings.erased_messages == "delete":
                    await self.client.chat_delete(channel=channel, ts=ts)
                else:
                    text, body = blocks.erased_note(reason)
                    await self.client.chat_update(channel=channel, ts=ts, text=text, blocks=body)
            except SlackApiError as exc:
                if _error(exc) != "message_not_found":  # deleted already: by us before a crash, or by someone
                    raise

    async def _permalink(self, channel: str, ts: str) -> str | None:
        try:
            answer = await self.client.chat_getPermalink(channel=channel, message_ts=ts)
        except SlackApiError as exc:
            log.warning("Slack: no permalink for %s/%s: %s", channel, ts, _error(exc))
            return None
        return answer.get("permalink")

    async def _log_once(self, notice: Notice) -> None:
        # Logged at the first attempt, so the log shows escalations even while Slack is down.
        if notice.kind in _ESCALATIONS and notice.event_id not in self._logged:
            self._logged[notice.event_id] = None
            if len(self._logged) > 10_000:
                self._logged.popitem(last=False)
            await self.log.notify(notice)

    async def _outcome(self, view: ThreadView) -> blocks.Outcome:
        undelivered = await replies.undelivered(self.engine, view.thread_id)
        if view.status not in (Status.REPLIED, Status.RESOLVED):
            return blocks.Outcome(undelivered=undelivered)  # an open conversation shows no reply yet
        reply, resolved = await self.store.outcome(view.thread_id, resolved=view.status == Status.RESOLVED)
        # A reply from an earlier cycle is history once the customer wrote again.
        current = reply is not None and view.status in (Status.REPLIED, Status.RESOLVED)
        return blocks.Outcome(
            reply_text=reply.text if current else None,
            reply_agent=reply.agent if current else None,
            reply_at=reply.sent_at if current else None,
            resolved_by=(resolved.payload or {}).get("agent") if resolved else None,
            resolved_at=resolved.created_at if resolved else None,
            undelivered=undelivered,
        )

    async def _reply(self, reply_id: Any) -> Any:
        if not isinstance(reply_id, int):
            return None
        return await replies.get(self.engine, reply_id)


def _error(exc: SlackApiError) -> str | None:
    return exc.response.get("error") if exc.response is not None else None
