"""Signed links to the reports page: an HMAC-SHA256 over the path and its parameters, with an expiry.

A link is `PATH?<parameters>&exp=<unix seconds>&sig=<hex>`: `sig` covers the path and every other parameter
(sorted), so changing the window, the group, the expiry or the page it opens breaks it. The key is derived from a
secret every worker already shares (the Slack signing secret, else the app-level token), under a label of its
own, so the secret itself never signs anything but Slack's requests and a link cannot be made from a Slack
signature. Rotating that secret voids the links given out before.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from inbox.settings import Settings

LINK_LIFETIME = timedelta(hours=24)
_LABEL = b"cx-inbox reports link v1"
EXPIRES, SIGNATURE = "exp", "sig"


class LinkRefused(Exception):
    """A link that does not open the page: unsigned, tampered with, or expired (the message says which)."""


@dataclass(frozen=True, slots=True)
class LinkSigner:
    """Makes and checks signed links; `base_url` (`[server] public_url`) makes them absolute."""

    key: bytes
    base_url: str = ""

    @classmethod
    def from_secret(cls, secret: str, base_url: str | None = None) -> LinkSigner:
        """A signer whose key is derived from `secret` (never the secret itself)."""
        key = hmac.new(secret.encode("utf-8"), _LABEL, hashlib.sha256).digest()
        return cls(key=key, base_url=(base_url or "").rstrip("/"))

    def sign(self, path: str, params: Mapping[str, str], expires: datetime) -> str:
        """The signed link to `path` with `params`, valid until `expires` (absolute when a base URL is set)."""
        if EXPIRES in params or SIGNATURE in params:
            raise ValueError(f"{EXPIRES!r} and {SIGNATURE!r} are the link's own parameters")
        fields = {**{k: v for k, v in params.items() if v is not None}, EXPIRES: str(int(expires.timestamp()))}
        fields[SIGNATURE] = self._mac(path, fields.items())
        return f"{self.base_url}{path}?{urlencode(sorted(fields.items()))}"

    def check(self, path: str, query: Iterable[tuple[str, str]], now: datetime) -> dict[str, str]:
        """The link's parameters (without exp and sig) when it is genuine and unexpired; LinkRefused otherwise."""
        fields: dict[str, str] = {}
        for key, value in query:
            if key in fields:
                raise LinkRefused(f"the link repeats its parameter {key!r}")
            fields[key] = value
        signature = fields.pop(SIGNATURE, None)
        if signature is None or EXPIRES not in fields:
            raise LinkRefused("the link is not signed")
        expected = self._mac(path, fields.items())
        # Constant time: the answer's timing tells nothing about how much of a forged signature was right.
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise LinkRefused("the link's signature does not match (it was changed, or made with another key)")
        try:
            expires = int(fields.pop(EXPIRES))
        except ValueError:
            raise LinkRefused("the link's expiry is not a time") from None
        if now.timestamp() >= expires:
            raise LinkRefused("the link has expired")
        return fields

    def expiry(self, query: Mapping[str, str]) -> datetime | None:
        """When a checked link expires (for links it leads to, which must not outlive it)."""
        value = query.get(EXPIRES)
        return datetime.fromtimestamp(int(value), tz=UTC) if value and value.isdigit() else None

    def _mac(self, path: str, fields: Iterable[tuple[str, str]]) -> str:
        message = path + "?" + urlencode(sorted(fields))
        return hmac.new(self.key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def signer_for(settings: Settings) -> LinkSigner | None:
    """The inbox's signer: keyed from the Slack signing secret (else the app-level token); None with Slack off."""
    slack = settings.slack
    if not slack.enabled:
        return None
    secret = slack.signing_secret or slack.app_token
    if secret is None or not secret.get_secret_value():
        return None
    return LinkSigner.from_secret(secret.get_secret_value(), settings.server.public_url)
