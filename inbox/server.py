"""The HTTP server: webhooks in, /healthz, /metrics and the reports' CSV and JSON out (Slack joins it in HTTP mode)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from inbox import reports
from inbox.connector import Connector, PermanentError, Push, PushReceiver
from inbox.logs import log_context
from inbox.metrics import Metrics
from inbox.pipeline.actions import Actions
from inbox.pipeline.ingest import Ingestor, IngestResult, Source
from inbox.pipeline.liveness import Loops, StoreHealth
from inbox.pipeline.poller import Poller
from inbox.pipeline.pushes import PushKeeper
from inbox.reports import KEYS, page
from inbox.reports.figures import group_label, scope
from inbox.reports.links import LINK_LIFETIME, LinkRefused, LinkSigner
from inbox.reports.overview import overview
from inbox.reports.window import ReportError, Window, parse_window, report_zone
from inbox.settings import Settings
from inbox.sla import SlaState
from inbox.store import clocks, health, reportpage
from inbox.store.db import describe_outage, is_outage, store_wait

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from inbox.slack import Slack

log = logging.getLogger(__name__)
T = TypeVar("T")


class Served(Protocol):
    """What the server reads of the running inbox (`inbox.service.Inbox` is one), so it never imports the service."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def worker(self) -> str: ...
    @property
    def metrics(self) -> Metrics: ...
    @property
    def loops(self) -> Loops: ...
    @property
    def store_health(self) -> StoreHealth: ...
    @property
    def ingestor(self) -> Ingestor: ...
    @property
    def connectors(self) -> Mapping[str, Connector[Any, Any]]: ...
    @property
    def pollers(self) -> Mapping[str, Poller]: ...
    @property
    def slack(self) -> Slack | None: ...
    @property
    def actions(self) -> Actions: ...
    @property
    def pushes(self) -> PushKeeper: ...
    @property
    def report_links(self) -> LinkSigner | None: ...


INBOX_KEY: web.AppKey[Served] = web.AppKey("inbox")

# A push waits this long at most for the store, then gets 503 (a sender's own timeout is often 10 s) ...
PUSH_STORE_SECONDS = 5.0
# ... and this long for one SQLite lock, so that the wait ends in time even where a cancel cannot cut it short.
PUSH_LOCK_WAIT = 2.0
# What a refused push's sender is told to wait before trying again.
RETRY_AFTER_SECONDS = 5
# A push is triaged while it is stored: each item adds this much to its wait (thousands of items, seconds more).
PUSH_SECONDS_PER_ITEM = 0.002


@dataclass(slots=True)
class Site:
    """A started server and the port it listens on (useful with port 0)."""

    runner: web.AppRunner
    port: int


def build_app(inbox: Served) -> web.Application:
    """The aiohttp application with every route."""
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app[INBOX_KEY] = inbox
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/reports.json", reports_json)
    app.router.add_get("/reports.csv", reports_csv)
    app.router.add_get("/webhooks/{name}", webhook_handshake)
    app.router.add_post("/webhooks/{name}", webhook)
    app.router.add_get("/reports", reports_page)
    app.router.add_get(page.BREACHES_PATH, breaches_page)
    if inbox.slack is not None and not inbox.slack.socket_mode:
        app.router.add_post("/slack/events", inbox.slack.handle_http)
    return app


async def start_server(inbox: Served, host: str, port: int) -> Site:
    """Start serving; returns the bound port."""
    runner = web.AppRunner(build_app(inbox), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # noqa: SLF001 - aiohttp has no public accessor
    sockets = server.sockets if isinstance(server, asyncio.Server) else ()
    bound = sockets[0].getsockname()[1] if sockets else port
    return Site(runner, bound)


def _inbox(request: web.Request) -> Served:
    return request.app[INBOX_KEY]


async def healthz(request: web.Request) -> web.Response:
    """200 when the store can be read and written and every loop runs; 503 with the reason otherwise."""
    inbox = _inbox(request)
    loops = inbox.loops.report()
    reason = await inbox.store_health.check()
    if reason is None:
        try:
            async with asyncio.timeout(3):
                health = await _health_rows(inbox)
        except (SQLAlchemyError, OSError) as exc:  # TimeoutError included
            reason = f"store cannot be read: {describe_outage(exc)}"
    if reason is not None:
        # Logged once by store_health when the store goes down, not once per request.
        return web.json_response(
            {"status": "down", "database": "unreachable", "reason": reason, "loops": loops}, status=503
        )
    rows, leases, workers = health
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
            # A platform with nothing to poll says so, rather than looking like a poller that never ran.
            "polling": "nothing to poll: " + connector.no_polling if connector.pushes else "polled",
            "polled_by": leases.get(name),  # the worker whose lease on it holds now
            # Known to the worker that polls it: another's view would be stale since the lease moved.
            **_rate_limit(inbox, name, leases.get(name) in (None, inbox.worker)),
        }
        if notes := connector.notes():
            connectors[name]["notes"] = notes  # e.g. Bluesky DMs off for want of access: not unhealthy
    unhealthy = sorted(name for name, c in connectors.items() if not c["healthy"])
    stalled = inbox.loops.stalled()
    failing = any(not loop["ok"] for loop in loops.values())
    body: dict[str, Any] = {
        "status": "down" if stalled else "degraded" if unhealthy or failing else "ok",
        "database": "ok",
        "unhealthy": unhealthy,
        "worker": inbox.worker,
        "workers": workers,
        "connectors": connectors,
        "loops": loops,
    }
    if stalled:
        # A loop that stopped is a bug, and a restart is what an orchestrator can do about it.
        body["reason"] = "stalled: " + ", ".join(stalled)
        return web.json_response(body, status=503)
    return web.json_response(body)


async def _health_rows(inbox: Served) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    now = inbox.clock()
    seen = await health.overview(inbox.engine, now, now - timedelta(seconds=inbox.settings.workers.lease_seconds))
    return seen.health, seen.holders, seen.workers


def _rate_limit(inbox: Served, name: str, polled_here: bool) -> dict[str, str | None]:
    """Since and until when the vendor's rate limit refuses the connector's polls, as this worker saw while polling it."""
    poller = inbox.pollers.get(name)
    rate = poller.rate if poller is not None and polled_here else None
    return {
        "rate_limited_since": rate.since.isoformat() if rate and rate.since else None,
        "rate_limited_until": rate.until.isoformat() if rate and rate.until else None,
    }


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format, with the queue depth read fresh from the store (kept as last read while it is down)."""
    inbox = _inbox(request)
    try:
        counts = await clocks.open_by_stage(inbox.engine)
    except (SQLAlchemyError, OSError) as exc:
        log.warning("metrics: store unreachable, queue depth not refreshed: %s", exc)
        inbox.metrics.store_up.set(0)
    else:
        inbox.metrics.store_up.set(1)
        for stage in (SlaState.OK, SlaState.WARNING, SlaState.BREACHED, clocks.STOPPED):
            inbox.metrics.queue_depth.labels("answered" if stage is None else stage.value).set(counts.get(stage, 0))
    return web.Response(body=inbox.metrics.render(), content_type="text/plain", charset="utf-8")


# A report that takes longer than this is answered 503 (the store is overloaded or locked), never left hanging.
REPORT_SECONDS = 60.0


def reports_token_ok(settings: Settings, header: str | None) -> bool:
    """True when `header` (the Authorization header) carries `[reports] token` as a bearer token."""
    token = settings.reports.token
    if token is None or header is None:
        return False
    scheme, _, given = header.partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


async def reports_json(request: web.Request) -> web.StreamResponse:
    """The report as the contract's JSON object: `since`, `from`, `to`, `by` as `inbox report` takes them."""
    return await _report(request, "json")


async def reports_csv(request: web.Request) -> web.StreamResponse:
    """One CSV row per conversation started in the window."""
    return await _report(request, "csv")


async def _report(request: web.Request, fmt: str) -> web.StreamResponse:
    """401 without the bearer token (404 when no token is configured: the endpoints are off), 400 on a bad window or
    grouping, 503 with Retry-After while the store cannot answer."""
    inbox = _inbox(request)
    if inbox.settings.reports.token is None:
        return web.json_response({"error": "reports over HTTP are off: set [reports] token"}, status=404)
    if not reports_token_ok(inbox.settings, request.headers.get("Authorization")):
        return web.json_response(
            {"error": "missing or wrong bearer token"}, status=401, headers={"WWW-Authenticate": "Bearer"}
        )
    query = request.query
    now = inbox.clock()
    try:
        by = reports.check_by(query.get("by"))
        window = reports.parse_window(
            now,
            reports.report_zone(inbox.settings),
            since=query.get("since"),
            start=query.get("from"),
            end=query.get("to"),
        )
    except reports.ReportError as exc:
        return web.json_response({"error": str(exc).replace("--", "")}, status=400)
    pieces = reports.csv_pieces(inbox.engine, inbox.settings, window, now)
    try:
        async with asyncio.timeout(REPORT_SECONDS):
            if fmt == "csv":
                first = await anext(pieces)  # the store has answered: what follows streams, a page at a time
            else:
                report = await reports.build_report(inbox.engine, inbox.settings, window, by, now)
    except Exception as exc:
        await pieces.aclose()
        if not isinstance(exc, TimeoutError) and not is_outage(exc):
            raise
        reason = "the report took too long" if isinstance(exc, TimeoutError) else describe_outage(exc)
        return web.json_response(
            {"error": "the store cannot answer just now; try again later", "reason": reason},
            status=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    if fmt == "csv":
        return await _stream_csv(request, first, pieces)
    await pieces.aclose()
    return web.json_response(reports.report_json(report))


async def _stream_csv(request: web.Request, first: str, pieces: AsyncGenerator[str, None]) -> web.StreamResponse:
    """The CSV's pieces as they come from the store; if the store fails midway, the connection is cut (no final
    chunk), so that a client never takes a cut CSV for a whole one."""
    response = web.StreamResponse(headers={"Content-Disposition": 'attachment; filename="reports.csv"'})
    response.content_type = "text/csv"
    response.charset = "utf-8"
    try:
        await response.prepare(request)
        await response.write(first.encode())
        async for piece in pieces:
            await response.write(piece.encode())
    finally:
        await pieces.aclose()
    await response.write_eof()
    return response


def _receiver(request: web.Request) -> tuple[Served, PushReceiver | None]:
    inbox = _inbox(request)
    connector = inbox.connectors.get(request.match_info["name"])
    return inbox, connector if isinstance(connector, PushReceiver) else None


async def webhook_handshake(request: web.Request) -> web.Response:
    """A platform's GET check of its push endpoint (Meta: `hub.challenge` echoed when `hub.verify_token` matches)."""
    _, receiver = _receiver(request)
    if receiver is None:
        return web.json_response({"error": "no such webhook"}, status=404)
    with log_context(connector=request.match_info["name"]):
        answer = receiver.handshake(request.query)
        if answer is None:
            return web.json_response({"error": "this webhook takes POST only"}, status=405, headers={"Allow": "POST"})
        if answer.status >= 400:
            log.warning("refused a webhook verification: %s", answer.text)
        return web.Response(status=answer.status, text=answer.text, content_type="text/plain")


async def webhook(request: web.Request) -> web.Response:
    """Signed pushes: 401 unsigned or forged, stored (each item once) before the platform's 2xx, 503 while the store is down."""
    inbox, receiver = _receiver(request)
    if receiver is None:
        return web.json_response({"error": "no such webhook"}, status=404)
    connector: Connector[Any, Any] = inbox.connectors[request.match_info["name"]]
    with log_context(connector=connector.name):
        body = await request.read()
        if not receiver.verify(body, request.headers):
            log.warning("refused a webhook call with a missing or wrong signature")
            return web.json_response({"error": "missing or invalid signature"}, status=401)
        try:
            push = receiver.parse(body)
        except PermanentError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        for problem in push.problems:
            log.warning("skipped a pushed item: %s", problem)  # ingest logs those it skips itself
        if not push.items and receiver.requires_items:
            return web.json_response({"error": "no valid item", "problems": push.problems}, status=400)
        down = inbox.store_health.known_down()
        if down is not None:
            return _store_down(down)
        if receiver.keep_first:
            return await _keep(inbox, connector.name, body, push, receiver.accepted_status)
        # Triage runs inside ingest too: a large push gets more time, a few milliseconds an item.
        budget = PUSH_STORE_SECONDS + PUSH_SECONDS_PER_ITEM * len(push.items)

        async def store() -> IngestResult:
            result = await inbox.ingestor.ingest(Source.of(connector), push.items)
            await inbox.ingestor.update(Source.of(connector), push.updates)
            if push.deliveries:
                await inbox.actions.record_deliveries(connector.name, push.deliveries)
            return result

        result = await _within(inbox, store(), budget)
        if isinstance(result, web.Response):
            return result
        push.skipped((problem.index, problem.reason) for problem in result.problems)
        inbox.metrics.items_ingested.labels(connector.name).inc(result.stored)
        return web.json_response(
            {
                "stored": result.stored,
                "duplicates": result.duplicates,
                "skipped": len(push.refused),
                "deliveries": len(push.deliveries),
                "problems": push.problems,
            },
            status=receiver.accepted_status,
        )


async def _keep(inbox: Served, name: str, body: bytes, push: Push, status: int) -> web.Response:
    """Store the verified body as received, answer, and ingest it right after (PushKeeper)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return web.json_response({"error": "body is not UTF-8 JSON"}, status=400)
    kept = await _within(inbox, inbox.pushes.keep(name, text), PUSH_STORE_SECONDS)
    if isinstance(kept, web.Response):
        return kept
    answer = {"kept": True, "items": len(push.items), "deliveries": len(push.deliveries), "problems": push.problems}
    return web.json_response(answer, status=status)


async def _within(inbox: Served, work: Awaitable[T], budget: float) -> T | web.Response:
    """What the store work returns, or a 503 with Retry-After when it fails or takes longer than `budget` seconds."""
    try:
        with store_wait(PUSH_LOCK_WAIT):
            async with asyncio.timeout(budget):
                done = await work
    except TimeoutError:
        reason = f"the push was not stored within {budget:.0f} s"
        # Slow is not down: only a store that fails its own probe too is called unavailable on /healthz.
        if await inbox.store_health.check() is not None:
            inbox.store_health.failed(reason)
        return _store_down(reason)
    except Exception as exc:
        if not is_outage(exc):
            raise
        inbox.store_health.failed(exc)
        return _store_down(f"store error: {describe_outage(exc)}")
    inbox.store_health.worked()
    return done


def _store_down(reason: str) -> web.Response:
    """503 with Retry-After: the sender keeps the items and sends them again (each is still stored once)."""
    # The outage itself is logged once (StoreHealth), not once per refused push.
    log.debug("refused a push while the store is unavailable: %s", reason)
    return web.json_response(
        {"error": "the inbox cannot store items just now; send them again later", "reason": reason},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# ---------------------------------------------------------------------------------------------------- the leads' page


@dataclass(frozen=True, slots=True)
class _Opened:
    """A request allowed to see the page: its parameters, and how the links it shows are signed."""

    params: dict[str, str]
    link: page.Linker


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8", headers=page.HEADERS)


def _refused(reason: str) -> web.Response:
    advice = "Ask for a new link with /inbox report in Slack (it is valid for 24 hours)."
    return _html(page.render_refusal("This link does not open the report", reason, advice), 403)


def _opened(request: web.Request, inbox: Served) -> _Opened | web.Response:
    """Who may see the page: a bearer of `[reports] token`, or a link signed by this inbox and not expired."""
    now = inbox.clock()
    signer = inbox.report_links
    if "Authorization" in request.headers:
        if not reports_token_ok(inbox.settings, request.headers.get("Authorization")):
            log.warning("reports: refused a request with a missing or wrong bearer token")
            return _refused("The token is not this inbox's reports token")
        params = dict(request.query.items())
        if signer is None:
            # Without Slack there is no key to sign with: the lists open with the token too, not by link.
            return _Opened(params, lambda path, fields: f"{path}?{urlencode(sorted(fields.items()))}")
        expires = now + LINK_LIFETIME
    else:
        if signer is None:
            return _refused("This inbox gives no links (Slack is off); use its reports token")
        try:
            params = signer.check(request.path, request.query.items(), now)
        except LinkRefused as exc:
            log.info("reports: refused a link: %s", exc)
            return _refused(str(exc).capitalize())
        log.info("reports: %s opened by a link given to %s", request.path, params.get("for") or "(unnamed)")
        # Links on the page expire with it: a list never outlives the link that led to it.
        expires = signer.expiry(request.query) or now
    local = LinkSigner(key=signer.key)  # the page's own links are paths: they stay on the address it was opened at
    return _Opened(params, lambda path, fields: local.sign(path, fields, expires))


async def _unless_down(work: Awaitable[T]) -> T | web.Response:
    """What the page's queries return, or a 503 page while the store cannot answer (or takes too long)."""
    try:
        async with asyncio.timeout(REPORT_SECONDS):
            return await work
    except Exception as exc:
        if not isinstance(exc, TimeoutError) and not is_outage(exc):
            raise
        reason = "the report took too long" if isinstance(exc, TimeoutError) else describe_outage(exc)
        text = page.render_refusal("The report cannot be made just now", reason, "Try again in a minute.")
        response = _html(text, 503)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _window(inbox: Served, params: dict[str, str]) -> Window:
    now = inbox.clock()
    zone = report_zone(inbox.settings)
    return parse_window(now, zone, since=params.get("since"), start=params.get("from"), end=params.get("to"))


async def reports_page(request: web.Request) -> web.Response:
    """GET /reports: the team lead's page, for a signed link or the reports token."""
    inbox = _inbox(request)
    opened = _opened(request, inbox)
    if isinstance(opened, web.Response):
        return opened
    try:
        window = _window(inbox, opened.params)
    except ReportError as exc:
        return _html(page.render_refusal("This report cannot be made", str(exc), "Check the link's window."), 400)
    figures = await _unless_down(overview(inbox.engine, inbox.settings, window, inbox.clock()))
    if isinstance(figures, web.Response):
        return figures
    return _html(page.render_report(figures, opened.link, inbox.clock()))


async def breaches_page(request: web.Request) -> web.Response:
    """GET /reports/breaches: the conversations behind one breach count, with their Slack messages."""
    inbox = _inbox(request)
    opened = _opened(request, inbox)
    if isinstance(opened, web.Response):
        return opened
    params = opened.params
    by = params.get("by") or None
    try:
        window = _window(inbox, params)
        if by is not None and by not in KEYS:
            raise ReportError(f"{by!r} is not a grouping")
    except ReportError as exc:
        return _html(page.render_refusal("This list cannot be made", str(exc), "Check the link."), 400)
    group = params.get("group") or None
    rows = await _unless_down(
        reportpage.breaches(inbox.engine, scope(inbox.settings, window, inbox.clock()), by, group)
    )
    if isinstance(rows, web.Response):
        return rows
    what = None
    if by is not None:
        shown: str | int | None = int(group) if by == "hour" and group and group.isdigit() else group
        what = f"{by} {group_label(by, shown)}"
    back = opened.link("/reports", page.window_params(window))
    return _html(
        page.render_breaches(
            rows,
            what=what,
            start=window.start,
            end=window.end,
            zone_name=str(report_zone(inbox.settings)),
            permalinks=await _permalinks(inbox, rows),
            back=back,
        )
    )


async def _permalinks(inbox: Served, rows: list[reportpage.Breach]) -> dict[int, str]:
    """Each conversation's triage message in Slack, from its stored channel and ts and the workspace's address."""
    if inbox.slack is None:
        return {}
    try:
        me = await inbox.slack.identity()
    except Exception as exc:  # noqa: BLE001 - the list is still worth showing without its Slack links
        log.warning("reports: Slack did not say its workspace address, the list has no Slack links: %s", exc)
        return {}
    if not me.url:
        return {}
    base = me.url.rstrip("/")
    return {
        row.conversation_id: f"{base}/archives/{row.slack_channel}/p{row.slack_ts.replace('.', '')}"
        for row in rows
        if row.slack_channel and row.slack_ts
    }
