"""Ingest throughput with 1, 2 and 4 `inbox run` workers sharing one PostgreSQL store, leases and all.

Each round gets a fresh scratch schema and 16 jsonl connectors whose files are still empty. The workers start,
share the connectors out through their leases, and only once every worker holds its share are the files filled
(20,000 varied items, all at once). The figure is items stored per second from then until the last one is in;
the baseline is the one-worker round of the same run.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console

from inbox.bench.child import read_when_written, spawn_worker, stop, wait_for
from inbox.bench.core import Figure, Report, at_least, scratch_store, write_config
from inbox.bench.ingest import make_items
from inbox.store.models import ConnectorLease, Item, Worker

WORKERS = (1, 2, 4)
CONNECTORS = 16
ITEMS, QUICK_ITEMS = 20_000, 4_000
GOAL = 1.7  # two workers at least this many times one
LEASE_SECONDS = 3  # shared out within a couple of seconds
POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class Round:
    """One round: how many workers, how many items they stored, how long it took from the files being filled,
    and the CPU seconds the workers and the local PostgreSQL server used meanwhile (None where unknown)."""

    workers: int
    items: int
    seconds: float
    worker_cpu: float | None = None
    database_cpu: float | None = None

    @property
    def rate(self) -> float:
        """Items stored per second."""
        return self.items / self.seconds


async def run(url: str, *, quick: bool, console: Console, items: int | None = None) -> Report:
    """Benchmark 1, several workers: PostgreSQL only (SQLite serves one process)."""
    report = Report()
    if not url.startswith("postgres"):
        report.note(
            "workers: several workers need a shared PostgreSQL store; run `inbox bench` with a PostgreSQL "
            "[database] url (or tests/bench/bench_workers.py --postgresql URL) to measure them."
        )
        return report
    count = items or (QUICK_ITEMS if quick else ITEMS)
    rounds = []
    for workers in WORKERS:
        with console.status(f"workers: {count:,} items into {CONNECTORS} connectors, {workers} worker(s)…"):
            rounds.append(await _round(url, workers, count))
    one = rounds[0]
    for result in rounds[1:]:
        goal = at_least(result.rate / one.rate, GOAL, "x one worker") if result.workers == 2 else None
        report.add(
            Figure(
                "workers",
                f"PostgreSQL: {result.workers} workers, {count:,} items",
                result.rate,
                "items/s",
                one.rate,
                "1 worker",
                goal,
            )
        )
    for result in rounds:
        if result.worker_cpu is not None and result.database_cpu is not None:
            report.note(
                f"workers: {result.workers} worker(s) kept {(result.worker_cpu + result.database_cpu) / result.seconds:.2f} "
                f"of this machine's {os.cpu_count()} cores busy ({result.worker_cpu / result.seconds:.2f} the workers, "
                f"{result.database_cpu / result.seconds:.2f} PostgreSQL)"
            )
    if one.worker_cpu is not None and one.database_cpu is not None and os.cpu_count():
        busy = (one.worker_cpu + one.database_cpu) / one.seconds
        report.note(
            f"workers: one worker and PostgreSQL already kept {busy:.2f} cores busy, so on this machine's "
            f"{os.cpu_count()} cores more workers can hardly do more than about {os.cpu_count() / busy:.2f}x one "
            "worker; the goal needs more cores (or PostgreSQL on another machine)"
        )
    report.note(
        f"workers: {CONNECTORS} jsonl connectors shared out by leases; each round a fresh schema; the time runs "
        f"from the moment every worker holds its share and the files are filled to the last item stored "
        f"(1 worker: {one.rate:,.0f} items/s, {one.seconds:.1f} s). Every worker, PostgreSQL and this "
        "process share this machine's cores."
    )
    return report


async def _round(url: str, workers: int, count: int) -> Round:
    async with scratch_store(url, f"workers{workers}") as scratch:
        folder = Path(tempfile.mkdtemp(prefix="inbox-bench-workers-"))
        feeds = [folder / f"feed-{n:02d}.jsonl" for n in range(CONNECTORS)]
        config = write_config(
            folder / "inbox.toml",
            {
                "workers": {"lease_seconds": LEASE_SECONDS},
                "sla": {"check_seconds": 15},
                "connectors": [
                    {
                        "name": f"feed-{n:02d}",
                        "type": "jsonl",
                        "path": str(feed),
                        "channel": "x",
                        "poll_seconds": POLL_SECONDS,
                    }
                    for n, feed in enumerate(feeds)
                ],
            },
        )
        processes = []
        try:
            for n in range(workers):
                ready = folder / f"worker-{n}.ready"
                processes.append(spawn_worker(config, ready, scratch, folder / f"worker-{n}.log"))
                await read_when_written(ready, processes[-1], f"worker {n}")
            engine = scratch.engine()
            await wait_for(
                lambda: _shared_out(engine, workers), f"{workers} workers to share the connectors", timeout=120
            )
            lines = _lines(count)
            pids = [p.pid for p in processes]
            cpu_before = _cpu(pids), _cpu(_postgres_pids())
            started = time.perf_counter()
            for n, feed in enumerate(feeds):
                _fill(feed, lines[n::CONNECTORS])
            stored = await wait_for(
                lambda: _all_stored(engine, count), f"{count:,} items stored", timeout=600, every=0.05
            )
            seconds = time.perf_counter() - started
            cpu_after = _cpu(pids), _cpu(_postgres_pids())
            used = [
                after - before if after is not None and before is not None else None
                for before, after in zip(cpu_before, cpu_after, strict=True)
            ]
            return Round(workers, stored, seconds, *used)
        finally:
            stop(*processes)


async def _shared_out(engine: Any, workers: int) -> bool:
    """True when `workers` workers are alive and each holds its fair share of the connectors."""
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        since = now - timedelta(seconds=LEASE_SECONDS)
        alive = (
            await conn.execute(sa.select(sa.func.count()).select_from(Worker).where(Worker.seen_at > since))
        ).scalar_one()
        held = [
            n
            for (n,) in await conn.execute(
                sa.select(sa.func.count())
                .select_from(ConnectorLease)
                .where(ConnectorLease.expires_at > now)
                .group_by(ConnectorLease.worker)
            )
        ]
    share = -(-CONNECTORS // workers)
    return alive == workers and len(held) == workers and sum(held) == CONNECTORS and max(held) <= share


async def _all_stored(engine: Any, count: int) -> int | None:
    async with engine.connect() as conn:
        stored = (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one()
    return stored if stored >= count else None


def _lines(count: int) -> list[str]:
    """The ingest benchmark's varied items, as jsonl lines."""
    lines = []
    for raw in make_items(count, datetime.now(UTC)):
        record = {
            "id": raw.external_id,
            "text": raw.text,
            "posted_at": raw.posted_at.isoformat(),
            "kind": str(raw.kind),
            "author": {"handle": raw.author_handle, "name": raw.author_name},
            "thread_id": raw.thread_id,
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return lines


def _cpu(pids: list[int]) -> float | None:
    """CPU seconds (user and system) the processes and their ended children have used so far, from /proc; None off
    Linux. Counting ended children keeps the PostgreSQL server's backends that exit meanwhile in its figure."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            if not Path("/proc").exists():
                return None
            continue  # a process that ended meanwhile
        total += sum(int(value) for value in fields[11:15]) / tick  # utime, stime, cutime, cstime
    return total


def _postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (none when the server is elsewhere)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*") if Path("/proc").exists() else []:
        try:
            if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _fill(feed: Path, lines: list[str]) -> None:
    # Appended in one write: the connector reads complete lines only, so it never sees half of it.
    with feed.open("a", encoding="utf-8") as handle:
        handle.write("".join(lines))


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_workers.py --postgresql URL`."""
    from inbox.bench.runner import script

    def options(parser: Any) -> Any:
        parser.add_argument("--items", type=int, help=f"items in all (default {ITEMS:,}; --quick {QUICK_ITEMS:,})")
        return lambda args: {"items": args.items}

    script(run, __doc__ or "", options, argv)
