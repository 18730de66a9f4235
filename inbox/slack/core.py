"""What the Slack app uses of the inbox core: handed over by the service, so Slack never sees the whole `Inbox`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.connector import Connector
from inbox.metrics import Metrics
from inbox.pipeline.actions import Actions
from inbox.reports.links import LinkSigner
from inbox.settings import Settings, TriageSettings
from inbox.sla import SlaPolicies
from inbox.templates import ReplyTemplates


@dataclass(frozen=True, slots=True)
class Core:
    """The store, the clock and the pieces Slack's buttons and views call, nothing else."""

    engine: AsyncEngine
    clock: Callable[[], datetime]
    metrics: Metrics
    claim_seconds: float  # how long a worker owns a claimed event or reply
    policies: SlaPolicies
    templates: ReplyTemplates
    triage: TriageSettings  # the brand and agent name a reply's template variables come from
    actions: Actions  # send, assign, resolve: the work behind every button
    connectors: Mapping[str, Connector[Any, Any]]  # for their health and display names on the dashboard
    settings: Settings  # what reports read: the SLA targets, the report time zone, the digest's slot
    report_links: LinkSigner | None  # signs the links `/inbox report` gives to the page
