"""The Slack Web API client: retries on rate limits and dropped connections, and the bot's identity."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import ClientError
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler, AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from inbox.settings import SlackSettings

# Network-level failures a Slack call may end with, besides Slack's own error answers.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (ClientError, asyncio.TimeoutError, OSError)


def retry_handlers() -> list[AsyncRetryHandler]:
    """slack_sdk's handlers: wait out `ratelimited` (Retry-After) and retry dropped connections."""
    return [AsyncRateLimitErrorRetryHandler(max_retry_count=2), AsyncConnectionErrorRetryHandler(max_retry_count=2)]


def make_client(settings: SlackSettings, *, with_token: bool = True, timeout: int = 10) -> AsyncWebClient:
    """A Web API client for the configured workspace (and `api_url`, for proxies and tests)."""
    token = settings.bot_token.get_secret_value() if with_token and settings.bot_token else None
    base_url = settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/"
    return AsyncWebClient(token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers())


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
    return f"cannot reach Slack: {type(exc).__name__}: {exc}".rstrip(": ")


async def check(settings: SlackSettings) -> str:
    """`inbox check`: auth.test with the bot token; raises with a readable reason."""
    client = make_client(settings)
    identity = await whoami(client)
    mode = "Socket Mode" if settings.app_token else "HTTP (/slack/events)"
    return f"bot <@{identity.bot_user_id}> in {identity.team or identity.team_id}, {mode}"
