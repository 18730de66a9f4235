"""SIGKILL at random points while 10,000 items flow in and replies go out: each item, Slack post and reply once.

Real `inbox run` workers (one on SQLite, three sharing one PostgreSQL database) poll a local X, post to a
local Slack and answer the Send clicks of an agent, while this test kills a random worker with SIGKILL
at random points, mostly while it works (see `killer`), and starts it again. Then it lets them settle and counts, on the store and at the fakes.
The seed of the random kills is printed on failure (set INBOX_CRASH_SEED to replay it).

No wall-clock budget: a busy machine (another suite beside it on two cores) makes the run several times longer.
The test fails when the work stops advancing (items stored, events delivered, replies sent, Slack posts) for
STALL_SECONDS, which no healthy run comes near, whatever the load.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from inbox.fakes.slack import FakeSlack
from inbox.fakes.x import LIMITS, Window, XFake
from inbox.slack.blocks import POST_EVENT, SEND, THREAD_EVENT
from inbox.store.db import create_engine
from inbox.store.models import Event, EventKind, Item, Reply, ReplyStatus, Thread
from tests.conftest import STORES, pg_database
from tests.connectors.test_x import config as x_config
from tests.processes import LEADS, TRIAGE, InboxProcess, free_port, slack_table, toml_table

ROOT = Path(__file__).resolve().parents[1]
ITEMS = 10_000
CHOSEN = 300  # conversations the agent answers with one click (or two, on two workers at once)
LEASE_SECONDS = 3  # short, so the test does not wait long for a dead worker's claims to run out
DELIVERED = 2  # where `progress()` gives the events delivered
STALL_SECONDS = 180  # fail when nothing advanced for this long (a healthy run moves every few seconds)
# The first-response clock: long enough that no fresh item's clock runs out during a run, however slow. With the
# defaults (warning at 20 min, breach at 30) a run stretched past 20 minutes by a loaded machine made 10,000 warnings
# and then 10,000 breaches to post, work that grew the longer the run took. The backlog is dated against these.
WARN_MINUTES, DUE_MINUTES = 400, 600


@dataclass
class Store:
    """Where the workers keep their state, and how many of them share it."""

    url: str
    workers: int


@pytest.fixture(params=STORES)
async def crash_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        yield Store(f"sqlite:///{tmp_path / 'inbox.db'}", workers=1)
        return
    # `inbox run` takes a URL, not a schema: these workers get a database of their own.
    async with pg_database("crash") as url:
        yield Store(url, workers=3)


class BusyX(XFake):
    """The X fake with limits that a long poll storm does not spend, and a count
    of every reply attempt (X itself refuses a duplicate reply with 403, which would hide a second attempt)."""

    def __init__(self) -> None:
        super().__init__()
        self.windows = {name: Window(limit * 1000, limit * 1000) for name, limit in LIMITS.items()}
        self.attempts: Counter[str] = Counter()

    async def create_tweet(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.attempts[str((body.get("reply") or {}).get("in_reply_to_tweet_id"))] += 1
        return await super().create_tweet(request)


@dataclass
class Workers:
    """The `inbox run` workers (the installed script): started, killed with SIGKILL, started again."""

    processes: list[InboxProcess]
    logs: Path
    kills: int = 0

    @property
    def ports(self) -> list[int]:
        return [process.port for process in self.processes]

    def alive(self) -> list[int]:
        return [i for i, process in enumerate(self.processes) if process.running]

    async def start(self, index: int) -> None:
        await self.processes[index].start()

    async def kill(self, index: int) -> None:
        if await self.processes[index].kill():
            self.kills += 1

    async def serving(self, index: int, stop: asyncio.Event) -> None:
        """Until the worker answers HTTP (any status: it has started), it died, or the test stops killing."""
        while not stop.is_set() and index in self.alive():
            try:
                await self.processes[index].healthz()
                return
            except (aiohttp.ClientError, TimeoutError):
                await asyncio.sleep(0.2)

    async def stop_all(self) -> list[int | None]:
        return list(await asyncio.gather(*(process.stop() for process in self.processes)))

    def tail(self, lines: int = 30) -> str:
        out = []
        for path in sorted(self.logs.glob("worker-*.log")):
            text = path.read_text(errors="replace").splitlines()
            out.append(f"--- {path.name} (last {lines} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(out)


def prepare_workers(folder: Path, store: Store, x: XFake, slack: FakeSlack, http: aiohttp.ClientSession) -> Workers:
    """Each worker's config (the same store, X and Slack; a port of its own), not started yet."""
    connector = {**x_config(x), "poll_seconds": 0.5, "first_poll_hours": DUE_MINUTES / 60 + 2}
    processes = []
    for index in range(store.workers):
        port = free_port()
        text = (
            f'[database]\nurl = "{store.url}"\n'
            f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
            f"[sla]\ncheck_seconds = 1\nwarn_after_minutes = {WARN_MINUTES}\nfirst_response_minutes = {DUE_MINUTES}\n"
            f"[workers]\nlease_seconds = {LEASE_SECONDS}\n"
            f"[slack]\n{toml_table(slack_table(slack))}"
            f"\n[[connectors]]\n{toml_table(connector)}"
        )
        path = folder / f"worker-{index}.toml"
        path.write_text(text)
        processes.append(InboxProcess(path, port, folder / f"worker-{index}.log", http))
    return Workers(processes, folder)


def triage_messages(slack: FakeSlack) -> list[dict[str, Any]]:
    return [
        m for m in slack.posted(TRIAGE, in_thread=False) if (m.get("metadata") or {}).get("event_type") == THREAD_EVENT
    ]


def send_value(message: dict[str, Any]) -> str | None:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == SEND:
                return str(element["value"])
    return None


async def flow_in(x: XFake, backlog: list[str]) -> list[str]:
    """The rest of the 10,000 mentions over about ten seconds, each posted as it is written (ids grow with time)."""
    posted = list(backlog)
    batches = 20
    for _batch in range(batches):
        x.now = datetime.now(UTC)
        for _ in range((ITEMS - len(backlog)) // batches):
            i = len(posted)
            posted.append(x.add_customer_post(f"where is my order {i}?", author=f"customer{i}", minutes_ago=0.5))
        await asyncio.sleep(0.5)
    return posted


def old_backlog(x: XFake) -> list[str]:
    """Mentions already waiting when the workers start: 300 old enough for an SLA warning, 200 for a breach."""
    x.now = datetime.now(UTC)
    return [
        x.add_customer_post(
            f"still waiting on order {i}", author=f"customer{i}", minutes_ago=DUE_MINUTES + (10 if i < 200 else -5)
        )
        for i in range(500)
    ]


async def click_send(worker: InboxProcess, message: dict[str, Any], slack: FakeSlack) -> None:
    if send_value(message) is None:
        return
    # A worker killed or not up yet: the agent clicks again if nothing happens.
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        await worker.click(message, SEND, response_url=slack.response_url())


async def agent(
    slack: FakeSlack, workers: Workers, engine: Any, rng: random.Random, chosen: set[int], done: asyncio.Event
) -> None:
    """Picks CHOSEN conversations as they appear in Slack and clicks Send, again if no reply shows up."""
    clicked_at: dict[int, float] = {}
    considered: set[int] = set()
    while True:
        by_thread = {m["metadata"]["event_payload"]["thread_id"]: m for m in triage_messages(slack)}
        for thread in sorted(set(by_thread) - considered):
            considered.add(thread)
            # The backlog's conversations are left to their SLA alerts; fresh ones get answered.
            fresh = "where is my order" in str(by_thread[thread]["blocks"])
            if fresh and len(chosen) < CHOSEN and rng.random() < 0.3:
                chosen.add(thread)
        try:
            async with engine.connect() as conn:
                sent = set(
                    (await conn.execute(sa.select(Reply.thread_id).where(Reply.status == ReplyStatus.SENT))).scalars()
                )
        except sa.exc.DBAPIError:  # the first worker is still creating the schema
            await asyncio.sleep(0.3)
            continue
        waiting = [
            t for t in chosen if t not in sent and t in by_thread and time.monotonic() - clicked_at.get(t, 0) > 3
        ]
        if len(chosen) == CHOSEN and not (chosen - sent):
            done.set()
            return
        clicks = []
        for thread in waiting[:40]:
            clicked_at[thread] = time.monotonic()
            live = workers.alive() or [0]
            # Sometimes two agents (or one impatient one) click at once, on two workers.
            for port_index in rng.sample(live, k=min(len(live), 2 if rng.random() < 0.3 else 1)):
                clicks.append(click_send(workers.processes[port_index], by_thread[thread], slack))
        await asyncio.gather(*clicks)
        await asyncio.sleep(0.3)


async def killer(
    workers: Workers, rng: random.Random, stop: asyncio.Event, progress: Callable[[], Awaitable[tuple[int, ...]]]
) -> None:
    """A random worker dies by SIGKILL at a random point of its work, 2 to 6 s after the last kill at the soonest,
    and comes back up to a second later.

    Four kills in five wait until the victim serves and a random number of events (1 to 300) has been delivered
    since, then strike 0.5 to 3 s later, mostly in the middle of a round. Time alone does not make a kill land in
    work: a start (imports, store, Slack) takes seconds, on a busy machine many, and the outbox marks a round of
    events done together, so a worker killed a few seconds after each start left the same half-done round behind
    again and again while the agent waited for conversations to answer (25 kills and three minutes, before).
    The work cannot run out first: six such kills wait for 1,800 of the 11,000 events at most (and the seconds
    after each). One kill in five strikes wherever the victim is, starting up included.
    """
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(2.0, 6.0))
        alive = workers.alive()
        if not alive or stop.is_set():
            continue
        victim = rng.choice(alive)
        if rng.random() >= 0.2:
            await workers.serving(victim, stop)
            await delivered_more(progress, stop, rng.randint(1, 300))
            await asyncio.sleep(rng.uniform(0.5, 3.0))
        if stop.is_set():
            continue
        await workers.kill(victim)
        await asyncio.sleep(rng.uniform(0, 1.0))
        await workers.start(victim)


async def delivered_more(progress: Callable[[], Awaitable[tuple[int, ...]]], stop: asyncio.Event, events: int) -> None:
    """Until `events` more events are delivered than when it started (or the test stops killing)."""
    before: int | None = None
    while not stop.is_set():
        try:
            delivered = (await progress())[DELIVERED]
        except sa.exc.DBAPIError:  # no schema yet, or the store busy: read again
            delivered = None
        if before is None:
            before = delivered
        elif delivered is not None and delivered >= before + events:
            return
        await asyncio.sleep(0.2)


async def settled(engine: Any, slack: FakeSlack) -> bool:
    """Every item stored, every event delivered, every reply sent, every ran-out clock announced, every thread in Slack."""
    async with engine.connect() as conn:
        items = (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one()
        threads = (await conn.execute(sa.select(sa.func.count()).select_from(Thread))).scalar_one()
        pending_events = (
            await conn.execute(sa.select(sa.func.count()).select_from(Event).where(Event.done_at.is_(None)))
        ).scalar_one()
        pending_replies = (
            await conn.execute(sa.select(sa.func.count()).select_from(Reply).where(Reply.status != ReplyStatus.SENT))
        ).scalar_one()
        # The sweep has caught up with every clock that ran out (each gets its alert event).
        unswept = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(Thread)
                .where(Thread.sla_stage < 2, Thread.due_at <= datetime.now(UTC))
            )
        ).scalar_one()
    return (
        items == ITEMS
        and pending_events == 0
        and pending_replies == 0
        and unswept == 0
        and len(triage_messages(slack)) == threads
    )


async def progress(engine: Any, slack: FakeSlack) -> tuple[int, ...]:
    """How far the work has come: items stored, events written and delivered, replies sent, messages in Slack."""
    async with engine.connect() as conn:
        counts = [
            (await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one()
            for table, where in (
                (Item, ()),
                (Event, ()),
                (Event, (Event.done_at.is_not(None),)),
                (Reply, (Reply.status == ReplyStatus.SENT,)),
            )
        ]
    return (*counts, sum(len(messages) for messages in slack.messages.values()))


async def advancing(done: Callable[[], Awaitable[bool]], engine: Any, slack: FakeSlack, what: str) -> None:
    """Until `done()`; fail only when the work has not advanced for STALL_SECONDS (no total budget: load stretches runs)."""
    last: tuple[int, ...] | None = None
    since = time.monotonic()
    while True:
        try:
            if await done():
                return
            now = await progress(engine, slack)
        except sa.exc.DBAPIError:  # the first worker is still creating the schema
            now = last
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > STALL_SECONDS:
            raise AssertionError(
                f"no progress for {STALL_SECONDS} s while waiting for {what}: "
                f"(items, events, delivered, replies sent, Slack messages) = {now}"
            )
        await asyncio.sleep(0.5)


async def run_chaos(
    store: Store, workers: Workers, x: BusyX, slack: FakeSlack, engine: Any, rng: random.Random, chosen: set[int]
) -> list[str]:
    """Items flow in and the agent answers while workers are killed; then every worker runs until all is done."""
    backlog = old_backlog(x)
    for index in range(store.workers):
        await workers.start(index)
    stop_killing, answered = asyncio.Event(), asyncio.Event()
    kills = asyncio.create_task(killer(workers, rng, stop_killing, lambda: progress(engine, slack)))
    # The agent answers from the first conversation in Slack on, while the mentions still flow in.
    clicking = asyncio.create_task(agent(slack, workers, engine, rng, chosen, answered))
    posted = await flow_in(x, backlog)

    async def answered_under_fire() -> bool:
        # A failed agent ends the wait at once: awaiting it below raises its error. One that finished early still
        # waits for the sixth kill, so a quick run is no weaker a test than a slow one.
        if clicking.done() and (clicking.cancelled() or clicking.exception() is not None):
            return True
        return answered.is_set() and workers.kills >= 6

    await advancing(answered_under_fire, engine, slack, "the agent's replies and 6 kills")
    stop_killing.set()
    await kills
    await clicking
    for index in range(store.workers):
        if index not in workers.alive():
            await workers.start(index)
    await advancing(lambda: settled(engine, slack), engine, slack, "every item, event and reply to be done")
    return posted


async def test_sigkill_at_random_points_loses_nothing_and_does_nothing_twice(
    crash_store: Store, tmp_path: Path
) -> None:
    store = crash_store
    seed = int(os.environ.get("INBOX_CRASH_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    x, slack = BusyX(), FakeSlack()
    await x.start()
    await slack.start()
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    workers = prepare_workers(tmp_path, store, x, slack, http)
    engine = create_engine(store.url)
    chosen: set[int] = set()
    try:
        posted = await run_chaos(store, workers, x, slack, engine, rng, chosen)
        codes = await workers.stop_all()
        ended = datetime.now(UTC)  # no sweep runs after this
        assert workers.kills >= 6
        assert codes == [0] * store.workers, "a worker did not stop cleanly on SIGTERM"
        async with engine.connect() as conn:
            stored = (await conn.execute(sa.select(Item.external_id))).scalars().all()
            events = (await conn.execute(sa.select(Event.id, Event.kind, Event.thread_id))).all()
            thread_ids = set((await conn.execute(sa.select(Thread.id))).scalars())
            replied = (
                (await conn.execute(sa.select(Item.external_id).join(Reply, Reply.item_id == Item.id))).scalars().all()
            )
            clocks = {t.id: t for t in (await conn.execute(sa.select(Thread.id, Thread.warn_at, Thread.due_at))).all()}
            backlog = (
                await conn.execute(
                    sa.select(Item.thread_id, Item.text).where(Item.text.like("%still waiting on order %"))
                )
            ).all()
        # Every item stored, once.
        assert len(stored) == ITEMS and set(stored) == set(posted)
        # Every conversation has one triage message; every alert, reply note and health notice one post.
        messages = [m for channel in (TRIAGE, LEADS) for m in slack.posted(channel)]
        triage = Counter(
            m["metadata"]["event_payload"]["thread_id"]
            for m in messages
            if m.get("metadata", {}).get("event_type") == THREAD_EVENT
        )
        assert set(triage) == thread_ids and set(triage.values()) == {1}
        posts = Counter(
            m["metadata"]["event_payload"]["event_id"]
            for m in messages
            if m.get("metadata", {}).get("event_type") == POST_EVENT
        )
        announced = {
            EventKind.SLA_WARNING,
            EventKind.SLA_BREACH,
            EventKind.REPLIED,
            EventKind.CONNECTOR_HEALTH,
            EventKind.FOLLOW_UP,
        }
        assert set(posts) == {e.id for e in events if e.kind in announced} and set(posts.values()) <= {1}
        alerts = Counter(
            (e.kind, e.thread_id) for e in events if e.kind in (EventKind.SLA_WARNING, EventKind.SLA_BREACH)
        )
        assert set(alerts.values()) == {1}, "an SLA alert was recorded twice"
        # The backlog: 200 clocks past their deadline, 300 past their warning, which pass their deadline five
        # minutes into the run: on a busy machine they may be stored (or swept) only after that, and then go
        # straight to a breach. So: a breach for each of the 200, an alert (or two) for each of the 300.
        late = {thread for thread, text in backlog if int(text.rsplit(" ", 1)[1]) < 200}
        warned = {thread for kind, thread in alerts if kind == EventKind.SLA_WARNING}
        breached = {thread for kind, thread in alerts if kind == EventKind.SLA_BREACH}
        assert len(backlog) == 500 and late <= breached and {t for t, _ in backlog} <= warned | breached
        # No alert before its time (the sweep that settled the run saw every clock that had run out by then).
        assert all(clocks[t].warn_at <= ended for t in warned) and all(clocks[t].due_at <= ended for t in breached)
        # Every chosen conversation answered on X exactly once, and nothing else answered.
        assert len(chosen) == CHOSEN and len(replied) == CHOSEN
        assert x.attempts == Counter({external_id: 1 for external_id in replied}), "a reply was sent twice (or never)"
        assert len(x.replies) == CHOSEN
    except BaseException:
        print(f"seed {seed}, {workers.kills} kill(s)\n{workers.tail()}")
        raise
    finally:
        await workers.stop_all()
        await http.close()
        await x.close()
        await slack.stop()
        await engine.dispose()
