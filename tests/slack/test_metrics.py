"""Slack API errors and retries, counted by method and error, as /metrics shows them."""

from __future__ import annotations

import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from inbox.fakes.slack import TOKEN, Fault
from inbox.metrics import Metrics
from inbox.slack.api import CountedRetries, CountedWebClient
from tests.slack.conftest import TRIAGE, Harness


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def errors(harness: Harness, method: str, error: str) -> float:
    return value(harness.inbox.metrics, "inbox_slack_api_errors_total", method=method, error=error)


def retries(harness: Harness, method: str, reason: str) -> float:
    return value(harness.inbox.metrics, "inbox_slack_api_retries_total", method=method, reason=reason)


async def test_a_rate_limit_waited_out_is_a_retry_and_one_beyond_the_retries_an_error(harness: Harness):
    harness.fake.fail("chat.postMessage")  # once: the client waits and posts
    thread = await harness.customer_says("1")
    assert await harness.dispatch() == 1
    assert (
        retries(harness, "chat.postMessage", "ratelimited"),
        errors(harness, "chat.postMessage", "ratelimited"),
    ) == (1, 0)

    harness.fake.fail("chat.update", times=3)  # more than the client's two retries: the outbox keeps the event
    await harness.inbox.actions.assign(thread, "UAGENT001")
    assert await harness.dispatch() == 0
    assert retries(harness, "chat.update", "ratelimited") == 2 and errors(harness, "chat.update", "ratelimited") == 1


async def test_slack_error_codes_and_outages_are_counted_by_method(harness: Harness):
    harness.fake.fail("chat.postMessage", Fault(200, {"ok": False, "error": "channel_not_found"}))
    with pytest.raises(SlackApiError):
        await harness.slack.client.chat_postMessage(channel=TRIAGE, text="hello")
    harness.fake.down = True  # a proxy in front of Slack answers 503 with a text page
    with pytest.raises(SlackApiError):
        await harness.slack.client.conversations_history(channel=TRIAGE)
    harness.fake.down = False
    assert errors(harness, "chat.postMessage", "channel_not_found") == 1
    assert errors(harness, "conversations.history", "http_503") == 1

    async with harness.http.get(f"{harness.url}/metrics") as response:
        text = await response.text()
    shown = {
        (s.name, s.labels.get("method"), s.labels.get("error")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "inbox_slack_api_errors_total"
    }
    assert shown == {
        ("inbox_slack_api_errors_total", "chat.postMessage", "channel_not_found"): 1,
        ("inbox_slack_api_errors_total", "conversations.history", "http_503"): 1,
    }


async def test_network_errors_are_counted_with_their_retries():
    with socket.socket() as probe:  # a port nothing listens on: every attempt fails to connect
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics = Metrics()
    quick = AsyncConnectionErrorRetryHandler(
        max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
    )
    client = CountedWebClient(
        token=TOKEN,
        base_url=f"http://127.0.0.1:{port}/api/",
        retry_handlers=[CountedRetries(quick, "connection_error", metrics)],
        metrics=metrics,
    )
    with pytest.raises(OSError):
        await client.chat_postMessage(channel=TRIAGE, text="hello")
    assert value(metrics, "inbox_slack_api_retries_total", method="chat.postMessage", reason="connection_error") == 2
    assert value(metrics, "inbox_slack_api_errors_total", method="chat.postMessage", error="ClientConnectorError") == 1
