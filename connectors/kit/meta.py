"""What the three Meta connectors (facebook, instagram, whatsapp) share: settings, the webhook handshake and
signature, the webhook envelope, and a Graph API client whose errors become the connector error kinds."""

from __future__ import annotations

import abc
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError

from inbox import safejson
from inbox.connector import (
    AuthError,
    Clock,
    ConnectorError,
    ConnectorSettings,
    Handshake,
    PermanentError,
    Push,
    PushReceiver,
    RateLimited,
    Secret,
    TransientError,
)
from inbox.connectors.kit.http import HeaderBudget, VendorClient, error_for, retry_after
from inbox.connectors.kit.paging import PageGuard
from inbox.connectors.kit.parse import Entries, IfObject, OptionalText, Payload, first_problem, one_of, problem
from inbox.logs import redact

log = logging.getLogger(__name__)

GRAPH_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v21.0"
SIGNATURE_HEADER = "X-Hub-Signature-256"
# A rate-limited Graph call without a said wait is tried again after this long (Meta's windows are an hour long;
# its Business Use Case headers usually say less).
DEFAULT_THROTTLE_SECONDS = 300.0

# Graph error codes (developers.facebook.com/docs/graph-api/guides/error-handling; Meta's PHP SDK classifies them
# the same way: facebookarchive/php-graph-sdk src/Facebook/Exceptions/FacebookResponseException.php).
_AUTH_CODES = frozenset({102, 190})
_AUTH_SUBCODES = frozenset({458, 459, 460, 463, 464, 467})
_THROTTLE_CODES = frozenset({4, 17, 32, 341, 613})
_BUSINESS_THROTTLE = range(80000, 80100)  # Business Use Case rate limits: 80001 Pages, 80002 Instagram, ...
_SERVER_CODES = frozenset({1, 2})
# Code 10 is also "outside the allowed window" for a send (Messenger 2018278, Instagram 2534022): not a permission.
_WINDOW_SUBCODES = frozenset({2018278, 2534022})
_PERMISSION = re.compile(r"\b((?:pages|instagram|whatsapp|business|read|publish|manage)_[a-z_]+|business_management)\b")


class MetaSettings(ConnectorSettings):
    """Keys every Meta connector takes: the app secret that signs webhooks, the verify token of the webhook's
    subscription, and the Graph API version."""

    app_secret: Secret  # App Dashboard → App settings → Basic → App secret
    verify_token: Secret  # any string you choose, typed again in the App Dashboard's webhook settings
    api_version: str = Field(default=DEFAULT_API_VERSION, pattern=r"^v\d+\.\d+$")


def sign(app_secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value Meta sends with a body: `sha256=` and the hex HMAC-SHA256 of the raw bytes."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signature_ok(app_secret: str, body: bytes, header: str | None) -> bool:
    """True when `header` is Meta's signature of the raw `body` (constant-time compare); False when missing."""
    if not header:
        return False
    return hmac.compare_digest(sign(app_secret, body), header.strip().lower())


def handshake(verify_token: str, query: Mapping[str, str]) -> Handshake:
    """Meta's subscription check: the challenge echoed as text when the verify token matches, else 403 (400 when
    the request is not a subscription check at all)."""
    if query.get("hub.mode") != "subscribe" or "hub.challenge" not in query:
        return Handshake(400, "expected hub.mode=subscribe with hub.challenge and hub.verify_token")
    given = query.get("hub.verify_token", "")
    if not hmac.compare_digest(given.encode(), verify_token.encode()):
        return Handshake(403, "hub.verify_token does not match this connector's verify_token")
    return Handshake(200, query["hub.challenge"])


# The webhook envelope (developers.facebook.com/docs/graph-api/webhooks/getting-started): one POST may carry
# several entries, each several changes (feed, comments, WhatsApp) or messaging events (Messenger, Instagram DMs).
class Change(Payload):
    """One change of an entry: `field` names what changed; `value`'s shape is the field's own."""

    field: str
    value: Annotated[dict[str, Any], IfObject] = Field(default_factory=dict)


class Party(Payload):
    """The sender or recipient of a messaging event."""

    id: str | None = None


class MessagingEvent(Payload):
    """A Messenger or Instagram messaging event; `message` and the others stay raw for the connector to read."""

    sender: Annotated[Party | None, IfObject] = None
    recipient: Annotated[Party | None, IfObject] = None
    timestamp: float | None = None  # epoch milliseconds
    message: Annotated[dict[str, Any] | None, IfObject] = None
    message_edit: Annotated[dict[str, Any] | None, IfObject] = None  # the `message_edits` field: mid, text, num_edit
    postback: Annotated[dict[str, Any] | None, IfObject] = None
    read: Annotated[dict[str, Any] | None, IfObject] = None
    delivery: Annotated[dict[str, Any] | None, IfObject] = None


class Entry(Payload):
    """One object's part of a delivery: a Page, an Instagram account, a WhatsApp Business Account."""

    id: str = ""
    time: float | None = None  # epoch seconds or milliseconds, depending on the product
    changes: Entries = Field(default_factory=list)  # raw: each is read with `Change` so one bad one is skipped
    messaging: Entries = Field(default_factory=list)
    standby: Entries = Field(default_factory=list)  # events of threads another app owns (handover protocol)


class Envelope(Payload):
    """A webhook delivery: `object` (page, instagram, whatsapp_business_account) and its entries."""

    object: str
    entry: list[Entry]


def envelope(body: bytes) -> Envelope:
    """The delivery's envelope; PermanentError (400) when the body is not one."""
    try:
        data = safejson.loads(body)
    except ValueError as exc:
        raise PermanentError(f"body is not JSON: {exc}") from exc
    try:
        return Envelope.model_validate(data)
    except ValidationError as exc:
        raise PermanentError(f"not a Meta webhook delivery: {first_problem(exc)}") from exc


V = TypeVar("V", bound=BaseModel)


def field_values(delivery: Envelope, field: str, model: type[V], name: str) -> Iterator[V]:
    """The values of a delivery's changes to one subscribed `field` (WhatsApp's `messages`) as `model`; a value that
    does not parse is logged with the connector's `name` and skipped, the other fields' changes passed over."""
    for entry in delivery.entry:
        for raw in entry.changes:
            if not isinstance(raw, dict) or raw.get("field") != field:
                continue  # smb_message_echoes (sent from the WhatsApp Business app), account updates, ...: not items
            try:
                yield model.model_validate(raw.get("value"))
            except ValidationError as exc:
                log.warning("%s: skipped a change whose value is not readable: %s", name, problem(exc))


class MetaError(Payload):
    """An error as Meta describes one in a webhook (WhatsApp's `errors`, a failed status's): code, title, details."""

    code: int | None = None
    title: OptionalText = None
    message: OptionalText = None
    error_data: Annotated[dict[str, Any] | None, IfObject] = None

    def describe(self, platform: str) -> str:
        """`{platform} error CODE: message: details`, as far as Meta said them."""
        details = (self.error_data or {}).get("details")
        words = self.message or self.title or "no reason given"
        if isinstance(details, str) and details and details != words:
            words = f"{words}: {details}"
        return f"{platform} error {self.code}: {words}" if self.code is not None else words


def described(entry: Any, platform: str) -> str:
    """What an error entry says (`MetaError.describe`), or that the platform did not describe it."""
    error = one_of(MetaError, entry)
    return f"an error {platform} did not describe" if isinstance(error, str) else error.describe(platform)


MS = TypeVar("MS", bound="MetaSettings")


class MetaReceiver(PushReceiver, Generic[MS]):
    """The push side of a Meta connector: handshake, signature, envelope. Subclasses read the envelope into a Push.

    Meta retries a delivery not answered 200 for hours and disables endpoints that keep failing, so a body whose
    events are all ignored (reads, reactions) or broken is still answered 200, the broken ones logged.
    """

    accepted_status: ClassVar[int] = 200
    requires_items: ClassVar[bool] = False
    keep_first: ClassVar[bool] = True  # Meta wants its 200 fast: the body is stored, triage comes after
    settings: MS
    name: str
    clock: Clock

    def make_graph(self, api_url: str, token: SecretStr) -> GraphClient:
        """The Graph client, on this connector's clock (its rate budget reads it)."""
        return GraphClient(self.name, api_url, self.settings.api_version, token, clock=lambda: self.clock().timestamp())

    def handshake(self, query: Mapping[str, str]) -> Handshake:
        """Echo `hub.challenge` when `hub.verify_token` matches (403 otherwise)."""
        return handshake(self.settings.verify_token.get_secret_value(), query)

    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """`X-Hub-Signature-256` checked over the raw body with the app secret."""
        return signature_ok(self.settings.app_secret.get_secret_value(), body, headers.get(SIGNATURE_HEADER))

    def parse(self, body: bytes) -> Push:
        """The items and delivery reports of a delivery."""
        return self.read(envelope(body))

    @abc.abstractmethod
    def read(self, delivery: Envelope) -> Push:
        """Items and delivery reports from a delivery's entries (the connector's own mapping)."""


class MissingPermission(AuthError):
    """Meta refused a call because the token lacks a permission; `permission` names it when known."""

    def __init__(self, message: str, permission: str | None, *, detail: str = "", status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.permission = permission
        self.detail = detail or message  # Meta's own words, without our hint


class _GraphError(Payload):
    message: OptionalText = None
    type: OptionalText = None
    code: int | None = None
    error_subcode: int | None = None
    error_user_msg: OptionalText = None
    fbtrace_id: OptionalText = None


class _GraphErrorBody(Payload):
    error: _GraphError


def graph_error(status: int, headers: Mapping[str, str], body: str, what: str) -> ConnectorError | None:
    """The connector error a Graph answer stands for (by Meta's error code first, then by HTTP status)."""
    if status < 400:
        return None
    try:
        error = _GraphErrorBody.model_validate(safejson.loads(body)).error
    except (ValueError, ValidationError):
        return error_for(status, headers, body, what)
    code, subcode = error.code, error.error_subcode
    said = redact(error.message or error.error_user_msg or "no message")[:300]
    message = f"{what} answered HTTP {status}, Graph error {code}" + (f"/{subcode}" if subcode else "") + f": {said}"
    if code in _AUTH_CODES or subcode in _AUTH_SUBCODES:
        return AuthError(f"{message} (the access token is invalid or expired: make a new one)", status=status)
    if code in _THROTTLE_CODES or (code is not None and code in _BUSINESS_THROTTLE):
        return RateLimited(message, _throttle_wait(headers), status=status)
    if code == 10 and subcode in _WINDOW_SUBCODES:
        return PermanentError(f"{message} (Meta's reply window for this conversation has closed)", status=status)
    if code == 10 or (code is not None and 200 <= code <= 299):
        found = _PERMISSION.search(said)
        return missing_permission(message, found.group(1) if found else None, status)
    if code in _SERVER_CODES or status >= 500:
        return TransientError(message, retry_after(headers), status=status)
    return PermanentError(message, status=status)


def missing_permission(message: str, permission: str | None, status: int | None) -> MissingPermission:
    """The error for a missing permission, saying which one to grant when it is known."""
    hint = (
        f"the app or token lacks the permission {permission}: grant it (and have it approved in Meta's app review "
        "for live use), then make a new token"
        if permission
        else "the app or token lacks a permission for this call"
    )
    return MissingPermission(f"{message} ({hint})", permission, detail=message, status=status)


def _usage(headers: Mapping[str, str]) -> tuple[float, float | None]:
    """The highest usage (percent) in Meta's usage headers and the longest announced wait (seconds)."""
    highest, wait = 0.0, None
    for name in ("X-App-Usage", "X-Page-Usage", "X-Ad-Account-Usage"):
        usage = _json_header(headers, name)
        if isinstance(usage, dict):
            highest = max([highest, *(float(v) for v in usage.values() if isinstance(v, int | float))])
    business = _json_header(headers, "X-Business-Use-Case-Usage")
    if isinstance(business, dict):
        for entries in business.values():
            for entry in entries if isinstance(entries, list) else []:
                if not isinstance(entry, dict):
                    continue
                for key in ("call_count", "total_cputime", "total_time"):
                    if isinstance(value := entry.get(key), int | float):
                        highest = max(highest, float(value))
                minutes = entry.get("estimated_time_to_regain_access")
                if isinstance(minutes, int | float) and minutes > 0:
                    wait = max(wait or 0.0, float(minutes) * 60)
    return highest, wait


def _throttle_wait(headers: Mapping[str, str]) -> float | None:
    _, wait = _usage(headers)
    return wait if wait is not None else retry_after(headers)


def _json_header(headers: Mapping[str, str], name: str) -> Any:
    value = headers.get(name)
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


class GraphBudget(HeaderBudget):
    """Meta announces usage as percentages (X-App-Usage, X-Business-Use-Case-Usage): at 100 it throttles, so we
    stop first, until the wait it announces (or a few minutes)."""

    def update(self, headers: Mapping[str, str], now: float) -> None:
        """Read Meta's usage headers."""
        highest, wait = _usage(headers)
        if highest >= 100:
            self.remaining = 0.0
            self.reset_at = now + (wait or DEFAULT_THROTTLE_SECONDS)
        elif self.reset_at is None or self.reset_at <= now:
            self.remaining = None


class GraphPage(BaseModel):
    """A Graph list answer: `data` and its paging (cursors and the `next` link)."""

    data: list[Any]
    paging: Annotated[dict[str, Any] | None, IfObject] = None

    def after(self) -> str | None:
        """The cursor of the next page; None on the last page (Meta sends no `next` there)."""
        paging = self.paging or {}
        if not paging.get("next"):
            return None
        cursors = paging.get("cursors")
        after = cursors.get("after") if isinstance(cursors, dict) else None
        return after if isinstance(after, str) and after else None

    def next_link(self) -> str | None:
        """The `next` link, for time-paged lists that have no cursors (`since`/`until` in the link)."""
        link = (self.paging or {}).get("next")
        return link if isinstance(link, str) and link.startswith(("http://", "https://")) else None


class GraphClient(VendorClient):
    """The Graph API at `{api_url}/{api_version}/...` with a Bearer token; Graph errors become connector errors."""

    def __init__(
        self,
        name: str,
        api_url: str,
        api_version: str,
        token: SecretStr,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, api_url, headers={"Authorization": f"Bearer {token.get_secret_value()}"}, clock=clock)
        self.api_version = api_version
        self.budget = GraphBudget()

    def error(self, status: int, headers: Mapping[str, str], body: str, what: str) -> ConnectorError | None:
        """Graph's error JSON read by code (190 auth, 4/17/32/613/80xxx rate limits, 10/2xx permissions)."""
        error = graph_error(status, headers, body, what)
        if isinstance(error, RateLimited):
            # As for a 429: the wait travels with the error to the poller, which waits it out; the budget must not
            # refuse the call after that wait a second time.
            self.budget.remaining = None
            self.budget.reset_at = None
        return error

    def path(self, path: str) -> str:
        """`path` under the API version (an absolute URL, a `next` link, as is)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"/{self.api_version}/{path.lstrip('/')}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        needs: str | None = None,
    ) -> Any:
        """One Graph call, its JSON answer; `needs` names the permission the call takes, for the error's message."""
        try:
            response = await self.request(method, self.path(path), params=params, json_body=json_body)
        except MissingPermission as exc:
            if needs is None or exc.permission is not None:
                raise
            raise missing_permission(exc.detail, needs, exc.status) from exc
        return response.data

    async def pages(
        self, path: str, params: Mapping[str, Any] | None = None, *, needs: str | None = None
    ) -> AsyncGenerator[list[Any], None]:
        """Each page's `data` of a Graph list, following `paging.cursors.after` (or the `next` link) to the end."""
        guard = PageGuard(f"{self.name}: {path}")
        current: Mapping[str, Any] = dict(params or {})
        target = path
        while True:
            try:
                page = GraphPage.model_validate(await self.call("GET", target, params=current, needs=needs))
            except ValidationError as exc:
                raise PermanentError(f"{self.name}: {path} answered an unexpected shape: {first_problem(exc)}") from exc
            yield page.data
            after = guard.next(page.after())
            if after is not None:
                current, target = {**(params or {}), "after": after}, path
                continue
            link = guard.next(page.next_link())
            if link is None:
                return
            current, target = {}, link
