"""Slack acknowledgement time: 200 concurrent signed clicks against `inbox run`, beside GET /healthz.

`inbox run` runs in its own process against a fake Slack in a third one, with 200 items already posted
as triage messages. Each round fires N requests at once and times each answer; the clicks' work
(assigning, replying, updating Slack) runs in the server after the acknowledgement, as in production.

Run: python tests/bench/bench_slack_ack.py [--clicks 200] [--postgresql URL]
Goal: p99 acknowledgement under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

# Run as a script from the repository root: the fake Slack and the payload helpers live in tests/.
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from inbox.fakes import slack_payloads as payloads  # noqa: E402
from inbox.fakes.slack import TOKEN, FakeSlack  # noqa: E402

TRIAGE, LEADS = "CTRIAGE01", "CLEADS001"


async def serve_fake(port_file: Path) -> None:
    """The fake Slack Web API in this process, until killed."""
    fake = FakeSlack()
    url = await fake.start()
    port_file.write_text(url)
    await asyncio.Event().wait()


def write_setup(folder: Path, clicks: int, database: str) -> Path:
    """A config pointing at the fake, and a jsonl feed with one item per click."""
    now = datetime.now(UTC)
    with (folder / "feed.jsonl").open("w") as feed:
        for i in range(clicks):
            feed.write(json.dumps({
                "id": f"b{i}", "text": f"Where is my order #{10000 + i}? It is late!", "author": {"handle": f"user{i}"},
                "posted_at": (now - timedelta(minutes=2)).isoformat(), "kind": "mention",
            }) + "\n")
    config = folder / "inbox.toml"
    config.write_text(f"""
[database]
url = "{database}"

[slack]
bot_token = "{TOKEN}"
signing_secret = "{payloads.SECRET}"
api_url = "{{api_url}}"
triage_channel = "{TRIAGE}"
leads_channel = "{LEADS}"

[server]
host = "127.0.0.1"
port = {{port}}

[[connectors]]
name = "feed"
type = "jsonl"
path = "{folder / 'feed.jsonl'}"
channel = "x"
poll_seconds = 1
""")
    return config


async def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    """Poll `check` until it returns something truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


async def timed(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, float]:
    started = time.perf_counter()
    async with http.request(method, url, **kwargs) as response:
        await response.read()
        return response.status, (time.perf_counter() - started) * 1000


async def burst(http: aiohttp.ClientSession, requests: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[int, float]]:
    """Fire every request at once; (status, milliseconds) each."""
    return await asyncio.gather(*(timed(http, m, u, **kw) for m, u, kw in requests))


def clicks_for(messages: list[dict[str, Any]], action_id: str, base: str, fake_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    requests = []
    for i, message in enumerate(messages):
        value = next(e["value"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action_id)
        payload = payloads.block_action(action_id, value, user=f"UAGENT{i % 7:03d}", channel=TRIAGE, message_ts=message["ts"],
                                        response_url=f"{fake_url}respond/bench")
        body = payloads.form(payload)
        requests.append(("POST", f"{base}/slack/events", {"data": body.encode(), "headers": payloads.signed(body)}))
    return requests


def summary(name: str, results: list[tuple[int, float]]) -> list[str]:
    times = sorted(ms for _, ms in results)
    ok = sum(1 for status, _ in results if status in (200, 404))

    def pct(p: float) -> float:
        return times[min(len(times) - 1, max(0, round(p * len(times)) - 1))]

    return [name, f"{ok}/{len(results)}", f"{pct(0.5):.1f}", f"{pct(0.95):.1f}", f"{pct(0.99):.1f}", f"{times[-1]:.1f}", f"{statistics.mean(times):.1f}"]


async def main(clicks: int, database: str | None) -> None:
    out = Console()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port_file = folder / "fake.url"
        fake = subprocess.Popen([sys.executable, __file__, "--serve-fake", str(port_file)], cwd=ROOT)
        server: subprocess.Popen[bytes] | None = None
        try:
            fake_url = await wait_for(lambda: _read(port_file), "the fake Slack")
            port = _free_port()
            config = write_setup(folder, clicks, database or f"sqlite:///{folder / 'inbox.db'}")
            config.write_text(config.read_text().replace("{api_url}", f"{fake_url}api/").replace("{port}", str(port)))
            server = subprocess.Popen(
                [sys.executable, "-m", "inbox", "run", "--config", str(config)], cwd=ROOT,
                stdout=subprocess.DEVNULL, stderr=open(folder / "server.log", "wb"),  # noqa: SIM115
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            base = f"http://127.0.0.1:{port}"
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                async def state() -> dict[str, Any]:
                    async with http.get(f"{fake_url}_state") as response:
                        return await response.json()

                async def triage_posted() -> list[dict[str, Any]] | None:
                    messages = (await state())["messages"].get(TRIAGE, [])
                    top = [m for m in messages if "thread_ts" not in m]
                    return top if len(top) >= clicks else None

                messages = await wait_for(triage_posted, f"{clicks} triage messages", timeout=120)
                out.print(f"{clicks} triage messages posted; server on {base} ({'PostgreSQL' if database else 'SQLite'})")
                # Warm-up: code paths and caches (auth.test, users.info) on both sides, and a pool of
                # kept-alive connections, as Slack keeps its connections to an app open.
                await burst(http, [("GET", f"{base}/healthz", {})] * clicks)
                await burst(http, clicks_for(messages[:5], "inbox_assign", base, fake_url))

                async def settled(updates: int) -> None:
                    # The next round starts once the last one's work has reached Slack, so rounds do not overlap.
                    async def done() -> bool:
                        return (await state())["calls"].get("chat.update", 0) >= updates
                    await wait_for(done, "the clicks' work to reach Slack", timeout=120)

                async def click_round(name: str, action_id: str) -> list[str]:
                    before = (await state())["calls"].get("chat.update", 0)
                    row = summary(name, await burst(http, clicks_for(messages, action_id, base, fake_url)))
                    await settled(before + clicks)
                    return row

                await settled(5)
                # Two baselines: a 404 (aiohttp and the client only) and /healthz (one store query).
                rows = [summary("GET /nothing, 404 (HTTP floor)", await burst(http, [("GET", f"{base}/nothing", {})] * clicks))]
                rows.append(summary("GET /healthz (baseline)", await burst(http, [("GET", f"{base}/healthz", {})] * clicks)))
                rows.append(await click_round("inbox_assign clicks", "inbox_assign"))
                rows.append(summary("GET /healthz (baseline, again)", await burst(http, [("GET", f"{base}/healthz", {})] * clicks)))
                rows.append(await click_round("inbox_send clicks", "inbox_send"))
                calls = (await state())["calls"]
            replies = sum(1 for _ in (folder / "feed.jsonl.replies.jsonl").open())
            table = Table(title=f"{clicks} concurrent requests per round: answer time in ms (client side)")
            for column in ("round", "answered", "p50", "p95", "p99", "max", "mean"):
                table.add_column(column, justify="right" if column != "round" else "left")
            for row in rows:
                table.add_row(*row)
            out.print(table)
            out.print(f"after the acks: {replies} replies sent, {calls.get('chat.update', 0)} chat.update, "
                      f"{calls.get('chat.postMessage', 0)} chat.postMessage at the fake Slack")
        finally:
            for process in (server, fake):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)


async def _read(path: Path) -> str | None:
    return path.read_text() if path.exists() and path.read_text() else None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--postgresql", help="a PostgreSQL URL instead of a temporary SQLite file")
    parser.add_argument("--serve-fake", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        asyncio.run(serve_fake(args.serve_fake))
    else:
        asyncio.run(main(args.clicks, args.postgresql))
