"""Jetstream, Bluesky's JSON firehose: the records created in one collection, read live over a websocket.

Speaks the `/subscribe` endpoint the public instances serve (github.com/bluesky-social/jetstream: its README lists
them and shows the events). The `atproto` library's Jetstream client speaks the newer `xrpc.v1.json` framing instead,
so this reader is aiohttp's websocket client. After a drop it resumes a few seconds before the last event seen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import aiohttp

from inbox import safejson
from inbox.connector import TransientError
from inbox.connectors.kit.parse import IfObject, Name, OptionalText, Payload, one_of

JETSTREAM_URL = "wss://jetstream2.us-east.bsky.network"
JETSTREAM_REWIND_US = 5_000_000  # after a drop, resume this long before the last event seen (README's advice)


class _Commit(Payload):
    """A Jetstream commit: a record created, updated or deleted in one collection of a repo."""

    operation: Name
    collection: Name
    rkey: Name
    cid: OptionalText = None
    record: Annotated[dict[str, Any] | None, IfObject] = None


class _Event(Payload):
    """One Jetstream event (kind `commit`, `identity` or `account`), as its README shows it."""

    did: Name
    time_us: int
    kind: Name
    commit: Annotated[_Commit | None, IfObject] = None


@dataclass(frozen=True, slots=True)
class Created:
    """A record created in the watched collection: whose repo, its at:// URI and cid, the record, when it was seen."""

    did: str
    uri: str
    cid: str
    record: dict[str, Any] | None
    seen: datetime


class Jetstream:
    """Reads one collection's new records; the cursor (the last event's time, in microseconds) outlives a connection."""

    def __init__(self, name: str, url: str, collection: str) -> None:
        self.name = name
        self.url = f"{url.rstrip('/')}/subscribe"
        self.collection = collection
        self.cursor: int | None = None

    async def created(self) -> AsyncIterator[Created]:
        """The records created in the collection, until the connection ends; a drop raises a TransientError."""
        params = {"wantedCollections": self.collection}
        if self.cursor is not None:
            params["cursor"] = str(self.cursor - JETSTREAM_REWIND_US)
        timeout = aiohttp.ClientTimeout(total=None, connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                async with session.ws_connect(self.url, params=params, heartbeat=30) as ws:
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.ERROR:
                            raise TransientError(f"{self.name}: Jetstream connection failed: {ws.exception()}")
                        if message.type == aiohttp.WSMsgType.TEXT and (created := self._created(str(message.data))):
                            yield created
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientError(f"{self.name}: Jetstream at {self.url}: {type(exc).__name__}: {exc}") from exc

    def _created(self, data: str) -> Created | None:
        """The event as a created record of the collection; None for any other event (which still moves the cursor)."""
        try:
            event = one_of(_Event, safejson.loads(data))
        except ValueError:
            return None
        if isinstance(event, str) or event.kind != "commit" or event.commit is None:
            return None
        self.cursor = max(self.cursor or 0, event.time_us)
        commit = event.commit
        if commit.operation != "create" or commit.collection != self.collection or not commit.cid:
            return None
        return Created(
            did=event.did,
            uri=f"at://{event.did}/{self.collection}/{commit.rkey}",
            cid=commit.cid,
            record=commit.record,
            seen=datetime.fromtimestamp(event.time_us / 1_000_000, UTC),
        )
