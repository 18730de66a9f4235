"""Prometheus metrics, one registry per running service (so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    """The counters and histograms `/metrics` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.items_ingested = Counter(
            "inbox_items_ingested_total", "Items stored, per connector", ["connector"], registry=self.registry
        )
        self.poll_errors = Counter(
            "inbox_poll_errors_total", "Failed polls, per connector and error kind", ["connector", "kind"], registry=self.registry
        )
        self.poll_seconds = Histogram(
            "inbox_poll_duration_seconds", "Time to poll a connector", ["connector"], registry=self.registry
        )
        self.queue_depth = Gauge(
            "inbox_queue_depth", "Open conversations by SLA state", ["state"], registry=self.registry
        )
        self.first_response = Histogram(
            "inbox_first_response_minutes",
            "Minutes from the customer's post to our first reply",
            ["channel"],
            buckets=(5, 10, 15, 20, 30, 45, 60, 120, 240, 480, 1440),
            registry=self.registry,
        )
        self.notify_errors = Counter(
            "inbox_notify_errors_total", "Failed deliveries to Slack or other notifiers", ["notifier"], registry=self.registry
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
