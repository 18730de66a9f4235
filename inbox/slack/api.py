"""The Slack Web API client: retries on rate limits and dropped connections, and the bot's identity."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from inbox.logs import redact
from inbox.metrics import Metrics
from inbox.settings import SlackSettings

# Network-level failures a Slack call may end with, besides Slack's own error answers.
NETWORK_ERRORS: tuple[type[Exception], ...] = (ClientError, asyncio.TimeoutError, OSError)
# Every way a Slack call may fail: Slack's own error answers and the network's.
SLACK_ERRORS: tuple[type[Exception], ...] = (SlackApiError, *NETWORK_ERRORS)


def retry_handlers(metrics: Metrics | None = None) -> list[AsyncRetryHandler]:
    """slack_sdk's handlers: wait out `ratelimited` (Retry-After) and retry dropped connections; counted with `metrics`."""
    handlers: list[tuple[AsyncRetryHandler, str]] = [
        (AsyncRateLimitErrorRetryHandler(max_retry_count=2), "ratelimited"),
        (AsyncConnectionErrorRetryHandler(max_retry_count=2), "connection_error"),
    ]
    if metrics is None:
        return [handler for handler, _ in handlers]
    return [CountedRetries(handler, reason, metrics) for handler, reason in handlers]


class CountedRetries(AsyncRetryHandler):
    """A slack_sdk retry handler whose retries are counted (a 429 waited out never reaches the caller as an error)."""

    def __init__(self, inner: AsyncRetryHandler, reason: str, metrics: Metrics) -> None:
        super().__init__(max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator)
        self.inner = inner
        self.reason = reason
        self.metrics = metrics

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        """The wrapped handler decides."""
        return await self.inner.can_retry_async(state=state, request=request, response=response, error=error)

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        """Count the retry, then wait as the wrapped handler does."""
        self.metrics.slack_retry(request.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0], self.reason)
        await self.inner.prepare_for_next_attempt_async(state=state, request=request, response=response, error=error)


class CountedWebClient(AsyncWebClient):
    """slack_sdk's client with each failed call counted by method and error (every method goes through api_call)."""

    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        """Call `api_method`; a SlackApiError or network error is counted, then raised as before."""
        try:
            return await super().api_call(api_method, **kwargs)
        except SlackApiError as exc:
            self.metrics.slack_error(api_method, error_code(exc))
            raise
        except NETWORK_ERRORS as exc:
            self.metrics.slack_error(api_method, type(exc).__name__)
            raise


def error_code(exc: SlackApiError) -> str:
    """Slack's error code (`ratelimited`, `channel_not_found`, ...), or `http_<status>` when it sent none."""
    data = getattr(exc.response, "data", None)
    error = data.get("error") if isinstance(data, dict) else None  # a proxy's 5xx page is text, not Slack's JSON
    if isinstance(error, str) and error:
        return error
    status = getattr(exc.response, "status_code", None)
    return f"http_{status}" if status else "unknown"


def make_client(
    settings: SlackSettings, *, with_token: bool = True, timeout: int = 10, metrics: Metrics | None = None
) -> AsyncWebClient:
    """A Web API client for the configured workspace (and `api_url`, for proxies and tests); `metrics` counts its failures."""
    token = settings.bot_token.get_secret_value() if with_token and settings.bot_token else None
    base_url = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
    if metrics is None:
        return AsyncWebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers())
    return CountedWebClient(
        token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers(metrics), metrics=metrics
    )


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the bot is, from auth.test."""

    team_id: str
    team: str
    bot_user_id: str
    bot_id: str | None
    url: str | None


async def whoami(client: AsyncWebClient) -> Identity:
    """Ask auth.test who the token belongs to."""
    answer = await client.auth_test()
    return Identity(
        team_id=str(answer.get("team_id") or ""),
        team=str(answer.get("team") or ""),
        bot_user_id=str(answer.get("user_id") or ""),
        bot_id=answer.get("bot_id"),
        url=answer.get("url"),
    )


def describe(exc: BaseException) -> str:
    """A one-line reason for a failed Slack call, without tokens."""
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if exc.response is not None else None
        status = exc.response.status_code if exc.response is not None else None
        return f"Slack answered {error or 'an error'}" + (f" (HTTP {status})" if status and status != 200 else "")
    return redact(f"cannot reach Slack: {type(exc).__name__}: {exc}".rstrip(": "))


async def check(settings: SlackSettings) -> str:
    """`inbox check`: auth.test with the bot token; raises with a readable reason."""
    client = make_client(settings)
    identity = await whoami(client)
    mode = "Socket Mode" if settings.app_token else "HTTP (/slack/events)"
    return f"bot <@{identity.bot_user_id}> in {identity.team or identity.team_id}, {mode}"
