"""`webhook`: any system POSTs signed JSON items to /webhooks/NAME; replies go back to its `reply_url`."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import aiohttp
from pydantic import Field

from inbox import safejson
from inbox.connector import (
    STANDARD_MODE,
    AuthError,
    Clock,
    ConnectorSettings,
    PermanentError,
    Push,
    PushReceiver,
    ReplyTarget,
    Secret,
    SentReply,
    TransientError,
    wall_clock,
)
from inbox.connectors.kit.http import close_session, open_session
from inbox.connectors.kit.push import NoCursor, PushOnly
from inbox.connectors.kit.text import idempotency_key
from inbox.itemformat import parse_item

SIGNATURE_HEADER = "X-Inbox-Signature"


class WebhookSettings(ConnectorSettings):
    """`secret` signs both directions; `reply_url` (optional) receives replies as signed JSON."""

    type: str = "webhook"
    secret: Secret  # at least 16 characters: an empty or short key would let anyone push
    reply_url: str | None = None
    channel: str = Field(default="webhook", min_length=1, max_length=32)  # the store's channel columns
    max_reply_chars: int | None = None


def sign(secret: str, body: bytes) -> str:
    """The `X-Inbox-Signature` value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookConnector(PushOnly[WebhookSettings, NoCursor], PushReceiver):
    """Accepts pushed items after checking their HMAC signature."""

    type = "webhook"

    def __init__(self, settings: WebhookSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.channel = settings.channel
        self._session: aiohttp.ClientSession | None = None

    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """True when the `X-Inbox-Signature` header is this connector's HMAC of `body` (constant-time compare)."""
        signature = headers.get(SIGNATURE_HEADER)
        if not signature:
            return False
        return hmac.compare_digest(sign(self.settings.secret.get_secret_value(), body), signature.strip())

    def parse(self, body: bytes) -> Push:
        """Items from a body holding one item, a list, or {"items": [...]}; plus a problem per bad one."""
        try:
            data = safejson.loads(body)
        except ValueError as exc:
            raise PermanentError(f"body is not JSON: {exc}") from exc
        entries: Any = data.get("items", [data]) if isinstance(data, dict) else data
        if not isinstance(entries, list):
            raise PermanentError('expected an item, a list of items or {"items": [...]}')
        push = Push()
        for i, entry in enumerate(entries):
            try:
                push.add(parse_item(entry), i)
            except ValueError as exc:
                push.refused[i] = str(exc)
        return push

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """POST the reply, signed, to `reply_url`."""
        url = self.settings.reply_url
        if not url:
            raise PermanentError("this webhook has no reply_url; answer in the system that sent the item")
        body = json.dumps(
            {
                "in_reply_to": target.external_id,
                "thread_id": target.thread_id,
                "to": target.author_handle,
                "text": text,
                # Only for another mode (a private reply), so receivers of ordinary replies see what they always saw.
                **({} if target.mode == STANDARD_MODE else {"mode": target.mode}),
            },
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self.settings.secret.get_secret_value(), body),
            # The same reply to the same item has the same key, so a resend after a crash can be ignored.
            "Idempotency-Key": idempotency_key(target.external_id, text + _mode_key(target)),
        }
        try:
            async with self._client().post(url, data=body, headers=headers) as response:
                if response.status in (401, 403):
                    raise AuthError(f"reply_url answered {response.status}")
                if response.status == 429 or response.status >= 500:
                    raise TransientError(f"reply_url answered {response.status}", _retry_after(response))
                if response.status >= 400:
                    raise PermanentError(f"reply_url answered {response.status}: {(await response.text())[:200]}")
                answer = safejson.loads(await response.read()) if response.content_length != 0 else None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"reply_url unreachable: {exc}") from exc
        except ValueError:
            answer = None
        reply_id = str(answer.get("id")) if isinstance(answer, dict) and answer.get("id") else None
        return SentReply(reply_id)

    async def check(self) -> str:
        """Nothing to call: the secret is what matters, and the config refuses a weak one."""
        return f"accepting signed items at /webhooks/{self.name}"

    async def close(self) -> None:
        """Close the reply session."""
        await close_session(self._session)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = open_session(timeout=aiohttp.ClientTimeout(total=30))
        return self._session


def _retry_after(response: aiohttp.ClientResponse) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _mode_key(target: ReplyTarget) -> str:
    # The ordinary reply keeps the key it always had; a reply in another mode is another request.
    return "" if target.mode == STANDARD_MODE else f"\n{target.mode}"
