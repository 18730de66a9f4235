"""Server-sent events: a long-lived GET read as (event, data) pairs (Mastodon's streaming API)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from inbox import safejson
from inbox.connector import PermanentError, TransientError
from inbox.connectors.kit.http import VendorClient, error_for

log = logging.getLogger(__name__)

# A stream line this long is not the vendor talking.
MAX_SSE_LINE = 1 << 20


async def sse_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream; comments (heartbeats) skipped."""
    buffer = b""
    event, data = "message", list[str]()
    async for chunk in content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        if len(buffer) > MAX_SSE_LINE:
            raise TransientError("stream line longer than 1 MiB")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)


async def stream(client: VendorClient, url: str, idle_seconds: float) -> AsyncIterator[tuple[str, str]]:
    """The events of one stream on the client's session, until it ends; a refusal or a drop raises the connector error."""
    what = f"{client.name}: GET {url}"
    # No total limit on a stream that is meant to stay open; a silent one is dead after `idle_seconds`.
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=idle_seconds)
    headers = {**client.headers, "Accept": "text/event-stream"}
    try:
        async with client.session().get(url, headers=headers, timeout=timeout) as response:
            if response.status >= 400:
                error = error_for(response.status, response.headers, await response.text(errors="replace"), what)
                raise error or PermanentError(f"{what} answered HTTP {response.status}")
            async for event in sse_events(response.content):
                yield event
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise TransientError(f"{what} dropped: {type(exc).__name__}: {exc}") from exc


async def json_events(client: VendorClient, url: str, idle_seconds: float, event: str) -> AsyncIterator[Any]:
    """The JSON payloads of one kind of `event` on a stream; a payload that is not JSON is logged and skipped."""
    async for name, data in stream(client, url, idle_seconds):
        if name != event:
            continue
        try:
            yield safejson.loads(data)
        except ValueError:
            log.warning("%s: skipped a stream event that is not JSON: %r", client.name, data[:80])
