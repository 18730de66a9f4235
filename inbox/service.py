"""The assembled inbox: store, triage, connectors, sweep and outbox; and `inbox run`'s scheduler."""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import signal
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import connectors as registry
from inbox.actions import Actions
from inbox.settings import Settings
from inbox.connector import Connector
from inbox.db import create_engine, migrate
from inbox.ingest import Ingestor
from inbox.logs import SECRETS, log_context
from inbox.metrics import Metrics
from inbox.models import utcnow
from inbox.outbox import Bell, LogNotifier, Notifier, Outbox
from inbox.poller import Poller
from inbox.sweep import SlaSweep
from inbox.templates import ReplyTemplates
from inbox.triage import Triager, load_rules
from inbox.workers import Leases, worker_id

if TYPE_CHECKING:
    from inbox.slack import Slack

log = logging.getLogger(__name__)


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
            engine, self.connectors, clock, worker=self.worker, claim_seconds=self.claim_seconds, metrics=self.metrics,
            on_event=self.bell.ring,
        )
        self.sweep = SlaSweep(engine, clock, on_event=self.bell.ring)
        self.slack: Slack | None = None
        if settings.slack.enabled:
            from inbox.slack import Slack  # only an installation with Slack on loads Bolt

            self.slack = Slack(settings.slack, self)
        default: list[Notifier] = [self.slack.notifier] if self.slack else [LogNotifier()]
        self.outbox = Outbox(
            engine, list(notifiers) if notifiers is not None else default, self.policies, clock,
            worker=self.worker, claim_seconds=self.claim_seconds, concurrency=settings.workers.outbox_concurrency,
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
        except Exception:  # noqa: BLE001 - the store may be down at start; the lease job tries again
            log.exception("cannot take connector leases yet; retrying every %.0f s", self.leases.refresh_seconds)
        self._first_polls = set(self.leases.held)
        now = utcnow()
        # A random first offset so a hundred connectors do not all fire in the same second; spread 50 ms per
        # connector (5 s at most), so that one or a few, as after a restart, are polled at once.
        spread = min(5.0, 0.05 * len(self.inbox.pollers))
        for name, poller in self.inbox.pollers.items():
            first = now + timedelta(seconds=random.uniform(0, min(poller.connector.settings.poll_seconds, spread)))
            self.scheduler.add_job(self._poll, "date", run_date=first, args=[poller], id=f"poll:{name}")
        sla = self.inbox.settings.sla
        self.scheduler.add_job(self._guard(self._refresh_leases), "interval", seconds=self.leases.refresh_seconds,
                               id="leases", next_run_time=now + timedelta(seconds=self.leases.refresh_seconds),
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self._guard(self.inbox.sweep.run), "interval", seconds=sla.check_seconds,
                               id="sla-sweep", next_run_time=now, max_instances=1, coalesce=True)
        self.scheduler.add_job(self._guard(self.inbox.actions.recover), "interval",
                               seconds=self.inbox.settings.workers.lease_seconds,
                               id="reply-recovery", next_run_time=now, max_instances=1, coalesce=True)
        self.scheduler.start()
        self._outbox = asyncio.create_task(self._deliver_forever(), name="outbox")
        self._warming = asyncio.create_task(self._warm_up(), name="warm-up")
        # What start-up built (settings, connectors, their sessions, triage rules) lives as long as the process:
        # kept out of the collector, full collections no longer walk it and stall the loop for a fifth of a second.
        gc.freeze()

    async def stop(self, grace: float = 30.0) -> None:
        """Stop starting work, let in-flight work finish for `grace` seconds, cancel the rest, hand the leases back."""
        # Paused, not shut down: APScheduler's shutdown cancels the jobs still running, which must finish first.
        self.scheduler.pause()
        self._stopping = True
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
        while not self._stopping:
            self._delivering = True
            try:
                await self.inbox.outbox.dispatch()
            except Exception:  # noqa: BLE001 - a failing delivery round must not end the deliveries
                log.exception("outbox delivery failed; it runs again at its next turn")
            finally:
                self._delivering = False
            if not self._stopping:
                await self.inbox.bell.wait(self.outbox_seconds)

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
        if not self.leases.holds(poller.name):
            # Another worker's connector (or none's yet): look again when the leases are next shared out.
            self._schedule(poller, self.leases.refresh_seconds)
            return
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        self._polling.add(poller.name)
        try:
            result = await poller.poll_once()
        finally:
            self._polling.discard(poller.name)
            self._first_polls.discard(poller.name)
            if task is not None:
                self._running.discard(task)
        self._schedule(poller, result.delay)

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
                while (self._polling or self._delivering or self._first_polls & set(self.leases.held)) and loop.time() < give_up:
                    await asyncio.sleep(0.1)
                step()
                await asyncio.sleep(0)
        except Exception:  # noqa: BLE001 - triage then loads the models when it first needs them
            log.exception("loading the language models failed; triage loads them when it needs them")

    def _schedule(self, poller: Poller, delay: float) -> None:
        if self.scheduler.running:
            self.scheduler.add_job(
                self._poll, "date", run_date=utcnow() + timedelta(seconds=delay), args=[poller],
                id=f"poll:{poller.name}", replace_existing=True,
            )

    def _guard(self, job: Callable[[], Any]) -> Callable[[], Any]:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            try:
                await job()
            except Exception:  # noqa: BLE001 - a failing sweep must not stop the schedule
                log.exception("%s failed; it runs again at its next interval", getattr(job, "__qualname__", job))
            finally:
                if task is not None:
                    self._running.discard(task)

        return run


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
        inbox.worker, len(inbox.connectors), "on" if settings.slack.enabled else "off (escalations go to this log)",
        settings.server.host, site.port,
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
