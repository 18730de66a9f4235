"""The one small interface every connector implements, and the errors it may raise."""

from __future__ import annotations

import abc
import builtins
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

# What a connector reads the time from: injected, so tests can move it.
Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    """The real time, in UTC: every connector's clock unless one is injected."""
    return datetime.now(UTC)


class Kind(StrEnum):
    """What sort of thing the customer said."""

    MENTION = "mention"
    DM = "dm"
    COMMENT = "comment"
    REVIEW = "review"


class ConnectorError(Exception):
    """Base of the three errors a connector may raise; `status` is the vendor's HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientError(ConnectorError):
    """Try again later: timeouts, 5xx (with the vendor's retry-after when known); rate limits are `RateLimited`."""

    def __init__(self, message: str, retry_after: float | None = None, *, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """The vendor's rate limit refused the request (HTTP 429, or its announced budget is spent): not a failure.

    `retry_after` is the wait until the vendor's reset when it says so; the poller waits for that, not longer.
    """


class AuthError(ConnectorError):
    """Credentials are missing, wrong or revoked: stop and ask an admin."""


class PermanentError(ConnectorError):
    """The request can never succeed as it is (bad input, refused reply, unknown item)."""


@dataclass(frozen=True, slots=True)
class ReplyWindow:
    """How long after the customer's last message a platform takes the ordinary reply (Messenger: 24 h).

    `extended`: the longer window the connector can still use by adding something to the send (Messenger's
    `HUMAN_AGENT` tag: 7 days); the connector decides at send time which one applies (see ReplyTarget).
    """

    standard: timedelta
    extended: timedelta | None = None


@dataclass(frozen=True, slots=True)
class ReplyMode:
    """Another way to answer one item besides the ordinary reply (Meta's private reply to a comment).

    Declared per item by the connector on `RawItem.reply_modes`; Slack offers it as a button with the action id
    `inbox_send_<name>`, and `Connector.reply()` gets `name` as `ReplyTarget.mode`. The inbox sends each mode
    at most once per item, and refuses it from `closes_at` on (None: no window).
    """

    name: str  # lower-case letters, digits and `_`, at most 32 characters; not STANDARD_MODE
    label: str  # the button's text, e.g. "Send privately"
    closes_at: datetime | None = None


# ReplyTarget.mode of the ordinary reply (a comment reply, a reply tweet, a DM in a DM conversation).
STANDARD_MODE = "reply"


@dataclass(frozen=True, slots=True)
class Channel:
    """What the inbox knows of a channel whatever connector feeds it: its name for people, reply limits, kinds."""

    name: str
    display: str
    kinds: frozenset[Kind]
    reply_limit: int | None = None  # characters (Google reviews: UTF-8 bytes); None: the platform sets none
    kind_limits: Mapping[Kind, int] = field(default_factory=dict)  # where a kind allows another length (X DMs)
    # How long after the customer's last message the platform takes a reply, per kind of item; a kind left out
    # has no window. A connector may give an item its own closing time instead (RawItem.reply_window_closes_at).
    reply_windows: Mapping[Kind, ReplyWindow] = field(default_factory=dict)

    def limit(self, kind: Kind | None = None) -> int | None:
        """The longest reply the platform takes for this kind of item."""
        return self.kind_limits.get(kind, self.reply_limit) if kind is not None else self.reply_limit


_SOCIAL = frozenset({Kind.MENTION, Kind.DM})
# Messenger and Instagram DMs: 24 h after the customer's last message, 7 days with the HUMAN_AGENT tag.
_META_DM = {Kind.DM: ReplyWindow(timedelta(hours=24), timedelta(days=7))}
# The channel registry: one entry per platform. `jsonl` and `webhook` items stand for one of these (their `channel`).
CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in (
        Channel("x", "X", _SOCIAL, 280, {Kind.DM: 10_000}),
        Channel("mastodon", "Mastodon", _SOCIAL, 500),
        Channel("reddit", "Reddit", _SOCIAL | {Kind.COMMENT}, 10_000),
        # Posts: 300 graphemes (the core counts characters, never fewer); DMs: 1000.
        Channel("bluesky", "Bluesky", _SOCIAL, 300, {Kind.DM: 1000}),
        # Comments take 8,000 characters; Messenger texts fewer than 2,000 (Send API reference).
        Channel("facebook", "Facebook", frozenset({Kind.COMMENT, Kind.DM}), 8000, {Kind.DM: 2000}, _META_DM),
        # Instagram comments take 2,200 characters, its DMs 1,000.
        Channel("instagram", "Instagram", _SOCIAL | {Kind.COMMENT}, 2200, {Kind.DM: 1000}, _META_DM),
        Channel("google_reviews", "Google", frozenset({Kind.REVIEW}), 4096),
        Channel("trustpilot", "Trustpilot", frozenset({Kind.REVIEW})),
        Channel("app_store", "the App Store", frozenset({Kind.REVIEW}), 5970),
        Channel("google_play", "Google Play", frozenset({Kind.REVIEW}), 350),
        # Free text only within 24 h of the customer's last message; after that, an approved template.
        Channel(
            "whatsapp",
            "WhatsApp",
            frozenset({Kind.DM}),
            4096,
            reply_windows={Kind.DM: ReplyWindow(timedelta(hours=24))},
        ),
    )
}


def display_name(channel: str | None) -> str | None:
    """The channel's name for people ("the App Store"); an unknown channel keeps its own name."""
    known = CHANNELS.get(channel or "")
    return known.display if known else channel


def reply_window(channel: str | None, kind: Kind) -> ReplyWindow | None:
    """The channel's reply window for this kind of item, or None when the platform sets none (or is unknown)."""
    known = CHANNELS.get(channel or "")
    return known.reply_windows.get(kind) if known else None


def reply_limit(channel: str | None, kind: Kind | None = None) -> int | None:
    """The longest reply a channel takes (for this kind of item), or None when unknown or unlimited."""
    known = CHANNELS.get(channel or "")
    return known.limit(kind) if known else None


@dataclass(slots=True)
class RateBudget:
    """Requests left in the vendor's window and when it resets (epoch seconds), as the vendor announced them."""

    remaining: float | None = None
    reset_at: float | None = None

    def check(self, now: float) -> None:
        """Raise RateLimited (with the wait) when the window is spent, instead of asking for a 429."""
        if self.remaining is not None and self.remaining <= 0 and self.reset_at and self.reset_at > now:
            raise RateLimited("rate budget spent until the vendor's reset", self.reset_at - now)


# Shared secrets (webhook secrets, Meta app secrets and verify tokens) shorter than this are refused.
MIN_SECRET_CHARS = 16
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


def _strong(value: SecretStr) -> SecretStr:
    # An empty key makes every body "signed": anyone could push. Never echo the value itself.
    length = len(value.get_secret_value())
    if length < MIN_SECRET_CHARS:
        what = "empty" if length == 0 else f"only {length} character(s)"
        raise ValueError(
            f"{what}; a shared secret needs at least {MIN_SECRET_CHARS} characters (make one: {MAKE_SECRET})"
        )
    return value


# A secret shared with another system that signs or verifies requests with it: the webhook `secret`, the Meta
# connectors' `app_secret` and `verify_token`. Declare such fields with this type so every one is held to the minimum.
Secret = Annotated[SecretStr, AfterValidator(_strong)]


class ConnectorSettings(BaseModel):
    """Keys every `[[connectors]]` table takes; each type adds its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")  # the store's connector columns
    type: str
    enabled: bool = True
    poll_seconds: float = Field(default=60, gt=0)
    api_url: str | None = None
    # The brand's own accounts on this channel: their posts are never items.
    own_handles: list[str] = Field(default_factory=list)


# The most of each RawItem field the inbox stores (characters; reply_to as JSON), checked once in ingest for every
# connector and within the store's column sizes (inbox/store/models.py). An id or handle longer than its limit is no id:
# the item is skipped with a problem line. A name or a text is cut with a marker and a URL dropped (a cut one leads
# nowhere): the item is kept.
MAX_ID = 255  # external_id, thread_id (VARCHAR(255))
MAX_HANDLE = 255  # author_handle (VARCHAR(255))
MAX_NAME = 255  # author_name (VARCHAR(255))
MAX_URL = 2048  # what browsers and platforms reliably take
MAX_TEXT = 100_000  # longer than any platform's post, comment, review or message
MAX_REPLY_TO = 8192  # what a reply needs: a few ids and flags


@dataclass(slots=True)
class RawItem:
    """One thing a customer said, as a connector maps it from its platform."""

    external_id: str
    text: str
    posted_at: datetime
    kind: Kind
    author_handle: str
    author_name: str | None = None
    thread_id: str | None = None  # the platform's conversation; None: the item starts its own
    url: str | None = None
    rating: int | None = None
    # What a reply needs to land in the right place (e.g. visibility, DM conversation id).
    reply_to: dict[str, Any] = field(default_factory=dict)
    from_brand: bool = False  # the brand's own post: not an item
    is_repost: bool = False  # retweets, boosts: not an item
    # When the platform shows the brand's answer to it (a review's owner reply): stored with its clock stopped.
    answered_at: datetime | None = None
    # When the platform stops taking the ordinary reply to this item and, with the connector's extension (a tag),
    # the latest it can still take one. None: from the channel registry's window for the kind, counted from
    # `posted_at` (or no window). Given `reply_window_closes_at`, the window is the connector's alone: no extension
    # unless it gives one too. A later customer item on the thread moves the thread's window to its own.
    reply_window_closes_at: datetime | None = None
    extended_window_closes_at: datetime | None = None
    # Other ways to answer this item (a private reply to a comment), each offered once in Slack.
    reply_modes: list[ReplyMode] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Skipped:
    """An item ingest did not store: its position in the batch it was given, and why."""

    index: int
    reason: str


C = TypeVar("C", bound=BaseModel)
S = TypeVar("S", bound=ConnectorSettings)


@dataclass(slots=True)
class Page(Generic[C]):
    """A batch of items; `cursor` set when it is safe to resume from there after this page."""

    items: list[RawItem]
    cursor: C | None = None


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """The item a reply answers, as the platform knows it, and what the inbox knows of the platform's window.

    The core refuses a send once every window has closed and the connector's `after_window` offers nothing, so a
    connector is called past `window_closes_at` only when its extension or its fallback applies: it decides which
    (`in_window`, `in_extended_window`) and sends accordingly (a `HUMAN_AGENT` tag, an approved template).
    """

    external_id: str
    thread_id: str
    kind: Kind
    author_handle: str
    reply_to: dict[str, Any]
    mode: str = STANDARD_MODE  # or the name of one of the item's ReplyModes (e.g. "private")
    language: str = ""  # the item's language as triage found it (ISO 639-1), e.g. to pick a template
    # The ordinary reply's window (for another mode: that mode's `closes_at`); None: no window.
    window_closes_at: datetime | None = None
    extended_window_closes_at: datetime | None = None

    def in_window(self, now: datetime) -> bool:
        """True while the platform takes this reply as it is (no window, or not yet closed)."""
        return self.window_closes_at is None or now < self.window_closes_at

    def in_extended_window(self, now: datetime) -> bool:
        """True while the platform takes it with the connector's extension (e.g. Messenger's HUMAN_AGENT tag)."""
        return self.extended_window_closes_at is not None and now < self.extended_window_closes_at


@dataclass(frozen=True, slots=True)
class SentReply:
    """What the platform answered to a reply."""

    external_id: str | None
    url: str | None = None


def generic_arguments(cls: builtins.type, base: builtins.type) -> tuple[Any, ...]:
    """The type arguments `cls` gives the generic class `base`, through any generic classes between them."""
    for declared in cls.__dict__.get("__orig_bases__", cls.__bases__):
        origin = get_origin(declared) or declared
        if not (isinstance(origin, builtins.type) and issubclass(origin, base)):
            continue
        if origin is base:
            return get_args(declared)
        # A generic class between them passes its own parameters on: bind them to what `cls` gives it.
        given = dict(zip(getattr(origin, "__parameters__", ()), get_args(declared), strict=False))
        return tuple(given.get(arg, arg) for arg in generic_arguments(origin, base))
    return ()


class Connector(abc.ABC, Generic[S, C]):
    """Speaks one platform: fetch new items from a cursor, reply to one, check credentials.

    Retries, backoff, scheduling, cursor storage and health belong to the core; a connector
    raises TransientError, AuthError or PermanentError and the core decides what to do.
    """

    type: ClassVar[str]
    # `builtins.type`: inside this class body, `type` names the attribute above.
    settings_model: ClassVar[builtins.type[ConnectorSettings]]
    cursor_model: ClassVar[builtins.type[BaseModel]]
    pushes: ClassVar[bool] = False  # items arrive by push (no polling)
    # Why a pushing connector is never polled, as /healthz and `inbox check` say it.
    no_polling: ClassVar[str] = "items are pushed to /webhooks/NAME"
    # How far back the platform lists anything at all (a backfill says so when asked for more); None: no fixed window.
    history_window: ClassVar[timedelta | None] = None
    # Plain attributes: a generic connector (jsonl, webhook) takes them from its settings.
    channel: str = ""
    max_reply_chars: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A connector declares its settings and cursor once, as `Connector[Settings, Cursor]`; a platform is its own channel."""
        super().__init_subclass__(**kwargs)
        settings, cursor = generic_arguments(cls, Connector) or (None, None)
        if isinstance(settings, builtins.type) and "settings_model" not in cls.__dict__:
            cls.settings_model = settings
        if isinstance(cursor, builtins.type) and "cursor_model" not in cls.__dict__:
            cls.cursor_model = cursor
        if isinstance(cls.__dict__.get("type"), str) and cls.type in CHANNELS and not cls.channel:
            cls.channel = cls.type

    def __init__(self, settings: S, *, clock: Clock = wall_clock) -> None:
        self.settings = settings
        self.name = settings.name
        self.clock = clock

    @property
    def streaming(self) -> bool:
        """True when the platform pushes items over `stream()` as well as answering polls."""
        return False

    def stream(self) -> AsyncIterator[Page[C]]:
        """Pages as the platform pushes them, until the connection ends; cursors stay with polling."""
        raise NotImplementedError(f"{self.type} does not stream")

    def reply_limit(self, kind: Kind) -> int | None:
        """The longest reply the platform takes for this kind of item (X's DMs allow more than its posts)."""
        # A generic connector (jsonl, webhook) standing for a channel keeps its one limit.
        platform = CHANNELS.get(self.type)
        return platform.kind_limits.get(kind, self.max_reply_chars) if platform else self.max_reply_chars

    @abc.abstractmethod
    def fetch(self, cursor: C | None) -> AsyncIterator[Page[C]]:
        """Yield pages of items newer than `cursor`, oldest safe cursor last."""

    @abc.abstractmethod
    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Send `text` where the customer wrote."""

    def after_window(self, kind: Kind, language: str) -> str | None:
        """What a send still does once every reply window has closed, said to the agent before they click.

        E.g. WhatsApp: "Send will use the approved template `order_update` (fr)"; `reply()` then gets a target past
        its window and sends that instead. None (the default): nothing can be sent, and the inbox refuses the send.
        """
        return None

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Look on the platform for a reply we may have sent before a crash."""
        return None

    @abc.abstractmethod
    async def check(self) -> str:
        """Try the credentials with one cheap call; return a short description of the account."""

    def poll_budgets(self) -> list[RateBudget]:
        """The vendor's rate budgets that polls spend, so the poller can pace polls by them; by default each HTTP client's.

        A client is any attribute with a `budget` (the kit's VendorClient); an authentication client that polls
        never use is no different: its budget stays unread and paces nothing.
        """
        return [
            budget for value in vars(self).values() if isinstance(budget := getattr(value, "budget", None), RateBudget)
        ]

    def notes(self) -> list[str]:
        """What an admin should know although polling works (a permission the account lacks); shown in /healthz."""
        return []

    async def close(self) -> None:
        """Release network resources."""


class ConnectorTypes(Protocol):
    """The connector types an installation knows, by config `type`; `inbox.connectors` (the registry) is one.

    Handed by the app (the composition root) to what reads a config or builds a connector, so that nothing below it
    imports the connectors.
    """

    def known_types(self) -> list[str]:
        """Every type, sorted."""
        ...

    def connector_class(self, type_: str) -> builtins.type[Connector[Any, Any]]:
        """The connector class for a known `type_`."""
        ...

    def settings_model_for(self, type_: str) -> builtins.type[ConnectorSettings] | None:
        """The settings model for `type_`, or None when the type is unknown."""
        ...

    def build(self, settings: ConnectorSettings) -> Connector[Any, Any]:
        """A connector instance for one `[[connectors]]` table."""
        ...


@dataclass(frozen=True, slots=True)
class Handshake:
    """The answer to a platform's GET verification of a push endpoint (Meta's `hub.challenge`): status and text."""

    status: int
    text: str


class DeliveryState(StrEnum):
    """What the platform says became of one of our replies, in the order it happens."""

    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A platform's report on one of our replies: its id there (`SentReply.external_id`), state, time, why it failed."""

    reply_external_id: str
    state: DeliveryState
    at: datetime
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """What the platform reports of an item it pushed before: its text edited, its author's name found, or the item
    removed (a deleted comment, an unsent message). An update of an item not stored is ignored."""

    external_id: str
    text: str | None = None  # the new text, when edited
    removed: bool = False
    author_name: str | None = None  # the customer's name, when the push carried only an id


@dataclass(slots=True)
class Push:
    """A pushed body, read: its valid items with their positions, why each other entry was refused, and the
    platform's reports on our replies (delivery statuses)."""

    items: list[RawItem] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)  # of items[i] among the body's entries
    refused: dict[int, str] = field(default_factory=dict)  # position among the body's entries: why
    deliveries: list[Delivery] = field(default_factory=list)
    updates: list[ItemUpdate] = field(default_factory=list)  # of items stored before (or in this push)
    label: str = "items"  # how problem lines name the body's entries: `items[3]: why`

    def add(self, item: RawItem, position: int) -> None:
        """Keep a valid item found at `position` of the body."""
        self.items.append(item)
        self.positions.append(position)

    @property
    def problems(self) -> list[str]:
        """A line per entry refused so far: `items[i]: why`."""
        return [f"{self.label}[{i}]: {why}" for i, why in sorted(self.refused.items())]

    def skipped(self, problems: Iterable[tuple[int, str]]) -> None:
        """Add the items ingest skipped, given as (index among `items`, why)."""
        for index, reason in problems:
            self.refused[self.positions[index]] = reason


class PushReceiver(abc.ABC):
    """A connector the platform pushes to at `/webhooks/NAME`: the server verifies, parses and stores through this.

    The server owns the rest: 401 for a body `verify` refuses, 503 with Retry-After while the store is down, storing
    items and deliveries before answering `accepted_status`.
    """

    # What a stored push is answered (Meta wants 200; our own webhook says 202 Accepted).
    accepted_status: ClassVar[int] = 202
    # A body without one valid item is refused with 400; a platform that pushes other events (statuses, reads)
    # sets this False, so those are acknowledged rather than retried for a day.
    requires_items: ClassVar[bool] = True
    # Answer as soon as the verified body is stored, and triage and ingest it right after (a platform that retries
    # slow answers); otherwise the answer waits for ingest and reports what was stored and skipped.
    keep_first: ClassVar[bool] = False

    def handshake(self, query: Mapping[str, str]) -> Handshake | None:
        """The answer to a GET on the push endpoint (a subscription check); None when the platform makes none."""
        return None

    @abc.abstractmethod
    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """True when the raw body is signed by the platform (constant-time compare)."""

    @abc.abstractmethod
    def parse(self, body: bytes) -> Push:
        """Items, refused entries and delivery reports of a verified body; PermanentError when it cannot be read."""

    async def complete(self, push: Push) -> None:
        """Fetch what the body named but did not carry (a mention's text, a sender's name) into `push`, with calls
        to the platform; run after the body is stored and answered (keep_first), so the answer never waits for it."""
        return  # most platforms push everything an item needs
