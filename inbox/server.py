"""The HTTP server: webhooks in, /healthz and /metrics out (Slack joins it in HTTP mode)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from inbox.connector import PermanentError
from inbox.ingest import Source
from inbox.logs import log_context
from inbox.models import ConnectorHealth, ConnectorLease, SlaStage, Thread, Worker, thread_is_open

if TYPE_CHECKING:
    from inbox.service import Inbox

log = logging.getLogger(__name__)

INBOX_KEY = web.AppKey("inbox", object)


@dataclass(slots=True)
class Site:
    """A started server and the port it listens on (useful with port 0)."""

    runner: web.AppRunner
    port: int


def build_app(inbox: Inbox) -> web.Application:
    """The aiohttp application with every route."""
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[INBOX_KEY] = inbox
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/webhooks/{name}", webhook)
    slack = getattr(inbox, "slack", None)
    if slack is not None and not slack.socket_mode:
        app.router.add_post("/slack/events", slack.handle_http)
    return app


async def start_server(inbox: Inbox, host: str, port: int) -> Site:
    """Start serving; returns the bound port."""
    runner = web.AppRunner(build_app(inbox), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server else []  # noqa: SLF001 - aiohttp has no public accessor
    bound = sockets[0].getsockname()[1] if sockets else port
    return Site(runner, bound)


def _inbox(request: web.Request) -> Inbox:
    return request.app[INBOX_KEY]  # type: ignore[return-value]


async def healthz(request: web.Request) -> web.Response:
    """Store reachable (else 503), which connectors are unhealthy, and each connector's health with its reason."""
    inbox = _inbox(request)
    try:
        async with inbox.engine.connect() as conn:
            rows = {r.connector: r for r in await conn.execute(sa.select(ConnectorHealth))}
            now = inbox.clock()
            leases = {
                r.connector: r.worker
                for r in await conn.execute(sa.select(ConnectorLease.connector, ConnectorLease.worker).where(ConnectorLease.expires_at > now))
            }
            alive = now - timedelta(seconds=inbox.settings.workers.lease_seconds)
            workers = sorted((await conn.execute(sa.select(Worker.id).where(Worker.seen_at > alive))).scalars())
    except (SQLAlchemyError, OSError) as exc:
        log.error("healthz: store unreachable: %s", exc)
        return web.json_response({"status": "down", "database": "unreachable"}, status=503)
    connectors: dict[str, Any] = {}
    for name, connector in inbox.connectors.items():
        row = rows.get(name)
        connectors[name] = {
            "type": connector.type,
            "healthy": row.healthy if row else True,
            "reason": row.reason if row else None,
            "failures": row.failures if row else 0,
            "last_ok_at": row.last_ok_at.isoformat() if row and row.last_ok_at else None,
            "polled": row is not None or connector.pushes,
            "polled_by": leases.get(name),  # the worker whose lease on it holds now
        }
    unhealthy = sorted(name for name, c in connectors.items() if not c["healthy"])
    return web.json_response(
        {
            "status": "degraded" if unhealthy else "ok", "database": "ok", "unhealthy": unhealthy,
            "worker": inbox.worker, "workers": workers, "connectors": connectors,
        }
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format, with the queue depth read fresh from the store (kept as last read while it is down)."""
    inbox = _inbox(request)
    try:
        async with inbox.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(Thread.sla_stage, sa.func.count())
                .where(thread_is_open())
                .group_by(Thread.sla_stage)
            )
            counts = {stage: n for stage, n in rows}
    except (SQLAlchemyError, OSError) as exc:
        log.warning("metrics: store unreachable, queue depth not refreshed: %s", exc)
        inbox.metrics.store_up.set(0)
    else:
        inbox.metrics.store_up.set(1)
        names = {SlaStage.RUNNING: "ok", SlaStage.WARNED: "warning", SlaStage.BREACHED: "breached", SlaStage.STOPPED: "answered"}
        for stage, name in names.items():
            inbox.metrics.queue_depth.labels(name).set(counts.get(stage, 0))
    return web.Response(body=inbox.metrics.render(), content_type="text/plain", charset="utf-8")


async def webhook(request: web.Request) -> web.Response:
    """Signed items from any system: 401 unsigned or forged, 202 stored (each item once)."""
    from inbox.connectors.webhook import SIGNATURE_HEADER, WebhookConnector

    inbox = _inbox(request)
    connector = inbox.connectors.get(request.match_info["name"])
    if not isinstance(connector, WebhookConnector):
        return web.json_response({"error": "no such webhook"}, status=404)
    with log_context(connector=connector.name):
        body = await request.read()
        if not connector.verify(body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("refused a webhook call with a missing or wrong signature")
            return web.json_response({"error": "missing or invalid signature"}, status=401)
        try:
            push = connector.parse(body)
        except PermanentError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for problem in push.problems:
            log.warning("skipped a pushed item: %s", problem)  # ingest logs those it skips itself
        if not push.items:
            return web.json_response({"error": "no valid item", "problems": push.problems}, status=400)
        result = await inbox.ingestor.ingest(Source.of(connector), push.items)
        push.skipped(result.problems)
        inbox.metrics.items_ingested.labels(connector.name).inc(result.stored)
        return web.json_response(
            {"stored": result.stored, "duplicates": result.duplicates, "skipped": len(push.refused), "problems": push.problems},
            status=202,
        )
