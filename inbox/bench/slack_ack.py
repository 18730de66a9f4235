"""Slack acknowledgement time: 200 concurrent signed clicks against the running service, beside GET /healthz.

The service runs in its own process (on a scratch store) against a fake Slack in a third one, with one item per
click already posted as a triage message. Each round fires every request at once and times each answer; the
clicks' work (assigning, replying, updating Slack) runs in the service after the acknowledgement, as in production.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from inbox.bench import child
from inbox.bench.core import Figure, Report, percentile, scratch_store, under, write_config
from inbox.fakes import slack_payloads as payloads
from inbox.fakes.slack import TOKEN

CLICKS, QUICK_CLICKS = 200, 50
GOAL_MS = 100.0
TRIAGE, LEADS = "CTRIAGE01", "CLEADS001"

Request = tuple[str, str, dict[str, Any]]


def write_setup(folder: Path, clicks: int, slack_url: str) -> Path:
    """A config pointing at the fake Slack, and a jsonl feed with one item per click."""
    now = datetime.now(UTC)
    with (folder / "feed.jsonl").open("w") as feed:
        for i in range(clicks):
            feed.write(
                json.dumps(
                    {
                        "id": f"b{i}",
                        "text": f"Where is my order #{10000 + i}? It is late!",
                        "author": {"handle": f"user{i}"},
                        "posted_at": (now - timedelta(minutes=2)).isoformat(),
                        "kind": "mention",
                    }
                )
                + "\n"
            )
    return write_config(
        folder / "inbox.toml",
        {
            "slack": {
                "bot_token": TOKEN,
                "signing_secret": payloads.SECRET,
                "api_url": f"{slack_url}api/",
                "triage_channel": TRIAGE,
                "leads_channel": LEADS,
            },
            "server": {"host": "127.0.0.1", "port": 0},
            "connectors": [
                {"name": "feed", "type": "jsonl", "path": str(folder / "feed.jsonl"), "channel": "x", "poll_seconds": 1}
            ],
        },
    )


async def timed(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, float]:
    """(status, milliseconds) of one request, to the last byte of the answer."""
    started = time.perf_counter()
    async with http.request(method, url, **kwargs) as response:
        await response.read()
        return response.status, (time.perf_counter() - started) * 1000


async def burst(http: aiohttp.ClientSession, requests: list[Request]) -> list[tuple[int, float]]:
    """Fire every request at once; (status, milliseconds) each."""
    return await asyncio.gather(*(timed(http, m, u, **kw) for m, u, kw in requests))


def clicks_for(messages: list[dict[str, Any]], action_id: str, base: str, fake_url: str) -> list[Request]:
    """One signed click of `action_id` on each triage message."""
    requests = []
    for i, message in enumerate(messages):
        value = next(
            e["value"]
            for b in message["blocks"]
            if b["type"] == "actions"
            for e in b["elements"]
            if e["action_id"] == action_id
        )
        payload = payloads.block_action(
            action_id,
            value,
            user=f"UAGENT{i % 7:03d}",
            channel=TRIAGE,
            message_ts=message["ts"],
            response_url=f"{fake_url}respond/bench",
        )
        body = payloads.form(payload)
        requests.append(("POST", f"{base}/slack/events", {"data": body.encode(), "headers": payloads.signed(body)}))
    return requests


class Round:
    """The answer times of one burst."""

    def __init__(self, name: str, results: list[tuple[int, float]]) -> None:
        self.name = name
        self.times = [ms for _, ms in results]
        self.answered = sum(1 for status, _ in results if status in (200, 404))

    def line(self) -> str:
        """p50/p95/p99/max/mean in ms."""
        t = self.times
        return (
            f"{self.name}: {self.answered}/{len(t)} answered; p50 {percentile(t, 50):.1f}, p95 {percentile(t, 95):.1f}, "
            f"p99 {percentile(t, 99):.1f}, max {max(t):.1f}, mean {statistics.mean(t):.1f} ms"
        )


async def measure(url: str, clicks: int, console: Console) -> tuple[list[Round], dict[str, int], int]:
    """The rounds, the fake Slack's call counts after them, and how many replies went out."""
    async with scratch_store(url, "slack") as scratch:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            fake = child.spawn_fake_slack(folder / "slack.url")
            service = None
            try:
                fake_url = await child.read_when_written(folder / "slack.url", fake, "the fake Slack")
                config = write_setup(folder, clicks, fake_url)
                service = child.spawn_service(config, folder / "ready", scratch, folder / "service.log")
                port = await child.read_when_written(folder / "ready", service, "the service")
                rounds, calls = await _rounds(f"http://127.0.0.1:{port}", fake_url, clicks, console)
            except Exception:
                if (folder / "service.log").exists():
                    console.print((folder / "service.log").read_text()[-3000:], markup=False)
                raise
            finally:
                child.stop(service, fake)
            replies = (
                sum(1 for _ in (folder / "feed.jsonl.replies.jsonl").open())
                if (folder / "feed.jsonl.replies.jsonl").exists()
                else 0
            )
    return rounds, calls, replies


async def _rounds(base: str, fake_url: str, clicks: int, console: Console) -> tuple[list[Round], dict[str, int]]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def state() -> dict[str, Any]:
            async with http.get(f"{fake_url}_state") as response:
                body: dict[str, Any] = await response.json()
                return body

        async def triage_posted() -> list[dict[str, Any]] | None:
            top = [m for m in (await state())["messages"].get(TRIAGE, []) if "thread_ts" not in m]
            return top if len(top) >= clicks else None

        with console.status(f"slack: waiting for {clicks} triage messages…"):
            messages = await child.wait_for(triage_posted, f"{clicks} triage messages", timeout=180)
        # Warm-up: code paths and caches (auth.test, users.info) on both sides, and a pool of kept-alive
        # connections, as Slack keeps its connections to an app open.
        await burst(http, [("GET", f"{base}/healthz", {})] * clicks)
        await burst(http, clicks_for(messages[:5], "inbox_assign", base, fake_url))

        async def settled(updates: int) -> None:
            # The next round starts once the last one's work has reached Slack, so rounds do not overlap.
            async def done() -> bool:
                calls: int = (await state())["calls"].get("chat.update", 0)
                return calls >= updates

            await child.wait_for(done, "the clicks' work to reach Slack", timeout=180)

        async def click_round(name: str, action_id: str) -> Round:
            before = (await state())["calls"].get("chat.update", 0)
            result = Round(name, await burst(http, clicks_for(messages, action_id, base, fake_url)))
            await settled(before + clicks)
            return result

        await settled(5)
        with console.status(f"slack: rounds of {clicks} concurrent requests…"):
            # Two baselines: a 404 (aiohttp and the client only) and /healthz (one store query).
            rounds = [
                Round(
                    "GET /nothing (404, the HTTP floor)", await burst(http, [("GET", f"{base}/nothing", {})] * clicks)
                )
            ]
            rounds.append(Round("GET /healthz", await burst(http, [("GET", f"{base}/healthz", {})] * clicks)))
            rounds.append(await click_round("inbox_assign clicks", "inbox_assign"))
            rounds.append(Round("GET /healthz, again", await burst(http, [("GET", f"{base}/healthz", {})] * clicks)))
            rounds.append(await click_round("inbox_send clicks", "inbox_send"))
        return rounds, (await state())["calls"]


async def run(url: str, *, quick: bool, console: Console, clicks: int | None = None) -> Report:
    """Benchmark 5 on the store at `url`."""
    clicks = clicks or (QUICK_CLICKS if quick else CLICKS)
    rounds, calls, replies = await measure(url, clicks, console)
    floor, health, assign, health_again, send = rounds
    report = Report()
    for name, clicked, baseline in (("assign", assign, health), ("send", send, health_again)):
        p99 = percentile(clicked.times, 99)
        report.add(
            Figure(
                "slack ack",
                f"{clicks} concurrent {name} clicks, p50",
                percentile(clicked.times, 50),
                "ms",
                percentile(baseline.times, 50),
                "GET /healthz",
            ),
            Figure(
                "slack ack",
                f"{clicks} concurrent {name} clicks, p99",
                p99,
                "ms",
                percentile(baseline.times, 99),
                "GET /healthz",
                under(p99, GOAL_MS, "ms"),
            ),
        )
    for r in rounds:
        report.note(f"slack ack: {r.line()}")
    report.note(
        f"slack ack: after the acks, {replies} replies sent, {calls.get('chat.update', 0)} chat.update and "
        f"{calls.get('chat.postMessage', 0)} chat.postMessage at the fake Slack; answer times are client side, "
        f"{floor.name} shows what HTTP alone costs"
    )
    return report


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_slack_ack.py`."""
    from inbox.bench.runner import script

    def options(parser: Any) -> Any:
        parser.add_argument(
            "--clicks", type=int, help=f"concurrent clicks per round (default {CLICKS}; --quick {QUICK_CLICKS})"
        )
        return lambda args: {"clicks": args.clicks}

    script(run, __doc__ or "", options, argv)
