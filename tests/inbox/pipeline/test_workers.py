"""Several workers on one store: connectors shared out by leases, outbox events and replies claimed once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from inbox import connectors as registry
from inbox.connector import TransientError
from inbox.pipeline.actions import ActionError, _target
from inbox.pipeline.outbox import Notice, Outbox
from inbox.pipeline.workers import LeaseLost, Leases, pid_place, process_gone
from inbox.store.cursors import load_cursor
from inbox.store.models import ConnectorLease, Event, EventKind, Reply, ReplyStatus, Worker
from tests.conftest import insert_pending_reply, thread_of
from tests.inbox.pipeline.test_actions import jsonl_connector, replies
from tests.inbox.pipeline.test_ingest import SOURCE, item
from tests.inbox.pipeline.test_poller import poller_for

NAMES = [f"conn-{i:02d}" for i in range(10)]
LEASE = 30.0


def workers(engine, clock, count: int, names: list[str] = NAMES) -> list[Leases]:
    return [Leases(engine, f"worker-{w}", names, seconds=LEASE, clock=clock) for w in range(count)]


async def settle(*leases: Leases, rounds: int = 3) -> None:
    """Refresh every worker a few times, as their lease jobs would, a third of a lease apart."""
    for _ in range(rounds):
        for lease in leases:
            await lease.refresh()


async def test_one_worker_takes_every_connector(engine, clock):
    [only] = workers(engine, clock, 1)
    change = await only.refresh()
    assert change.gained == NAMES and only.held == NAMES and change.live_workers == 1


async def test_two_workers_share_the_connectors_evenly_and_never_both_hold_one(engine, clock):
    a, b = workers(engine, clock, 2)
    await a.refresh()
    assert len(a.held) == 10  # alone at first
    await settle(a, b)
    assert len(a.held) == len(b.held) == 5
    assert set(a.held).isdisjoint(b.held) and set(a.held) | set(b.held) == set(NAMES)


async def test_three_workers_share_a_hundred_connectors(engine, clock):
    names = [f"c{i}" for i in range(100)]
    fleet = workers(engine, clock, 3, names)
    await settle(*fleet, rounds=4)
    held = [set(w.held) for w in fleet]
    assert max(len(h) for h in held) <= 34 and min(len(h) for h in held) >= 32  # nobody above ceil(100 / 3)
    assert set.union(*held) == set(names) and sum(len(h) for h in held) == 100


async def test_a_dead_workers_connectors_are_taken_over_within_one_lease_period(engine, clock):
    a, b = workers(engine, clock, 2)
    await settle(a, b)
    orphans = set(a.held)
    # a is killed: it renews nothing from now on. b keeps refreshing every third of a lease.
    for _ in range(2):
        clock.advance(seconds=LEASE / 3)
        await b.refresh()
        assert not orphans & set(b.held), "taken over before a's lease ran out"
    clock.advance(seconds=LEASE / 3)  # one lease period since a's last renewal
    await b.refresh()
    assert b.held == NAMES


async def test_a_clean_stop_hands_the_connectors_over_at_once(engine, clock):
    a, b = workers(engine, clock, 2)
    await settle(a, b)
    await a.release()
    await b.refresh()
    assert b.held == NAMES
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(Worker.id))).scalars().all() == ["worker-1"]


async def test_a_worker_past_its_lease_cannot_save_a_cursor_over_its_successor(inbox_factory, engine, clock):
    inbox = inbox_factory()
    stale = poller_for(inbox, [2, 3], clock)
    fresh = poller_for(inbox, [3], clock)
    old, new = (
        Leases(engine, "old", ["scripted"], seconds=LEASE, clock=clock),
        Leases(engine, "new", ["scripted"], seconds=LEASE, clock=clock),
    )
    stale.leases, fresh.leases = old, new
    await old.refresh()
    assert (await stale.poll_once()).stored == 2
    # The old worker stalls past its lease; the new one takes the connector over and polls.
    clock.advance(seconds=LEASE + 1)
    await new.refresh()
    assert new.held == ["scripted"]
    assert (await fresh.poll_once()).stored == 3
    # The old worker wakes up mid-poll: its page is not stored, its cursor does not overwrite the new one.
    result = await stale.poll_once()
    assert result.error is None and result.stored == 0 and stale.failures == 0
    assert (await load_cursor(engine, "scripted")) == {"n": 5}
    assert not old.holds("scripted")
    with pytest.raises(LeaseLost):
        async with engine.begin() as conn:
            await conn.run_sync(old.fence, "scripted")


async def test_leases_live_in_the_store(engine, clock):
    a, b = workers(engine, clock, 2)
    await settle(a, b)
    async with engine.connect() as conn:
        rows = Counter((await conn.execute(sa.select(ConnectorLease.worker))).scalars())
    assert rows == {"worker-0": 5, "worker-1": 5}


linux_only = pytest.mark.skipif(pid_place() is None, reason="needs /proc to tell a dead process from a live one")


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has ended and been reaped: nothing has it now."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a process that runs for the whole test (not an inbox worker: any live process counts)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child.pid
    child.kill()
    child.wait()


async def a_worker_died_holding(
    engine, clock, worker: str, pid: int, place: str | None, names: list[str] = NAMES
) -> None:
    """The rows a worker killed with SIGKILL leaves: its heartbeat and leases, fresh, as if it had just renewed."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(Worker).values(id=worker, host=place, pid=pid, started_at=clock.now, seen_at=clock.now)
        )
        if names:
            await conn.execute(
                sa.insert(ConnectorLease).values(
                    [
                        {"connector": n, "worker": worker, "expires_at": clock.now + timedelta(seconds=LEASE)}
                        for n in names
                    ]
                )
            )


def test_a_pid_is_gone_only_when_no_live_process_has_it(dead_pid, live_pid):
    assert process_gone(dead_pid)
    assert not process_gone(live_pid) and not process_gone(os.getpid())


@linux_only
def test_a_zombie_is_gone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        os.kill(child.pid, signal.SIGKILL)
        # Not reaped yet: the pid still exists, as a zombie, until its parent waits for it.
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        assert process_gone(child.pid)
    finally:
        child.wait()


@linux_only
async def test_a_dead_worker_on_this_host_is_taken_over_at_once(engine, clock, dead_pid):
    await a_worker_died_holding(engine, clock, "dead:1:aaaaaa", dead_pid, pid_place())
    [restarted] = workers(engine, clock, 1)
    change = await restarted.refresh()  # at once: not one lease period later
    assert restarted.held == NAMES and change.live_workers == 1
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(Worker.id))).scalars().all() == ["worker-0"]
        assert set((await conn.execute(sa.select(ConnectorLease.worker))).scalars()) == {"worker-0"}


@linux_only
async def test_a_dead_workers_claimed_events_and_replies_go_out_at_once(
    inbox_factory, engine, clock, tmp_path, dead_pid
):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await _pending_replies(inbox, clock, 3)
    dead = "dead:1:bbbbbb"
    await a_worker_died_holding(engine, clock, dead, dead_pid, pid_place(), names=[])
    async with engine.begin() as conn:
        until = clock.now + timedelta(seconds=inbox.claim_seconds)
        await conn.execute(sa.update(Event).values(claimed_by=dead, claimed_until=until))
        await conn.execute(sa.update(Reply).values(claimed_by=dead, claimed_until=until))
    log: list[tuple[str, int, int | None]] = []
    box = outbox(inbox, "restarted", log)
    assert await box.dispatch() == 0 and await inbox.actions.recover() == 0  # claimed by the dead worker
    assert await Leases(engine, "restarted", [], seconds=LEASE, clock=clock).bury_dead() == [dead]
    assert await box.dispatch() == 3 and await inbox.actions.recover() == 3  # with no time passed
    assert sorted(r["in_reply_to"] for r in replies(tmp_path)) == ["0", "1", "2"]


@linux_only
async def test_a_live_process_or_another_place_is_waited_for_as_before(engine, clock, live_pid, dead_pid):
    # A pid that names a live process (perhaps reused by another program), and a dead pid on another machine.
    await a_worker_died_holding(engine, clock, "reused:1:cccccc", live_pid, pid_place(), names=NAMES[:5])
    await a_worker_died_holding(
        engine, clock, "elsewhere:1:dddddd", dead_pid, "elsewhere boot=x pidns=1", names=NAMES[5:]
    )
    [survivor] = workers(engine, clock, 1)
    await survivor.refresh()
    assert survivor.held == []
    for _ in range(2):
        clock.advance(seconds=LEASE / 3)
        await survivor.refresh()
        assert survivor.held == []
    clock.advance(seconds=LEASE / 3)  # one lease period since their last renewal
    await survivor.refresh()
    assert survivor.held == NAMES


async def test_workers_of_one_process_never_bury_each_other(engine, clock):
    a, b = workers(engine, clock, 2)
    await settle(a, b)
    assert await a.bury_dead() == [] and await b.bury_dead() == []
    assert len(a.held) == len(b.held) == 5


class SlowRecorder:
    """Keeps what it was told, yielding to other tasks mid-way as a Slack call would."""

    def __init__(self, name: str, log: list[tuple[str, int, int | None]]) -> None:
        self.name = name
        self.log = log

    async def notify(self, notice: Notice) -> None:
        await asyncio.sleep(0)
        self.log.append((self.name, notice.event_id, notice.thread.thread_id if notice.thread else None))
        await asyncio.sleep(0)


async def _events_for_many_threads(inbox, clock, threads: int = 40) -> None:
    # Every thread gets a new_thread event, then an assignment and a resolution: three events in order.
    await inbox.ingestor.ingest(SOURCE, [item(str(i), clock, author_handle=f"u{i}") for i in range(threads)])
    for i in range(threads):
        thread = await thread_of(inbox.engine, str(i))
        await inbox.actions.assign(thread, "U_ANA")
        await inbox.actions.resolve(thread, "U_ANA")


def outbox(inbox, name: str, log: list, **kw) -> Outbox:
    return Outbox(inbox.engine, [SlowRecorder(name, log)], inbox.policies, inbox.clock, worker=name, **kw)


async def test_two_workers_deliver_each_event_once_and_each_conversation_in_order(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await _events_for_many_threads(inbox, clock)
    log: list[tuple[str, int, int | None]] = []
    a, b = outbox(inbox, "a", log, concurrency=4), outbox(inbox, "b", log, concurrency=4)
    done = await asyncio.gather(a.dispatch(limit=7), b.dispatch(limit=7), a.dispatch(limit=5), b.dispatch(limit=5))
    async with engine.connect() as conn:
        events = (await conn.execute(sa.select(Event.id, Event.thread_id, Event.done_at))).all()
    assert sum(done) == len(events) == 120 and all(e.done_at for e in events)
    delivered = [event_id for _, event_id, _ in log]
    assert sorted(delivered) == sorted(e.id for e in events), "an event was delivered twice or never"
    per_thread: dict[int, list[int]] = {}
    for _, event_id, thread in log:
        per_thread.setdefault(thread, []).append(event_id)
    assert all(ids == sorted(ids) for ids in per_thread.values()), "a conversation's events overtook each other"
    if engine.dialect.name == "postgresql":
        assert {worker for worker, _, _ in log} == {"a", "b"}, "both workers should have had work"


async def test_a_dead_workers_claimed_events_are_delivered_by_another_after_the_claim(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await inbox.ingestor.ingest(SOURCE, [item(str(i), clock, author_handle=f"u{i}") for i in range(5)])
    log: list[tuple[str, int, int | None]] = []
    dead, alive = outbox(inbox, "dead", log, claim_seconds=60), outbox(inbox, "alive", log, claim_seconds=60)
    assert len(await dead._claim(limit=3)) == 3  # claimed, then the worker was killed
    assert await alive.dispatch() == 2
    clock.advance(seconds=59)
    assert await alive.dispatch() == 0
    clock.advance(seconds=2)
    assert await alive.dispatch() == 3
    assert sorted(e for _, e, _ in log) == [1, 2, 3, 4, 5] and {w for w, _, _ in log} == {"alive"}


async def test_a_failed_event_holds_back_its_conversation_but_not_others(inbox_factory, engine, clock):
    inbox = inbox_factory()
    await _events_for_many_threads(inbox, clock, threads=2)
    first = await thread_of(engine, "0")
    seen: list[tuple[int, str]] = []

    class FailsFirstThread:
        async def notify(self, notice: Notice) -> None:
            if notice.thread and notice.thread.thread_id == first:
                raise RuntimeError("Slack is down for this one")
            seen.append((notice.thread.thread_id, str(notice.kind)))

    box = Outbox(engine, [FailsFirstThread()], inbox.policies, clock, worker="w")
    assert await box.dispatch() == 3
    assert [kind for _, kind in seen] == [EventKind.NEW_THREAD, EventKind.ASSIGNED, EventKind.RESOLVED]
    assert {thread for thread, _ in seen} != {first}
    async with engine.connect() as conn:
        pending = (
            (await conn.execute(sa.select(Event.attempts).where(Event.done_at.is_(None)).order_by(Event.id)))
            .scalars()
            .all()
        )
    assert pending == [1, 0, 0]  # only the head was tried; the two behind it wait


async def _pending_replies(inbox, clock, count: int) -> list[int]:
    await inbox.ingestor.ingest(SOURCE, [item(str(i), clock, author_handle=f"u{i}") for i in range(count)])
    async with inbox.engine.begin() as conn:
        for i in range(count):
            thread = await thread_of(inbox.engine, str(i))
            item_id = (
                await conn.execute(sa.text("SELECT id FROM item WHERE thread_id = :t"), {"t": thread})
            ).scalar_one()
            await insert_pending_reply(conn, thread, item_id, f"reply {i}", clock.now)
    return list(range(count))


async def test_workers_recovering_at_once_send_each_left_over_reply_once(inbox_factory, engine, clock, tmp_path):
    config = {"connectors": [jsonl_connector(tmp_path)]}
    one, two = inbox_factory(**config), inbox_factory(**config)
    one.actions.worker, two.actions.worker = "one", "two"
    await _pending_replies(one, clock, 12)
    recovered = await asyncio.gather(
        one.actions.recover(limit=4), two.actions.recover(limit=4), one.actions.recover(), two.actions.recover()
    )
    assert sum(recovered) == 12
    assert Counter(r["in_reply_to"] for r in replies(tmp_path)) == {str(i): 1 for i in range(12)}


async def test_a_worker_that_stalled_past_its_claim_does_not_send_what_another_took_over(
    inbox_factory, engine, clock, tmp_path
):
    config = {"connectors": [jsonl_connector(tmp_path)]}
    stalled, other = inbox_factory(**config), inbox_factory(**config)
    stalled.actions.worker, other.actions.worker = "stalled", "other"
    await _pending_replies(stalled, clock, 1)
    row = await stalled.actions._claim_leftover()
    clock.advance(seconds=stalled.actions.claim.total_seconds() + 1)  # the stalled worker's claim runs out
    assert await other.actions.recover() == 1
    outcome = await stalled.actions._send(row.reply_id, row.connector, _target(row, row.thread_key), row.reply_text)
    assert outcome.status == "duplicate"
    assert [r["text"] for r in replies(tmp_path)] == ["reply 0"]


async def test_a_reply_being_sent_is_not_recovered_by_another_worker(inbox_factory, engine, clock, tmp_path):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    thread = await thread_of(engine, "1")
    gate = asyncio.Event()
    connector = inbox.connectors["acme-x"]
    real_reply = connector.reply

    async def slow_reply(target, text):  # the platform takes its time to answer
        await gate.wait()
        return await real_reply(target, text)

    connector.reply = slow_reply  # type: ignore[method-assign]
    sending = asyncio.create_task(inbox.actions.reply(thread, "On its way", "ana"))
    await asyncio.sleep(0.05)
    clock.advance(minutes=1)  # well within the sender's claim
    other = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    other.actions.worker = "other"
    assert await other.actions.recover() == 0
    gate.set()
    assert (await sending).status == "sent"
    assert len(replies(tmp_path)) == 1


class Unanswered(TransientError):
    """What VendorClient raises when the vendor's 503 or a dropped connection leaves the outcome unknown."""


async def test_a_reply_the_platform_never_answered_is_checked_before_it_is_sent_again(
    inbox_factory, engine, clock, tmp_path
):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    thread = await thread_of(engine, "1")
    connector = inbox.connectors["acme-x"]
    real_reply = connector.reply

    async def lands_but_times_out(target, text):
        await real_reply(target, text)  # it reached the platform...
        raise Unanswered("timeout reading the answer", status=None)  # ...but the answer was lost

    connector.reply = lands_but_times_out  # type: ignore[method-assign]
    assert (await inbox.actions.reply(thread, "On its way", "ana")).status == "unknown"
    connector.reply = real_reply  # type: ignore[method-assign]
    assert (await inbox.actions.reply(thread, "Again?", "bob")).status == "duplicate"
    assert await inbox.actions.recover() == 1  # found on the platform, marked sent, not sent again
    assert [r["text"] for r in replies(tmp_path)] == ["On its way"]
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(Reply.status))).scalar_one() == ReplyStatus.SENT


async def test_a_4xx_refusal_is_final_and_can_be_retried_by_the_agent(inbox_factory, engine, clock, tmp_path):
    inbox = inbox_factory(connectors=[jsonl_connector(tmp_path)])
    await inbox.ingestor.ingest(SOURCE, [item("1", clock)])
    thread = await thread_of(engine, "1")
    connector = inbox.connectors["acme-x"]
    real_reply = connector.reply

    async def rate_limited(target, text):
        raise TransientError("429 too many requests", retry_after=5, status=429)

    connector.reply = rate_limited  # type: ignore[method-assign]
    with pytest.raises(ActionError, match="try again shortly"):
        await inbox.actions.reply(thread, "Hello", "ana")
    assert await inbox.actions.recover() == 0  # failed, not pending: nothing to recover
    connector.reply = real_reply  # type: ignore[method-assign]
    assert (await inbox.actions.reply(thread, "Hello", "ana")).status == "sent"


def test_lease_settings_are_validated(tmp_path):
    from inbox.settings import ConfigError, parse_config

    with pytest.raises(ConfigError) as caught:
        parse_config({"workers": {"lease_seconds": 0, "outbox_concurrency": 0, "colour": 1}}, env={}, types=registry)
    assert sorted(caught.value.problems) == [
        "workers.colour: unknown key",
        "workers.lease_seconds: Input should be greater than or equal to 1",
        "workers.outbox_concurrency: Input should be greater than or equal to 1",
    ]
