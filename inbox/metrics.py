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

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
