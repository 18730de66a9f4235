"""`jsonl`: items appended to a file, one JSON object per line (imports, exports from other tools, the demo)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel, Field

from inbox import safejson
from inbox.connector import (
    STANDARD_MODE,
    Clock,
    Connector,
    ConnectorSettings,
    Page,
    PermanentError,
    ReplyTarget,
    SentReply,
    reply_limit,
    wall_clock,
)
from inbox.itemformat import parse_item

log = logging.getLogger(__name__)


class JsonlSettings(ConnectorSettings):
    """`path` to read; replies are appended to `replies_path` (default: PATH.replies.jsonl)."""

    type: str = "jsonl"
    path: Path
    replies_path: Path | None = None
    channel: str = Field(default="jsonl", min_length=1, max_length=32)  # the store's channel columns
    batch_size: int = 500


class JsonlCursor(BaseModel):
    """Byte offset of the first unread line, and the file's identity to notice a replaced file."""

    offset: int = 0
    inode: int | None = None


class JsonlConnector(Connector[JsonlSettings, JsonlCursor]):
    """Reads complete lines appended since the cursor; writes replies to a sibling file."""

    type = "jsonl"

    def __init__(self, settings: JsonlSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.channel = settings.channel
        # The channel's limit, so a file standing in for X refuses a 300-character reply like X would.
        self.max_reply_chars = reply_limit(settings.channel)
        self.replies_path = settings.replies_path or settings.path.with_name(settings.path.name + ".replies.jsonl")

    async def fetch(self, cursor: JsonlCursor | None) -> AsyncIterator[Page[JsonlCursor]]:
        """Yield complete new lines in batches, each with the offset after it."""
        path = self.settings.path
        try:
            stat = await asyncio.to_thread(os.stat, path)
        except OSError as exc:
            # As `inbox check` says: the poller counts it a failure (unhealthy, with this reason) until the file appears.
            raise PermanentError(f"{path} does not exist or is not readable ({exc.strerror})") from exc
        start = cursor.offset if cursor else 0
        if cursor and (cursor.inode not in (None, stat.st_ino) or stat.st_size < cursor.offset):
            log.warning("%s: %s was replaced or truncated; reading it from the start", self.name, path)
            start = 0
        lines = await asyncio.to_thread(_read_from, path, start)
        items = []
        offset = start
        for number, line in enumerate(lines, 1):
            offset += len(line)
            text = line.decode("utf-8", errors="replace").strip()
            if text:
                try:
                    items.append(parse_item(safejson.loads(text)))
                except ValueError as exc:
                    # A broken line stays broken: log it and move past it rather than stall the file.
                    log.warning(
                        "%s: skipped line at byte %d of %s: %s", self.name, offset - len(line), path, str(exc)[:300]
                    )
            if len(items) >= self.settings.batch_size or number == len(lines):
                yield Page(items, JsonlCursor(offset=offset, inode=stat.st_ino))
                items = []

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Append the reply to the replies file."""
        reply_id = f"reply-{target.external_id}" + ("" if target.mode == STANDARD_MODE else f"-{target.mode}")
        record = {
            "id": reply_id,
            "mode": target.mode,
            "in_reply_to": target.external_id,
            "thread_id": target.thread_id,
            "to": target.author_handle,
            "text": text,
            "sent_at": self.clock().isoformat(),
        }
        try:
            await asyncio.to_thread(_append, self.replies_path, json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise PermanentError(f"cannot write {self.replies_path}: {exc.strerror}") from exc
        return SentReply(reply_id)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """A reply already in the replies file for this item."""
        try:
            lines = await asyncio.to_thread(_read_from, self.replies_path, 0)
        except FileNotFoundError:
            return None
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(record, dict)
                and record.get("in_reply_to") == target.external_id
                and record.get("mode", STANDARD_MODE) == target.mode
            ):
                return SentReply(str(record.get("id")))
        return None

    async def check(self) -> str:
        """The file must exist and be readable."""
        path = self.settings.path
        if not await asyncio.to_thread(os.access, path, os.R_OK):
            raise PermanentError(f"{path} does not exist or is not readable")
        return f"reading {path}"


def _read_from(path: Path, offset: int) -> list[bytes]:
    """Complete lines from `offset`; a last line without its newline is still being written."""
    with path.open("rb") as handle:
        handle.seek(offset)
        data = handle.read()
    lines = data.splitlines(keepends=True)
    if lines and not lines[-1].endswith(b"\n"):
        lines.pop()
    return lines


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
