"""The one small interface every connector implements, and the errors it may raise."""

from __future__ import annotations

import abc
import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr

if TYPE_CHECKING:
    from inbox.http import RateBudget


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


# Shared secrets (webhook secrets, Meta app secrets and verify tokens) shorter than this are refused.
MIN_SECRET_CHARS = 16
MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


def _strong(value: SecretStr) -> SecretStr:
    # An empty key makes every body "signed": anyone could push. Never echo the value itself.
    length = len(value.get_secret_value())
    if length < MIN_SECRET_CHARS:
        what = "empty" if length == 0 else f"only {length} character(s)"
        raise ValueError(f"{what}; a shared secret needs at least {MIN_SECRET_CHARS} characters (make one: {MAKE_SECRET})")
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
# connector and within the store's column sizes (inbox/models.py). An id or handle longer than its limit is no id:
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


C = TypeVar("C", bound=BaseModel)
S = TypeVar("S", bound=ConnectorSettings)


@dataclass(slots=True)
class Page(Generic[C]):
    """A batch of items; `cursor` set when it is safe to resume from there after this page."""

    items: list[RawItem]
    cursor: C | None = None


@dataclass(frozen=True, slots=True)
class ReplyTarget:
    """The item a reply answers, as the platform knows it."""

    external_id: str
    thread_id: str
    kind: Kind
    author_handle: str
    reply_to: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SentReply:
    """What the platform answered to a reply."""

    external_id: str | None
    url: str | None = None


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
    # How far back the platform lists anything at all (a backfill says so when asked for more); None: no fixed window.
    history_window: ClassVar[timedelta | None] = None
    # Plain attributes: a generic connector (jsonl, webhook) takes them from its settings.
    channel: str = ""
    max_reply_chars: int | None = None

    def __init__(self, settings: S) -> None:
        self.settings = settings
        self.name = settings.name

    @property
    def streaming(self) -> bool:
        """True when the platform pushes items over `stream()` as well as answering polls."""
        return False

    def stream(self) -> AsyncIterator[Page[C]]:
        """Pages as the platform pushes them, until the connection ends; cursors stay with polling."""
        raise NotImplementedError(f"{self.type} does not stream")

    def reply_limit(self, kind: Kind) -> int | None:
        """The longest reply the platform takes for this kind of item (DMs often allow more)."""
        return self.max_reply_chars

    @abc.abstractmethod
    def fetch(self, cursor: C | None) -> AsyncIterator[Page[C]]:
        """Yield pages of items newer than `cursor`, oldest safe cursor last."""

    @abc.abstractmethod
    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Send `text` where the customer wrote."""

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Look on the platform for a reply we may have sent before a crash."""
        return None

    @abc.abstractmethod
    async def check(self) -> str:
        """Try the credentials with one cheap call; return a short description of the account."""

    def poll_budgets(self) -> list[RateBudget]:
        """The vendor's rate budgets that polls spend, so the poller can pace polls by them; by default each VendorClient's."""
        from inbox.http import VendorClient  # inbox.http imports this module

        return [value.budget for value in vars(self).values() if isinstance(value, VendorClient)]

    async def close(self) -> None:
        """Release network resources."""
