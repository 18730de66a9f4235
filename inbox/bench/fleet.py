"""1,000 Mastodon connectors polling in one process: event-loop lag and resident memory, beside the same process idle.

This process serves the fake: one Mastodon instance per connector (each its own account, notifications and rate
budget) under one local server, with new mentions appearing at random instances all along. A child process runs
the real Inbox and Runner (polls, ingest with triage, SLA sweep, outbox) with every connector on the scratch
store; a ticker in its event loop measures how late each 10 ms sleep wakes up, and its resident memory is sampled.
Baseline: the same child, everything built, for a few seconds before the Runner starts.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from rich.console import Console

from inbox import connectors as registry
from inbox.bench.core import Figure, Report, percentile, scratch_store, under
from inbox.fakes.mastodon import BRAND_ID, TOKEN, MastodonFake

CONNECTORS, QUICK_CONNECTORS = 1_000, 200
SECONDS, QUICK_SECONDS = 60.0, 20.0
IDLE_SECONDS = 5.0
POLL_SECONDS = 15.0  # a quarter of the default: four rounds of 1,000 polls a minute
POSTS_PER_SECOND = 20.0
TICK = 0.010
LAG_GOAL_MS, RSS_GOAL_MB = 50.0, 300.0
STOPPING = "bench: measured; stopping the Runner"
# Triage rules that send short or unclear texts to lingua's high-accuracy models (200-300 MB), as shipped before.
_HIGH_RULES = "short_text_chars = 40, low_accuracy_min_confidence = 0.6"


class Fleet:
    """Many fake Mastodon instances behind one server: instance i answers under /i/."""

    def __init__(self, count: int) -> None:
        self.fakes = [MastodonFake() for _ in range(count)]
        self.polls = 0
        self.posts = 0
        self.peers: set[tuple[str, int]] = set()  # one client address and port per TCP connection
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Serve on a free local port; returns the base URL."""
        app = web.Application(middlewares=[self._count])
        for i, fake in enumerate(self.fakes):
            instance = web.Application()
            fake.routes(instance)
            app.add_subapp(f"/{i}/", instance)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp has no public accessor
        assert isinstance(server, asyncio.Server)  # a started TCPSite serves on an asyncio.Server
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _count(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.endswith("/api/v1/notifications"):
            self.polls += 1
            if request.transport is not None:
                self.peers.add(request.transport.get_extra_info("peername"))
        return await handler(request)

    async def post_all_along(self, rate: float, rng: random.Random) -> None:
        """New mentions at random instances, `rate` a second on average, until cancelled."""
        while True:
            await asyncio.sleep(rng.expovariate(rate))
            fake = rng.choice(self.fakes)
            fake.now = datetime.now(UTC)
            fake.add_customer_post(
                f"Where is my order #{10000 + self.posts}? Still not here.",
                author=f"customer{self.posts % 5000}",
                minutes_ago=0,
            )
            self.posts += 1


@dataclass(slots=True)
class ChildResult:
    """What the child measured (lags in ms, memory in MB)."""

    idle_lags: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    first_round_lags: list[float] = field(default_factory=list)
    idle_rss: float = 0.0
    peak_rss: float = 0.0
    start_rss: float = 0.0
    built_rss: float = 0.0
    pending_events: int = 0
    start_ms: float = 0.0
    max_lag_after_start: float = 0.0
    worst: list[tuple[float, float]] = field(default_factory=list)  # (lag ms, seconds after start)
    gc_pauses: list[float] = field(default_factory=list)  # full garbage collections, ms, longest first
    peak_fds: int = 0
    items: int = 0
    unhealthy: int = 0
    build_seconds: float = 0.0


async def run(
    url: str,
    *,
    quick: bool,
    console: Console,
    connectors: int | None = None,
    seconds: float | None = None,
    poll_seconds: float = POLL_SECONDS,
    high_accuracy: bool = False,
) -> Report:
    """Benchmark 3 on the store at `url`; `high_accuracy`: with triage rules that load lingua's high-accuracy models."""
    count = connectors or (QUICK_CONNECTORS if quick else CONNECTORS)
    seconds = seconds or (QUICK_SECONDS if quick else SECONDS)
    fleet = Fleet(count)
    async with scratch_store(url, "fleet") as scratch:
        await fleet.start()
        poster = asyncio.create_task(fleet.post_all_along(POSTS_PER_SECOND * count / CONNECTORS, random.Random(5)))
        params = {
            "fleet": fleet.url,
            "connectors": count,
            "seconds": seconds,
            "poll_seconds": poll_seconds,
            "high_accuracy": high_accuracy,
        }
        with (
            tempfile.TemporaryDirectory() as tmp,
            console.status(f"connectors: {count:,} connectors polling every {poll_seconds:g} s for {seconds:g} s…"),
        ):
            log = Path(tmp) / "child.log"
            with log.open("wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "inbox.bench.fleet",
                    json.dumps(params),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=stderr,
                    env=scratch.child_env(),
                )
                out, _ = await process.communicate()
            poster.cancel()
            await fleet.stop()
            during, _, after = log.read_text(errors="replace").partition(STOPPING)
            problems, at_stop = _problems(during), _problems(after)
            if process.returncode != 0:
                raise RuntimeError(f"the connectors' process failed ({process.returncode}): {log.read_text()[-2000:]}")
    result = ChildResult(**json.loads(out.decode().strip().splitlines()[-1]))
    models = {mode: await _models_mb(mode) for mode in ("default", "high")}
    return _report(result, count, seconds, poll_seconds, fleet, problems, at_stop, models, high_accuracy)


async def _models_mb(mode: str) -> float:
    """Resident memory triage's language models add to a fresh process, with the shipped rules or high accuracy."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "inbox.bench.fleet", "models", mode, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"measuring the language models ({mode}) failed ({process.returncode})")
    return float(out.decode().strip().splitlines()[-1])


def _report(
    r: ChildResult,
    count: int,
    seconds: float,
    poll_seconds: float,
    fleet: Fleet,
    problems: list[str],
    at_stop: list[str],
    models: dict[str, float],
    high_accuracy: bool = False,
) -> Report:
    p99 = percentile(r.lags, 99)
    what = f"{count:,} connectors" + (", high-accuracy languages" if high_accuracy else "")
    report = Report()
    report.add(
        Figure(
            "connectors",
            f"{what}: loop lag p50",
            percentile(r.lags, 50),
            "ms",
            percentile(r.idle_lags, 50),
            "idle, before start",
        ),
        Figure(
            "connectors",
            f"{what}: loop lag p99",
            p99,
            "ms",
            percentile(r.idle_lags, 99),
            "idle, before start",
            under(p99, LAG_GOAL_MS, "ms"),
        ),
        Figure(
            "connectors",
            f"{what}: loop lag max",
            max(r.lags, default=0.0),
            "ms",
            max(r.idle_lags, default=0.0),
            "idle, before start",
        ),
        Figure(
            "connectors",
            f"{what}: peak resident memory",
            r.peak_rss,
            "MB",
            r.idle_rss,
            "idle, before start",
            under(r.peak_rss, RSS_GOAL_MB, "MB"),
        ),
    )
    report.note(
        f"connectors: {count:,} mastodon connectors, poll_seconds {poll_seconds:g}, for {seconds:g} s after a "
        f"{IDLE_SECONDS:g} s idle baseline; {fleet.polls:,} polls answered over {len(fleet.peers):,} TCP connections, "
        f"{fleet.posts:,} mentions appeared, "
        f"{r.items:,} items stored, {r.unhealthy} connector(s) unhealthy at the end, "
        f"{len(problems)} warning/error log line(s)"
    )
    report.note(
        f"connectors: {r.pending_events:,} outbox event(s) still undelivered when the Runner stopped; lag p99 during "
        f"the first poll round ({poll_seconds:g} s) {percentile(r.first_round_lags, 99):.1f} ms; up to {r.peak_fds:,} open "
        f"file descriptors; building the inbox took {r.build_seconds:.1f} s"
    )
    report.note(
        f"connectors: Runner.start() held the event loop {r.start_ms:.0f} ms (adding {count:,} poll jobs); "
        f"the longest lag after that was {r.max_lag_after_start:.0f} ms; the five longest: "
        + ", ".join(f"{lag:.0f} ms at {at:.1f} s" for lag, at in r.worst)
        + f"; {len(r.gc_pauses)} full garbage collection(s) while polling, the longest "
        + (", ".join(f"{pause:.0f}" for pause in r.gc_pauses[:5]) or "-")
        + " ms"
    )
    report.note(
        f"connectors: resident memory {r.start_rss:.0f} MB with Python and the code loaded, {r.built_rss:.0f} MB with the "
        f"inbox built, {r.idle_rss:.0f} MB once triage has loaded its language models (the baseline), "
        f"peak {r.peak_rss:.0f} MB while polling"
    )
    report.note(
        f"connectors: the language models alone add {models['default']:.0f} MB to a fresh process with the shipped "
        f"triage rules (lingua's low-accuracy mode and the shipped model), {models['high']:.0f} MB with {_HIGH_RULES}"
    )
    for line, times in _kinds(problems).most_common(3):
        report.note(f"connectors: {times} log line(s) like: {line[:300]}")
    for line, times in _kinds(at_stop).most_common(2):
        report.note(f"connectors: while the Runner stopped, {times} log line(s) like: {line[:300]}")
    return report


def _problems(log: str) -> list[str]:
    """The child's warning and error lines, each with the exception that ended its traceback, if any."""
    problems: list[str] = []
    for line in log.splitlines():
        if line.startswith(("WARNING", "ERROR", "CRITICAL")):
            problems.append(line)
        elif problems and line.strip() and not line.startswith((" ", "Traceback", "During handling", "The above")):
            problems[-1] = f"{problems[-1].split(' -> ')[0]} -> {line.strip()}"
    return problems


def _kinds(lines: list[str]) -> Counter[str]:
    """Log lines counted by what they say, times and numbers aside."""
    kinds: Counter[str] = Counter()
    for line in lines:
        kinds[re.sub(r"\d+", "N", line)] += 1
    return kinds


# ---------------------------------------------------------------------------------------------------- the child


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except OSError:  # not Linux: the peak so far is the best there is
        return _peak_rss_mb()


def _peak_rss_mb() -> float:
    # Only where /proc cannot be sampled: Linux keeps ru_maxrss across exec, so a child started by a big
    # parent (`inbox bench` after the sweep's million items) would report the parent's size as its own.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6


def _fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


class _GcTimes:
    """How long each full (generation 2) garbage collection holds the loop, while installed."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._started) * 1000)


class _Ticker:
    """Sleeps TICK again and again and records how late each wake-up is (ms), sampling memory as it goes."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.peak_rss = 0.0
        self.peak_fds = 0

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        n = 0
        while True:
            started = loop.time()
            await asyncio.sleep(TICK)
            woke = loop.time()
            self.samples.append((woke, (woke - started - TICK) * 1000))
            n += 1
            if n % 25 == 0:
                self.peak_rss = max(self.peak_rss, _rss_mb())
                self.peak_fds = max(self.peak_fds, _fds())

    def lags(self, since: float, until: float = float("inf")) -> list[float]:
        return [max(0.0, lag) for at, lag in self.samples if since <= at < until]


async def _child(params: dict[str, Any]) -> ChildResult:
    import logging

    import sqlalchemy as sa

    from inbox.bench.core import open_child_store
    from inbox.service import Inbox, Runner
    from inbox.settings import parse_config
    from inbox.store.models import ConnectorHealth, Event, Item

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    result = ChildResult(start_rss=_rss_mb())
    started = time.perf_counter()
    connectors = [
        {
            "name": f"m{i:04d}",
            "type": "mastodon",
            "api_url": f"{params['fleet']}/{i}",
            "access_token": TOKEN,
            "account_id": BRAND_ID,
            "poll_seconds": params["poll_seconds"],
        }
        for i in range(params["connectors"])
    ]
    config: dict[str, Any] = {"connectors": connectors}
    if params.get("high_accuracy"):
        # The knob as a user sets it: a rules file merged over the shipped one.
        rules = Path(tempfile.mkdtemp(prefix="inbox-bench-rules-")) / "triage.toml"
        rules.write_text(f"[detection]\n{_HIGH_RULES.replace(', ', chr(10))}\n", encoding="utf-8")
        config["triage"] = {"rules": str(rules)}
    inbox = Inbox(parse_config(config, env={}, types=registry), open_child_store(), notifiers=None)
    result.built_rss = _rss_mb()
    # The language models, loaded lazily on the first text that needs them: a long text and a short one.
    inbox.triager.classify("warm up the language models before the baseline, with a sentence long enough")
    inbox.triager.classify("ok")
    async with inbox.engine.connect() as conn:
        await conn.execute(sa.select(1))
    result.build_seconds = time.perf_counter() - started
    loop = asyncio.get_running_loop()
    ticker = _Ticker()
    ticking = asyncio.create_task(ticker.run())
    idle_from = loop.time()
    await asyncio.sleep(IDLE_SECONDS)
    result.idle_rss = max(_rss_mb(), ticker.peak_rss)
    runner = Runner(inbox)
    collections = _GcTimes()
    gc.callbacks.append(collections)
    start = loop.time()
    await runner.start()
    result.start_ms = (loop.time() - start) * 1000
    result.max_lag_after_start = 0.0
    await asyncio.sleep(params["seconds"])
    end = loop.time()
    ticking.cancel()
    gc.callbacks.remove(collections)
    result.gc_pauses = sorted(collections.pauses, reverse=True)
    result.idle_lags = ticker.lags(idle_from, start)
    result.lags = ticker.lags(start, end)
    # The first wake-up after start() waited for start() itself: the rest of the run without it.
    result.max_lag_after_start = max(ticker.lags(start + result.start_ms / 1000 + 2 * TICK, end), default=0.0)
    result.worst = sorted(((lag, at - start) for at, lag in ticker.samples if start <= at < end), reverse=True)[:5]
    result.first_round_lags = ticker.lags(start, start + params["poll_seconds"])
    result.peak_rss = ticker.peak_rss if os.path.exists("/proc/self/statm") else _peak_rss_mb()
    result.peak_fds = ticker.peak_fds
    print(STOPPING, file=sys.stderr, flush=True)
    await runner.stop(grace=30)
    async with inbox.engine.connect() as conn:
        result.items = (await conn.execute(sa.select(sa.func.count()).select_from(Item))).scalar_one()
        result.pending_events = (
            await conn.execute(sa.select(sa.func.count()).select_from(Event).where(Event.done_at.is_(None)))
        ).scalar_one()
        result.unhealthy = (
            await conn.execute(
                sa.select(sa.func.count()).select_from(ConnectorHealth).where(ConnectorHealth.healthy.is_(False))
            )
        ).scalar_one()
    await inbox.close()
    return result


def _models_child(mode: str) -> float:
    """MB of resident memory that loading triage's language models adds, as `Runner.start()` loads them."""
    from inbox.triage import Triager, load_rules

    rules = load_rules()
    if mode == "high":
        rules = rules.model_copy(
            update={
                "detection": rules.detection.model_copy(
                    update={"short_text_chars": 40, "low_accuracy_min_confidence": 0.6}
                )
            }
        )
    triager = Triager(rules)
    before = _rss_mb()
    triager.warm_up()
    return _rss_mb() - before


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_connectors.py`; with one JSON argument, the child process; `models MODE`, that measure."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) == 1 and args[0].startswith("{"):
        print(json.dumps(asdict(asyncio.run(_child(json.loads(args[0]))))))
        return
    if len(args) == 2 and args[0] == "models":
        print(f"{_models_child(args[1]):.1f}")
        return
    from inbox.bench.runner import script

    def options(parser: Any) -> Any:
        parser.add_argument(
            "--connectors", type=int, help=f"connectors (default {CONNECTORS:,}; --quick {QUICK_CONNECTORS})"
        )
        parser.add_argument(
            "--seconds", type=float, help=f"how long they poll (default {SECONDS:g}; --quick {QUICK_SECONDS:g})"
        )
        parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS, help="each connector's poll_seconds")
        parser.add_argument(
            "--high-accuracy",
            action="store_true",
            help=f"triage rules that load lingua's high-accuracy models ({_HIGH_RULES}), as shipped before",
        )
        return lambda a: {
            "connectors": a.connectors,
            "seconds": a.seconds,
            "poll_seconds": a.poll_seconds,
            "high_accuracy": a.high_accuracy,
        }

    script(run, __doc__ or "", options, args)


if __name__ == "__main__":
    main()
