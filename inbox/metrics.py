"""Prometheus metrics, one registry per running service (so tests can run several)."""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds from the customer's post to our reply: fine around a 30-minute SLA (warned at 20), then hours for reviews.
RESPONSE_BUCKETS = (
    60,
    300,
    600,
    900,
    1200,
    1800,
    2700,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    24 * 3600,
    48 * 3600,
    7 * 24 * 3600,
)


class Metrics:
    """The counters and histograms `/metrics` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.items_ingested = Counter(
            "inbox_items_ingested_total", "Items stored, per connector", ["connector"], registry=self.registry
        )
        self.poll_errors = Counter(
            "inbox_poll_errors_total",
            "Failed polls, per connector and error kind",
            ["connector", "kind"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "inbox_rate_limited_total",
            "Polls the vendor's rate limit refused (a 429, or its announced budget spent), per connector; not failures",
            ["connector"],
            registry=self.registry,
        )
        self.rate_limited_until = Gauge(
            "inbox_rate_limited_until_seconds",
            "Unix time of the next try of a rate-limited connector (the vendor's reset plus jitter); 0 when not rate limited",
            ["connector"],
            registry=self.registry,
        )
        self.poll_seconds = Histogram(
            "inbox_poll_duration_seconds", "Time to poll a connector", ["connector"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "inbox_queue_depth", "Open conversations by SLA state", ["state"], registry=self.registry
        )
        self.store_up = Gauge(
            "inbox_store_up", "1 when the last /metrics scrape could read the store, else 0", registry=self.registry
        )
        self.response_seconds = Histogram(
            "inbox_response_time_seconds",
            "Seconds from the customer's post (the SLA clock's start) to our reply, per channel and clock kind",
            ["channel", "clock_kind"],
            buckets=RESPONSE_BUCKETS,
            registry=self.registry,
        )
        self.slack_errors = Counter(
            "inbox_slack_api_errors_total",
            "Slack Web API calls that failed, per method and error (Slack's error code, http_<status> or the network error)",
            ["method", "error"],
            registry=self.registry,
        )
        self.slack_retries = Counter(
            "inbox_slack_api_retries_total",
            "Slack Web API calls retried by the client, per method and reason (ratelimited, connection_error)",
            ["method", "reason"],
            registry=self.registry,
        )

    def observe_response(self, channel: str, clock_kind: str, clock_start: datetime, sent_at: datetime) -> None:
        """A reply went out: record how long the customer waited for it."""
        waited = max(0.0, (sent_at - clock_start).total_seconds())
        self.response_seconds.labels(channel, clock_kind).observe(waited)

    def slack_error(self, method: str, error: str) -> None:
        """A Slack call failed for good (after the client's own retries)."""
        self.slack_errors.labels(method, error).inc()

    def slack_retry(self, method: str, reason: str) -> None:
        """The Slack client is about to try a call again."""
        self.slack_retries.labels(method, reason).inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
