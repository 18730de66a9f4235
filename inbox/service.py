"""The assembled inbox: store, triage, connectors, sweep and outbox; and `inbox run`'s scheduler."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import connectors as registry
from inbox.connector import Connector, PushReceiver
from inbox.logs import SECRETS, log_context
from inbox.metrics import Metrics
from inbox.pipeline.actions import Actions
from inbox.pipeline.backfill import Backfill, BackfillProgress, Report, connector_settings
from inbox.pipeline.csat import CsatAsker
from inbox.pipeline.ingest import Ingestor
from inbox.pipeline.liveness import Loops, StoreHealth
from inbox.pipeline.outbox import Bell, LogNotifier, Notifier, Outbox
from inbox.pipeline.poller import STORE_RETRY_MAX, Poller
from inbox.pipeline.privacy import Retention
from inbox.pipeline.pushes import PushKeeper
from inbox.pipeline.sweep import SlaSweep
from inbox.pipeline.workers import Leases, worker_id
from inbox.reports.links import signer_for
from inbox.settings import Settings
from inbox.store.db import create_engine, is_outage, migrate
from inbox.store.models import utcnow
from inbox.templates import ReplyTemplates
from inbox.triage import Triager, load_rules

if TYPE_CHECKING:
    from inbox.slack import Slack

log = logging.getLogger(__name__)

PUSH_INTAKE_SECONDS = 5.0  # how often stored pushes that nobody is ingesting are looked for
DIGEST_CHECK_SECONDS = 60.0  # how often `inbox run` asks whether the weekly digest is due
RETENTION_SECONDS = 86_400.0  # [retention] erases what is due once a day


class Inbox:
    """Every core piece built once from the settings; what `run`, `demo`, `queue` and tests share."""

    def __init__(
        self,
        settings: Settings,
        engine: AsyncEngine,
        *,
        clock: Callable[[], datetime] = utcnow,
        notifiers: Sequence[Notifier] | None = None,
        triager: Triager | None = None,
        templates: ReplyTemplates | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.clock = clock
        SECRETS.add_settings(settings)  # whatever logs, stores or posts an error redacts these
        self.worker = worker_id()
        # Outbox events and replies stay one worker's for two lease periods; a dead worker's are taken over after.
        self.claim_seconds = 2 * settings.workers.lease_seconds
        self.metrics = Metrics()
        self.store_health = StoreHealth(engine)  # what /healthz and pushes ask before trusting the store
        self.loops = Loops(clock=clock)  # every loop of `inbox run` reports its rounds here, for /healthz
        self.bell = Bell()  # rung by whatever writes events, so the outbox delivers them at once
        self.policies = settings.sla.policies()
        self.triager = triager or Triager(load_rules(settings.triage.rules))
        self.templates = templates or ReplyTemplates(settings.triage.templates)
        self.ingestor = Ingestor(
            engine,
            self.triager,
            self.templates,
            self.policies,
            brand=settings.triage.brand,
            agent_name=settings.triage.agent_name,
            clock=clock,
            on_event=self.bell.ring,
            answer_hours=settings.csat.answer_hours if settings.csat.enabled else None,
        )
        self.connectors: dict[str, Connector[Any, Any]] = {
            c.name: registry.build(c) for c in settings.connectors if c.enabled
        }
        self.pollers = {
            name: Poller(c, self.ingestor, metrics=self.metrics, clock=clock)
            for name, c in self.connectors.items()
            if not c.pushes
        }
        self.actions = Actions(
            engine,
            self.connectors,
            clock,
            worker=self.worker,
            claim_seconds=self.claim_seconds,
            metrics=self.metrics,
            on_event=self.bell.ring,
        )
        self.csat: CsatAsker | None = None
        if settings.csat.enabled:
            self.csat = CsatAsker(
                engine,
                settings.csat,
                self.connectors,
                clock,
                brand=settings.triage.brand,
                worker=self.worker,
                claim_seconds=self.claim_seconds,
                on_event=self.bell.ring,
            )
            self.actions.ask_at = self.csat.ask_at
        self.sweep = SlaSweep(
            engine,
            clock,
            on_event=self.bell.ring,
            window_lead=timedelta(minutes=settings.sla.reply_window_warn_minutes),
            csat=self.csat,
        )
        self.retention = Retention(engine, settings.retention.text_days, clock, on_event=self.bell.ring)
        self.pushes = PushKeeper(
            engine, self.ingestor, self.actions, self.connectors, clock, worker=self.worker, metrics=self.metrics
        )
        # Signs the links to /reports that Slack gives out; None with Slack off (the page opens with the token only).
        self.report_links = signer_for(settings)
        self.slack: Slack | None = None
        if settings.slack.enabled:
            from inbox.slack import Slack  # only an installation with Slack on loads Bolt
            from inbox.slack.core import Core

            core = Core(
                engine=engine,
                clock=clock,
                metrics=self.metrics,
                claim_seconds=self.claim_seconds,
                policies=self.policies,
                templates=self.templates,
                triage=settings.triage,
                actions=self.actions,
                connectors=self.connectors,
                settings=settings,
                report_links=self.report_links,
            )
            self.slack = Slack(settings.slack, core)
        default: list[Notifier] = [self.slack.notifier] if self.slack else [LogNotifier()]
        self.outbox = Outbox(
            engine,
            list(notifiers) if notifiers is not None else default,
            self.policies,
            clock,
            worker=self.worker,
            claim_seconds=self.claim_seconds,
            concurrency=settings.workers.outbox_concurrency,
        )

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], datetime] = utcnow,
        notifiers: Sequence[Notifier] | None = None,
        engine: AsyncEngine | None = None,
    ) -> Inbox:
        """Connect to the store, bring its schema up to date and build everything."""
        engine = engine or create_engine(settings.database.url)
        await migrate(engine)
        return cls(settings, engine, clock=clock, notifiers=notifiers)

    async def close(self) -> None:
        """Finish Slack's acknowledged work, then close connectors and the store."""
        if self.slack is not None:
            await self.slack.close()
        await self.pushes.close()
        for connector in self.connectors.values():
            await connector.close()
        await self.engine.dispose()


class Runner:
    """`inbox run`: schedules polls (with jitter and backoff), leases, the SLA sweep, the outbox and reply recovery."""

    def __init__(self, inbox: Inbox, *, outbox_seconds: float = 1.0) -> None:
        self.inbox = inbox
        self.outbox_seconds = outbox_seconds
        lease_seconds = inbox.settings.workers.lease_seconds
        self.leases = Leases(inbox.engine, inbox.worker, list(inbox.pollers), seconds=lease_seconds, clock=inbox.clock)
        for poller in inbox.pollers.values():
            poller.leases = self.leases
        # A job that starts late (a busy loop, a slow start-up) still runs: by default APScheduler would drop
        # a date job more than a second late, and a dropped poll would end that connector's chain of polls.
        self.scheduler = AsyncIOScheduler(timezone="UTC", job_defaults={"misfire_grace_time": None, "coalesce": True})
        self._running: set[asyncio.Task[Any]] = set()
        self._polling: set[str] = set()
        self._streams: dict[str, asyncio.Task[None]] = {}
        self._outbox: asyncio.Task[None] | None = None
        self._warming: asyncio.Task[None] | None = None
        self._delivering = False
        self._first_polls: set[str] = set()
        self._stopping = False

    async def start(self) -> None:
        """Take this worker's share of the connectors, add every job and start the scheduler."""
        try:
            await self._refresh_leases()
        except Exception:
            log.exception("cannot take connector leases yet; retrying every %.0f s", self.leases.refresh_seconds)
        self._first_polls = set(self.leases.held)
        now = utcnow()
        loops = self.inbox.loops
        # A random first offset so a hundred connectors do not all fire in the same second; spread 50 ms per
        # connector (5 s at most), so that one or a few, as after a restart, are polled at once.
        spread = min(5.0, 0.05 * len(self.inbox.pollers))
        for name, poller in self.inbox.pollers.items():
            offset = random.uniform(0, min(poller.connector.settings.poll_seconds, spread))
            loops.add(_poll_loop(poller), first_in=offset, budget=_poll_budget(poller))
            self.scheduler.add_job(
                self._poll, "date", run_date=now + timedelta(seconds=offset), args=[poller], id=f"poll:{name}"
            )
        sla = self.inbox.settings.sla
        lease_seconds = self.inbox.settings.workers.lease_seconds
        # Each job: (name, what it runs, interval, seconds a round may take before the loop counts as stalled).
        jobs: list[tuple[str, Callable[[], Awaitable[Any]], float, float]] = [
            ("leases", self._refresh_leases, self.leases.refresh_seconds, 120.0),
            ("sla-sweep", self.inbox.sweep.run, sla.check_seconds, 300.0),
            ("reply-recovery", self.inbox.actions.recover, lease_seconds, 900.0),
        ]
        if self.inbox.slack is not None and self.inbox.slack.digest is not None:
            # Asks each minute, on the inbox's clock, whether the weekly digest's slot has come (posted once a week).
            jobs.append(("report-digest", self.inbox.slack.digest.run, DIGEST_CHECK_SECONDS, 600.0))
        if self.inbox.retention.enabled:
            # At the start, then daily: what is due is erased within a day of falling due.
            jobs.append(("retention", self.inbox.retention.run, RETENTION_SECONDS, 3600.0))
        if any(isinstance(c, PushReceiver) and c.keep_first for c in self.inbox.connectors.values()):
            # Pushes kept but not ingested: left by a crash or a store outage, or by another worker.
            jobs.append(("push-intake", self.inbox.pushes.ingest, PUSH_INTAKE_SECONDS, 300.0))
        for name, job, seconds, budget in jobs:
            first = seconds if name == "leases" else 0.0  # the leases were just taken above
            loops.add(name, first_in=first, budget=budget)
            self.scheduler.add_job(
                self._guard(name, job, seconds),
                "interval",
                seconds=seconds,
                id=name,
                next_run_time=now + timedelta(seconds=first),
                max_instances=1,
                coalesce=True,
            )
        self.scheduler.start()
        self._outbox = asyncio.create_task(self._deliver_forever(), name="outbox")
        loops.add("outbox", first_in=0.0, budget=_OUTBOX_BUDGET, task=self._outbox)
        self._warming = asyncio.create_task(self._warm_up(), name="warm-up")
        # What start-up built (settings, connectors, their sessions, triage rules) lives as long as the process:
        # kept out of the collector, full collections no longer walk it and stall the loop for a fifth of a second.
        gc.freeze()

    async def stop(self, grace: float = 30.0) -> None:
        """Stop starting work, let in-flight work finish for `grace` seconds, cancel the rest, hand the leases back."""
        # Paused, not shut down: APScheduler's shutdown cancels the jobs still running, which must finish first.
        self.scheduler.pause()
        self._stopping = True
        self.inbox.loops.stopping = True
        self.inbox.bell.ring()
        for stream in self._streams.values():
            stream.cancel()
        if self._warming is not None:
            self._warming.cancel()
        running = set(self._running) | ({self._outbox} if self._outbox else set())
        if running:
            _done, late = await asyncio.wait(running, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                log.warning("stopped %d job(s) still running after %.0f s", len(late), grace)
                await asyncio.wait(late, timeout=5)
        self.scheduler.shutdown(wait=False)
        try:
            await self.leases.release()
        except Exception:  # noqa: BLE001 - the leases then simply run out
            log.warning("could not hand the connector leases back; other workers take them over when they run out")

    async def _deliver_forever(self) -> None:
        """The outbox: deliver what is due, then wait for the bell (new events) or the next turn, until stopped."""
        failures = 0
        while not self._stopping:
            self._delivering = True
            try:
                await self.inbox.outbox.dispatch()
            except Exception as exc:  # noqa: BLE001 - a failing delivery round must not end the deliveries
                failures += 1
                # Backs off while the store (or a bug) keeps it failing; the bell still wakes it for new events.
                wait = min(_OUTBOX_RETRY_MAX, self.outbox_seconds * 2 ** min(failures, 10)) * random.uniform(0.8, 1.0)
                self._round_failed("outbox", exc, wait)
            else:
                failures = 0
                wait = self.outbox_seconds
                self._round_ok("outbox", wait)
            finally:
                self._delivering = False
            if not self._stopping:
                await self.inbox.bell.wait(wait)

    async def _refresh_leases(self) -> None:
        change = await self.leases.refresh()
        for name in change.gained:
            # A connector taken over is polled now, not at the end of the interval the old worker had set.
            if name not in self._polling and self.scheduler.running:
                self._schedule(self.inbox.pollers[name], 0.0)
        self._follow_streams()

    def _follow_streams(self) -> None:
        """Streams run where the lease is: started on gaining a streaming connector, stopped on losing it."""
        for name, poller in self.inbox.pollers.items():
            if not poller.connector.streaming:
                continue
            task = self._streams.get(name)
            if self.leases.holds(name) and (task is None or task.done()):
                self._streams[name] = asyncio.create_task(poller.follow_stream(), name=f"stream:{name}")
            elif not self.leases.holds(name) and task is not None:
                task.cancel()
                del self._streams[name]

    async def _poll(self, poller: Poller) -> None:
        """One round of a connector's chain of polls; whatever happens, the next one is scheduled."""
        name = _poll_loop(poller)
        delay = min(poller.connector.settings.poll_seconds, STORE_RETRY_MAX)  # if even the round's own code fails
        task = asyncio.current_task()
        try:
            if not self.leases.holds(poller.name):
                # Another worker's connector (or none's yet): look again when the leases are next shared out.
                delay = self.leases.refresh_seconds
                self._round_ok(name, delay, store=False)
                return
            if task is not None:
                self._running.add(task)
            self._polling.add(poller.name)
            result = await poller.poll_once()
            delay = result.delay
            if result.store_down:
                # The poller logged it once already; the loop shows it on /healthz.
                self._round_failed(name, result.error or "store error", delay, quiet=True)
            else:
                self._round_ok(name, delay)
        except Exception as exc:  # noqa: BLE001 - poll_once contains its errors; this is the chain's last guard
            self._round_failed(name, exc, delay)
        finally:
            self._polling.discard(poller.name)
            self._first_polls.discard(poller.name)
            if task is not None:
                self._running.discard(task)
            self._schedule(poller, delay)

    async def _warm_up(self) -> None:
        """Load triage's language models (seconds of CPU that hold the event loop) in quiet moments, a language at a time.

        Not before the first polls: a restarted worker polls and posts at once, and most items need no model (their
        language shows in stopwords or letters); one that does loads the models in its triage. A language at a
        time, so the loop is never held long enough for the other workers to think this one dead.
        """
        loop = asyncio.get_running_loop()
        try:
            for step in self.inbox.triager.warm_up_steps():
                # Quiet: every connector held at start polled once, and no poll or Slack delivery under way; but
                # 5 s at most, so that a worker that is never quiet still loads them, in small pieces.
                give_up = loop.time() + 5.0
                # "Quiet" is several conditions, none with an event of its own: looked at ten times a second.
                while (  # noqa: ASYNC110
                    self._polling or self._delivering or self._first_polls & set(self.leases.held)
                ) and loop.time() < give_up:
                    await asyncio.sleep(0.1)
                step()
                await asyncio.sleep(0)
        except Exception:
            log.exception("loading the language models failed; triage loads them when it needs them")

    def _schedule(self, poller: Poller, delay: float) -> None:
        if not self.scheduler.running:
            return
        try:
            self.scheduler.add_job(
                self._poll,
                "date",
                run_date=utcnow() + timedelta(seconds=delay),
                args=[poller],
                id=f"poll:{poller.name}",
                replace_existing=True,
            )
        except Exception:
            log.exception("could not schedule the next poll of %s", poller.name)

    def _guard(self, name: str, job: Callable[[], Any], seconds: float) -> Callable[[], Any]:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await job()
            except Exception as exc:  # noqa: BLE001 - a failing round must not stop the schedule
                self._round_failed(name, exc, seconds)
            else:
                self._round_ok(name, seconds)
            finally:
                if task is not None:
                    self._running.discard(task)

        return run

    def _round_ok(self, name: str, next_in: float, *, store: bool = True) -> None:
        self.inbox.loops.ok(name, next_in)
        if store:  # the round read and wrote the store
            self.inbox.store_health.worked()

    def _round_failed(self, name: str, exc: BaseException | str, next_in: float, *, quiet: bool = False) -> None:
        self.inbox.loops.failed(name, exc, next_in, quiet=quiet)
        if isinstance(exc, str) or is_outage(exc):
            self.inbox.store_health.failed(exc)


# A delivery round may be long (a backlog, a slow Slack) before the outbox counts as stalled.
_OUTBOX_BUDGET = 600.0
# While deliveries fail, the outbox waits at most this long between rounds (new events wake it sooner).
_OUTBOX_RETRY_MAX = 10.0


def _poll_loop(poller: Poller) -> str:
    return f"poll:{poller.name}"


def _poll_budget(poller: Poller) -> float:
    # A poll is abandoned after its timeout; beyond that and a margin for a busy loop, the chain is broken.
    return poller.timeout + 60.0


async def run_backfill(
    settings: Settings,
    name: str,
    since: timedelta,
    *,
    report: Report | None = None,
    engine: AsyncEngine | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> BackfillProgress:
    """`inbox backfill`: open the store, backfill connector `name` from `since` ago, close the store."""
    target = connector_settings(settings, name, registry)
    inbox = await Inbox.open(settings, notifiers=[], engine=engine, clock=clock)
    try:
        return await Backfill(target, inbox.ingestor, since, types=registry, report=report, sleep=sleep).run()
    finally:
        await inbox.close()


async def serve(settings: Settings, *, ready: asyncio.Event | None = None, stop: asyncio.Event | None = None) -> None:
    """Run the service until SIGTERM/SIGINT (or `stop`), then finish in-flight work."""
    inbox = await Inbox.open(settings)
    # Several workers may share one store and one log shipper: each line says which worker wrote it.
    with log_context(worker=inbox.worker):
        await _serve(inbox, ready, stop or asyncio.Event())


async def _serve(inbox: Inbox, ready: asyncio.Event | None, stop: asyncio.Event) -> None:
    from inbox.server import start_server

    settings = inbox.settings
    runner = Runner(inbox)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    site = await start_server(inbox, settings.server.host, settings.server.port)
    if inbox.slack is not None:
        await inbox.slack.start()
    await runner.start()
    log.info(
        "inbox running as worker %s: %d connector(s), Slack %s, listening on %s:%d",
        inbox.worker,
        len(inbox.connectors),
        "on" if settings.slack.enabled else "off (escalations go to this log)",
        settings.server.host,
        site.port,
    )
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("stopping: finishing in-flight work")
        await runner.stop()
        await site.runner.cleanup()
        await inbox.close()
