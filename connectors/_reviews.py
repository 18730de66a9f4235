"""Shared by the four review-site connectors: the newest-first walk against a time cursor, a renewing bearer token."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, Field, SecretStr, ValidationError

from inbox.connector import AuthError, ConnectorSettings, PermanentError
from inbox.http import Response, VendorClient

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
# A token is renewed this long before the vendor says it expires, so no request carries a dying one.
RENEW_MARGIN = 60.0


class ReviewSettings(ConnectorSettings):
    """Keys every review-site connector takes besides its platform's."""

    # A first poll reads this far back rather than the account's whole history (often thousands of reviews).
    first_poll_hours: float = Field(default=168, gt=0)


class ReviewCursor(BaseModel):
    """The newest review time seen, and the reviews seen at exactly that time (the next poll shows them again)."""

    newest: datetime
    ids: list[str] = Field(default_factory=list)


class NewestFirst:
    """Reads a newest-first listing against the cursor: which reviews are new, when to stop, the next cursor."""

    def __init__(self, cursor: ReviewCursor | None, first_poll_hours: float, now: datetime | None = None) -> None:
        self.start = cursor
        self.floor = cursor.newest if cursor else (now or datetime.now(UTC)) - timedelta(hours=first_poll_hours)
        self.seen_at_floor = frozenset(cursor.ids) if cursor else frozenset()
        self.newest = self.floor
        self.ids: set[str] = set(self.seen_at_floor)
        self.done = False  # a page reached back past the cursor: later pages only hold older reviews

    def is_new(self, at: datetime, key: str) -> bool:
        """True for a review (version) the cursor does not cover yet; it then counts for the next cursor."""
        if at < self.floor:
            self.done = True
            return False
        if at == self.floor and key in self.seen_at_floor:
            return False
        if at > self.newest:
            self.newest, self.ids = at, {key}
        elif at == self.newest:
            self.ids.add(key)
        return True

    def known(self, at: datetime, key: str) -> bool:
        """True when a review created at `at` was already listed at the previous poll."""
        if self.start is None:
            return False
        return at < self.start.newest or (at == self.start.newest and key in self.seen_at_floor)

    def cursor(self) -> ReviewCursor:
        """Where the next poll starts: safe only once every page of this poll is stored."""
        return ReviewCursor(newest=self.newest, ids=sorted(self.ids))


def page_of(model: type[M], data: Any, what: str) -> M:
    """The page's envelope; a page of the wrong shape is refused whole so the cursor stays where it was."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PermanentError(f"{what} answered an unexpected shape: {_first_problem(exc)}") from exc


def each_valid(model: type[M], entries: Iterable[Any], name: str, what: str = "review") -> Iterator[M]:
    """The entries that fit `model`; a misshapen one is logged with the connector's name and skipped."""
    for entry in entries:
        try:
            yield model.model_validate(entry)
        except ValidationError as exc:
            ident = (entry.get("id") or entry.get("reviewId")) if isinstance(entry, dict) else None
            log.warning("%s: skipped %s %r of unexpected shape: %s", name, what, ident, _first_problem(exc))


def aware(at: datetime) -> datetime:
    """UTC, reading a vendor time without a zone as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _in_utc(at: datetime) -> datetime:
    """`aware`, as a validator: a time UTC cannot hold (0001-01-01 at +01:00) fails, so the review is skipped."""
    try:
        return aware(at)
    except OverflowError:
        raise ValueError(f"time {at.isoformat()} is out of range") from None


# A vendor timestamp field: validated into aware UTC, or the whole review is skipped with a log line.
VendorTime = Annotated[datetime, AfterValidator(_in_utc)]


def reviewer(name: str | None, review_id: str, anonymous: bool = False) -> tuple[str, str | None]:
    """(handle, name): review sites show names, not handles; anonymous reviewers get one handle per review."""
    name = (name or "").strip()
    if anonymous or not name:
        # One shared "A Google user" customer would merge strangers' histories.
        return f"anonymous:{review_id}", name or None
    return name, name


def join_text(*parts: str | None) -> str:
    """A review's title and body as one text."""
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def same_text(a: str, b: str) -> bool:
    """Whether a reply on the platform is ours: platforms trim and re-wrap whitespace."""
    return " ".join(a.split()) == " ".join(b.split())


class TokenAnswer(BaseModel):
    """An OAuth token endpoint's answer (Trustpilot sends expires_in as a string)."""

    access_token: str = Field(min_length=1)
    expires_in: float = 3600


def token_from(response: Response, what: str) -> tuple[str, float]:
    """(token, lifetime in seconds) from a token endpoint's answer."""
    try:
        answer = TokenAnswer.model_validate(response.data)
    except ValidationError as exc:
        raise AuthError(f"{what} answered without a usable access_token: {_first_problem(exc)}") from exc
    return answer.access_token, answer.expires_in


Renew = Callable[[], Awaitable[tuple[str, float]]]


class BearerToken:
    """An `Authorization: Bearer` token: a fixed one, or one renewed shortly before it expires."""

    def __init__(self, fixed: SecretStr | None = None, renew: Renew | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._token = None if renew is not None or fixed is None else fixed.get_secret_value()
        self._renew = renew
        self._clock = clock
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def value(self) -> str:
        """The token to send now, renewing it first when it is missing or about to expire."""
        if self._renew is None:
            if self._token is None:
                raise AuthError("no access token configured")
            return self._token
        async with self._lock:  # a poll and a reply at once must not both renew
            if self._token is None or self._clock() >= self._expires_at - RENEW_MARGIN:
                token, lifetime = await self._renew()
                self._token, self._expires_at = token, self._clock() + lifetime
            return self._token

    async def request(
        self,
        client: VendorClient,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
    ) -> Response:
        """One request carrying the token; a refused token is dropped so the next call gets a fresh one."""
        headers = {"Authorization": f"Bearer {await self.value()}"}
        try:
            return await client.request(method, path, params=params, json_body=json_body, headers=headers)
        except AuthError:
            if self._renew is not None:
                self._token = None
            raise


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{where}: {error['msg']} ({exc.error_count()} problem(s))"
