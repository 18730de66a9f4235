"""What the facebook and instagram connectors share: settings, the poll cursor, the webhook read into items, comment
items with their private reply, comments polled post by post (media by media), comment replies sent and looked up,
and Messenger-style messaging (events, conversations polled, the Send API by window)."""

from __future__ import annotations

import abc
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import Field

from inbox.connector import (
    Connector,
    ConnectorError,
    ItemUpdate,
    Kind,
    Page,
    PermanentError,
    Push,
    RawItem,
    ReplyMode,
    ReplyTarget,
    SentReply,
    TransientError,
)
from inbox.connectors.kit.meta import (
    Change,
    Envelope,
    GraphClient,
    GraphPage,
    MessagingEvent,
    MetaReceiver,
    MetaSettings,
)
from inbox.connectors.kit.parse import (
    Id,
    IfObject,
    OptionalText,
    Payload,
    Timestamp,
    VendorTime,
    one_of,
    page_of,
    valid,
)
from inbox.connectors.kit.text import same_reply

log = logging.getLogger(__name__)

PRIVATE = "private"  # the reply mode of a private reply to a comment (a message to its author)
PRIVATE_REPLY = timedelta(days=7)  # Meta takes one private reply per comment, within 7 days of it
STANDARD = timedelta(hours=24)  # Messenger and Instagram DMs: a reply within 24 h of the customer's last message
# Each poll reads again what was created this long before the previous one: a comment Meta lists a little late is
# still found (the store keeps each item once).
OVERLAP = timedelta(minutes=5)
MESSAGES_PER_CONVERSATION = 25
NAMES_REMEMBERED = 10_000  # DM senders' names kept in memory (forgotten all at once past this)


# What one webhook event reads as: an item, an update of a stored item, nothing (None), or why it was refused.
Found = RawItem | ItemUpdate | str | None


class SocialSettings(MetaSettings):
    """What the facebook and instagram connectors add to the Meta keys: how far polls look."""

    first_poll_hours: float = Field(default=24, ge=0)  # how far back the very first poll looks
    lookback_days: float = Field(default=7, gt=0)  # posts (media) this recent have their comments polled
    # The app has Meta's Human Agent permission: a DM may be answered up to 7 days after the customer's last message.
    human_agent: bool = True
    page_size: int = Field(default=25, ge=1, le=100)


class SocialCursor(Payload):
    """Comments and messages created from `since` on are read by the next poll."""

    since: VendorTime


class Sender(Payload):
    """Who wrote a comment or a message (`from`)."""

    id: Id
    name: OptionalText = None
    username: OptionalText = None


class Comment(Payload):
    """A comment as a Graph listing shows it; each platform aliases `at` and `text` to its own field names."""

    id: str = Field(min_length=1)
    at: Timestamp
    text: OptionalText = None
    sender: Sender | None = Field(default=None, alias="from")


class Parent(Payload):
    """A post (media) whose comments are polled; each platform aliases `created` to its own field name."""

    id: str = Field(min_length=1)
    created: Timestamp

    def commented_since(self, since: datetime) -> bool:
        """False when the listing shows that no comment came since `since` (its comments are then not read)."""
        return True


def fields_of(model: type[Payload]) -> str:
    """The Graph `fields` parameter asking for what `model` declares, by the platform's names."""
    return ",".join(field.alias or name for name, field in model.model_fields.items())


class _Message(Payload):
    """A message of a polled conversation."""

    id: Id
    created_time: Timestamp
    sender: Sender = Field(alias="from")
    message: OptionalText = None


class _Conversation(Payload):
    id: Id
    updated_time: Timestamp | None = None
    messages: Annotated[dict[str, Any] | None, IfObject] = None


class _Stamp(Payload):
    timestamp: Timestamp


def epoch(value: float) -> datetime:
    """A Meta epoch time in seconds or milliseconds (Messenger's timestamps), in UTC."""
    return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, UTC)


def comment_item(
    *,
    comment_id: str,
    root: str,
    author: Sender,
    handle: str,
    text: str,
    at: datetime,
    url: str | None = None,
    private: bool = True,
    kind: Kind = Kind.COMMENT,
    **reply_to: Any,
) -> RawItem:
    """A comment as an item: its thread is the top-level comment (replies are answered there), and a private reply
    is offered for 7 days when Meta allows one."""
    modes = [ReplyMode(PRIVATE, "Send privately", closes_at=at + PRIVATE_REPLY)] if private else []
    return RawItem(
        external_id=comment_id,
        text=text,
        posted_at=at,
        kind=kind,
        author_handle=handle,
        author_name=author.name,
        thread_id=root,
        url=url,
        reply_to={"reply_on": root, "comment_id": comment_id, "author_id": author.id, "at": at.timestamp(), **reply_to},
        reply_modes=modes,
    )


class _Profile(Payload):
    """A DM sender's profile: Messenger's User Profile API (first and last name), Instagram's (name, username)."""

    name: OptionalText = None
    first_name: OptionalText = None
    last_name: OptionalText = None
    username: OptionalText = None

    def shown(self) -> str | None:
        return self.name or " ".join(filter(None, (self.first_name, self.last_name))) or self.username


class Messaging:
    """Messenger-style DMs (Messenger, Instagram): webhook events and polled conversations to items, the Send API."""

    def __init__(
        self, name: str, graph: GraphClient, account_id: str, platform: str, needs: str, *, human_agent: bool
    ) -> None:
        self.name = name
        self.graph = graph
        self.account_id = account_id
        self.platform = platform  # `messenger` or `instagram` (the conversations edge's platform)
        self.needs = needs  # the permission messaging takes, named when Meta refuses it
        self.human_agent = human_agent
        self._names: dict[str, str | None] = {}  # sender id → name (None: Meta shows none), remembered

    async def name_senders(self, push: Push) -> None:
        """The names of pushed DMs' senders (a messaging webhook gives only their ids): one profile call per sender
        not met before; a profile Meta refuses leaves the id shown."""
        for item in push.items:
            if item.kind != Kind.DM or item.author_name:
                continue
            sender = item.author_handle
            if sender not in self._names:
                if len(self._names) >= NAMES_REMEMBERED:
                    self._names.clear()
                try:
                    self._names[sender] = await self._profile(sender)
                except TransientError as exc:
                    log.info("%s: no name for %s this time: %s", self.name, sender, exc)
                    continue  # asked again with the sender's next message
                except ConnectorError as exc:
                    log.info("%s: Meta shows no profile of %s: %s", self.name, sender, exc)
                    self._names[sender] = None
            item.author_name = self._names[sender]

    async def _profile(self, sender: str) -> str | None:
        fields = "first_name,last_name" if self.platform == "messenger" else "name,username"
        answer = await self.graph.call("GET", sender, params={"fields": fields}, needs=self.needs)
        profile = one_of(_Profile, answer)
        return None if isinstance(profile, str) else profile.shown()

    def item(self, psid: str, mid: str, text: str, at: datetime, name: str | None = None) -> RawItem:
        """A customer's message; without the Human Agent permission its window is 24 h and no more."""
        return RawItem(
            external_id=mid,
            text=text,
            posted_at=at,
            kind=Kind.DM,
            author_handle=psid,
            author_name=name,
            thread_id=f"dm:{psid}",
            reply_to={"psid": psid, "at": at.timestamp()},
            reply_window_closes_at=None if self.human_agent else at + STANDARD,
        )

    def event_item(self, raw: Any) -> Found:
        """A messaging event as an item; None for what is no customer message (echoes of the Page's own sends, reads,
        deliveries, reactions, unsent messages); a string says why a message was refused."""
        if isinstance(raw, dict) and isinstance(raw.get("timestamp"), str):
            # Some relays (and Chatwoot's recorded events) send the time as ISO 8601 instead of epoch milliseconds.
            at = one_of(_Stamp, raw)
            raw = {**raw, "timestamp": at.timestamp.timestamp() * 1000 if isinstance(at, _Stamp) else None}
        event = one_of(MessagingEvent, raw)
        if isinstance(event, str):
            return event
        edit = event.message_edit
        if edit is not None and isinstance(edit.get("mid"), str) and isinstance(edit.get("text"), str):
            return ItemUpdate(edit["mid"], text=edit["text"])  # `message_edits`: the customer changed a message
        message = event.message
        if message is not None and message.get("is_deleted") and isinstance(message.get("mid"), str):
            return ItemUpdate(message["mid"], removed=True)  # unsent by the customer (Instagram)
        if message is None or message.get("is_echo"):
            return None
        if event.sender is None or not event.sender.id or event.timestamp is None:
            return "a message without sender.id or timestamp"
        if event.sender.id == self.account_id:
            return None  # the account's own message, however it came
        mid, text = message.get("mid"), message_text(message)
        if not isinstance(mid, str) or not mid:
            return "a message without message.mid"
        return self.item(event.sender.id, mid, text, epoch(event.timestamp)) if text else None

    async def poll(self, since: datetime, conversations: str) -> AsyncIterator[list[RawItem]]:
        """Customer messages created since `since`, conversation by conversation (newest updated first)."""
        fields = f"id,updated_time,messages.limit({MESSAGES_PER_CONVERSATION}){{id,message,from,created_time}}"
        params = {"platform": self.platform, "fields": fields, "limit": MESSAGES_PER_CONVERSATION}
        async with aclosing(self.graph.pages(conversations, params, needs=self.needs)) as pages:
            async for page in pages:
                items: list[RawItem] = []
                for raw in page:
                    conversation = valid(_Conversation, raw, self.name, "conversation")
                    if conversation is None:
                        continue
                    if conversation.updated_time is not None and conversation.updated_time < since:
                        yield items  # no time paging here: the list is newest first, so the rest is older
                        return
                    items += [m async for m in self._messages(conversation, since)]
                yield items

    async def _messages(self, conversation: _Conversation, since: datetime) -> AsyncIterator[RawItem]:
        listed = listing(conversation.messages)
        for _ in range(20):  # a conversation's pages of messages, newest first, until one is older than `since`
            older = False
            for raw in listed.data:
                message = valid(_Message, raw, self.name, "message")
                if message is None:
                    continue
                if message.created_time < since:
                    older = True
                elif message.sender.id != self.account_id and message.message:
                    yield self.item(
                        message.sender.id, message.id, message.message, message.created_time, message.sender.name
                    )
            link = listed.next_link()
            if older or link is None:
                return
            listed = listing(await self.graph.call("GET", link, needs=self.needs))

    async def send(self, target: ReplyTarget, text: str, path: str, now: datetime) -> SentReply:
        """A Send API message: a private reply to a comment, or a DM inside its window (RESPONSE) or the Human Agent
        extension (MESSAGE_TAG + HUMAN_AGENT)."""
        body: dict[str, Any] = {"message": {"text": text}}
        if target.mode == PRIVATE:
            body["recipient"] = {"comment_id": str(target.reply_to.get("comment_id") or target.external_id)}
        else:
            body["recipient"] = {"id": str(target.reply_to.get("psid") or target.author_handle)}
            if target.in_window(now):
                body["messaging_type"] = "RESPONSE"
            elif target.in_extended_window(now):
                body.update(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
            else:
                raise PermanentError(f"{self.name}: Meta's reply window for this conversation has closed")
        answer = await self.graph.call("POST", path, json_body=body, needs=self.needs)
        mid = answer.get("message_id") if isinstance(answer, dict) else None
        if not isinstance(mid, str) or not mid:
            raise PermanentError(f"{self.name}: the Send API answered no message_id")
        return SentReply(mid)

    async def find(self, target: ReplyTarget, text: str, conversations: str) -> SentReply | None:
        """Our message with this text in the customer's conversation since their message (a private reply cannot be
        looked up: Meta then refuses a second one anyway)."""
        if target.mode == PRIVATE:
            return None
        psid = str(target.reply_to.get("psid") or target.author_handle)
        fields = f"messages.limit({MESSAGES_PER_CONVERSATION}){{id,message,from,created_time}}"
        params = {"platform": self.platform, "user_id": psid, "fields": fields}
        answer = await self.graph.call("GET", conversations, params=params, needs=self.needs)
        after = epoch(float(target.reply_to.get("at") or 0))
        for raw in page_of(GraphPage, answer, f"{self.name}: replies lookup").data:
            conversation = one_of(_Conversation, raw)
            if isinstance(conversation, str):
                continue
            for entry in listing(conversation.messages).data:
                message = one_of(_Message, entry)
                if isinstance(message, str) or message.sender.id != self.account_id or message.created_time < after:
                    continue
                if same_reply(message.message, text):
                    return SentReply(message.id)
        return None


def listing(value: Any) -> GraphPage:
    """A Graph list (`data` and `paging`) nested in an answer; an empty one when it is missing or misshapen."""
    listed = one_of(GraphPage, value)
    return GraphPage(data=[]) if isinstance(listed, str) else listed


def message_text(message: dict[str, Any]) -> str:
    """A message's text, and each attachment as `[type] url` (Meta's links expire: the type says what it was)."""
    lines = [message["text"]] if isinstance(message.get("text"), str) and message["text"] else []
    for attachment in message.get("attachments") or []:
        if isinstance(attachment, dict):
            payload = attachment.get("payload")
            url = payload.get("url") if isinstance(payload, dict) and isinstance(payload.get("url"), str) else ""
            lines.append(f"[{attachment.get('type') or 'attachment'}] {url}".strip())
    return "\n".join(lines)


S = TypeVar("S", bound=SocialSettings)


class SocialConnector(Connector[S, SocialCursor], MetaReceiver[S]):
    """A Page or professional account: webhook deliveries read into items, and polls of comments then conversations
    as the safety net for deliveries missed while the webhook was down. Subclasses map their platform's shapes."""

    # What a platform declares: its posts (media) edge and shapes, and the permission each call takes.
    parents_edge: ClassVar[str]
    parent_label: ClassVar[str]
    parent_model: ClassVar[type[Parent]]
    comment_model: ClassVar[type[Comment]]
    settings: S
    graph: GraphClient
    messaging: Messaging
    account: str  # the Page's (account's) id: its own comments and messages are not customers'
    needs_posts: str
    needs_comments: str
    needs_reply: str

    def read(self, delivery: Envelope) -> Push:
        """Items from a delivery's changes and messaging events; echoes, own comments and other events ignored."""
        push = Push(label="events")
        position = 0
        for entry in delivery.entry:
            for raw in entry.changes:
                change = one_of(Change, raw)
                _keep(push, change if isinstance(change, str) else self.change_item(entry.time, change), position)
                position += 1
            for raw in entry.messaging:
                _keep(push, self.messaging.event_item(raw), position)
                position += 1
        return push

    async def complete(self, push: Push) -> None:
        """After the delivery is stored and answered: the names of DM senders, which Meta's events do not carry."""
        await self.messaging.name_senders(push)

    @abc.abstractmethod
    def change_item(self, time: float | None, change: Change) -> Found | tuple[Found, ...]:
        """A change (`feed`, `comments`, ...) as an item, or an update of a stored one (an edit, a removal); None
        when it is none of ours to answer; a string: why not."""

    @abc.abstractmethod
    def comment_params(self, since: datetime) -> dict[str, Any]:
        """The query of a post's (media's) comments edge for comments since `since`."""

    @abc.abstractmethod
    def comment_items(self, raw: Any, parent: str, since: datetime) -> list[RawItem]:
        """The customers' comments since `since` in one listed comment of `parent` (with its replies, if nested)."""

    @abc.abstractmethod
    def comment_reply(self, target: ReplyTarget, text: str) -> tuple[str, dict[str, Any]]:
        """Where a public answer to this comment is posted, and its body."""

    @abc.abstractmethod
    def replies_lookup(self, target: ReplyTarget) -> tuple[str, dict[str, Any]] | None:
        """Where our public answers to this comment are listed, and the query; None when they cannot be."""

    def comment_url(self, comment_id: str) -> str | None:
        """A comment's web address, when the platform has one per comment."""
        return None

    def conversations_path(self) -> str:
        """The conversations edge polled for DMs."""
        return f"{self.account}/conversations"

    async def comments(self, since: datetime) -> AsyncIterator[list[RawItem]]:
        """Comments since `since` on the account's posts (media), newest first, back to the lookback horizon."""
        params = {"fields": fields_of(self.parent_model), "limit": self.settings.page_size}
        horizon = self.horizon(since)
        edge = f"{self.account}/{self.parents_edge}"
        async with aclosing(self.graph.pages(edge, params, needs=self.needs_posts)) as pages:
            async for listed in pages:
                parents = [p for p in (valid(self.parent_model, r, self.name, self.parent_label) for r in listed) if p]
                for parent in parents:
                    if parent.commented_since(since):
                        async for items in self._comments_of(parent.id, since):
                            yield items
                if any(parent.created < horizon for parent in parents):
                    return

    async def _comments_of(self, parent: str, since: datetime) -> AsyncIterator[list[RawItem]]:
        params = self.comment_params(since)
        async for data in self.graph.pages(f"{parent}/comments", params, needs=self.needs_comments):
            yield [item for raw in data for item in self.comment_items(raw, parent, since)]

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """A public answer to the customer's comment; a DM, or a private reply to a comment (Send API)."""
        if target.kind == Kind.DM or target.mode == PRIVATE:
            return await self.messaging.send(target, text, f"{self.account}/messages", self.clock())
        path, body = self.comment_reply(target, text)
        answer = await self.graph.call("POST", path, json_body=body, needs=self.needs_reply)
        reply_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(reply_id, str) or not reply_id:
            raise PermanentError(f"{self.name}: the comment reply was answered without an id")
        return SentReply(reply_id, self.comment_url(reply_id))

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our answer with this text under the customer's comment since it, or our message in the conversation."""
        if target.kind == Kind.DM or target.mode == PRIVATE:
            return await self.messaging.find(target, text, self.conversations_path())
        lookup = self.replies_lookup(target)
        if lookup is None:
            return None
        path, params = lookup
        answer = await self.graph.call("GET", path, params=params, needs=self.needs_comments)
        after = epoch(float(target.reply_to.get("at") or 0))
        for raw in page_of(GraphPage, answer, f"{self.name}: replies lookup").data:
            reply = valid(self.comment_model, raw, self.name, "comment reply")
            mine = reply is not None and reply.sender is not None and reply.sender.id == self.account
            if reply and mine and reply.at >= after and same_reply(reply.text, text):
                return SentReply(reply.id, self.comment_url(reply.id))
        return None

    async def fetch(self, cursor: SocialCursor | None) -> AsyncIterator[Page[SocialCursor]]:
        """Comments, then DMs, created since the cursor (the first poll: `first_poll_hours` back); the cursor last."""
        now = self.clock()
        since = cursor.since if cursor else now - timedelta(hours=self.settings.first_poll_hours)
        async for items in self.comments(since):
            yield Page(items)
        async for items in self.messaging.poll(since, self.conversations_path()):
            yield Page(items)
        yield Page([], SocialCursor(since=max(since, now - OVERLAP)))

    def horizon(self, since: datetime) -> datetime:
        """Posts older than this have their comments no longer polled (a backfill reaches back further)."""
        return min(since, self.clock() - timedelta(days=self.settings.lookback_days))

    async def close(self) -> None:
        """Close the Graph session."""
        await self.graph.close()


def _keep(push: Push, found: Found | tuple[Found, ...], position: int) -> None:
    for one in found if isinstance(found, tuple) else (found,):
        if isinstance(one, RawItem):
            push.add(one, position)
        elif isinstance(one, ItemUpdate):
            push.updates.append(one)
        elif isinstance(one, str):
            push.refused[position] = one
