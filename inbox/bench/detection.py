"""Detection latency: from a post appearing at a vendor to its triage message reaching Slack.

The service runs in its own process (store, server, Slack, Runner) with three connectors: a Mastodon account
polled every `poll_seconds`, a Mastodon account on the streaming API, and a webhook. This process serves the
fake Mastodon instances and the fake Slack, makes customer posts appear at random times on each channel, and
times each one from its appearance to the fake Slack receiving the chat.postMessage that shows it. The item's
ingest time in the store splits that into detection (poll wait, or the push) and the rest (outbox, Slack).
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from rich.console import Console

from inbox.bench import child
from inbox.bench.core import Figure, Report, Scratch, percentile, scratch_store, under, write_config
from inbox.connectors.webhook import SIGNATURE_HEADER, sign
from inbox.fakes import slack_payloads
from inbox.fakes.mastodon import BRAND_ID, TOKEN, MastodonFake
from inbox.fakes.slack import TOKEN as SLACK_TOKEN
from inbox.fakes.slack import FakeSlack
from inbox.store.models import Item

POLL_SECONDS, QUICK_POLL_SECONDS = 10.0, 5.0
POSTS, QUICK_POSTS = 40, 12
WINDOW_POLLS = 5  # posts appear at random over this many poll intervals
PUSH_GOAL_S = 1.0
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
TRIAGE, LEADS = "CTRIAGE01", "CLEADS001"
CHANNELS = ("polled", "streamed", "webhook")


@dataclass(slots=True)
class Post:
    """One customer post: when it appeared, when ingest took it, when Slack got it (wall-clock seconds)."""

    channel: str
    token: str
    external_id: str = ""
    appeared: float = 0.0
    answered: float | None = None  # the webhook's HTTP answer
    ingested: float | None = None
    in_slack: float | None = None


@dataclass(slots=True)
class Channel:
    """The posts of one channel, and what they measured."""

    name: str
    posts: list[Post] = field(default_factory=list)

    def seconds(self, start: str, end: str) -> list[float]:
        """end - start for every post that has both."""
        values = []
        for post in self.posts:
            a, b = getattr(post, start), getattr(post, end)
            if a is not None and b is not None:
                values.append(b - a)
        return values


async def run(
    url: str,
    *,
    quick: bool,
    console: Console,
    poll_seconds: float | None = None,
    posts: int | None = None,
    outbox_seconds: float = 1.0,
) -> Report:
    """Benchmark 4 on the store at `url`."""
    poll = poll_seconds or (QUICK_POLL_SECONDS if quick else POLL_SECONDS)
    count = posts or (QUICK_POSTS if quick else POSTS)
    async with scratch_store(url, "detect") as scratch:
        channels = await measure(scratch, poll, count, outbox_seconds, console)
    return _report(channels, poll, count, outbox_seconds)


async def measure(
    scratch: Scratch, poll: float, count: int, outbox_seconds: float, console: Console
) -> dict[str, Channel]:
    """Run the service against the fakes and time `count` posts per channel."""
    slack = FakeSlack()
    await slack.start()
    polled, streamed = MastodonFake(), MastodonFake()
    await polled.start()
    await streamed.start()
    service = None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        try:
            config = write_config(
                folder / "inbox.toml",
                {
                    "slack": {
                        "bot_token": SLACK_TOKEN,
                        "signing_secret": slack_payloads.SECRET,
                        "api_url": f"{slack.url}api/",
                        "triage_channel": TRIAGE,
                        "leads_channel": LEADS,
                    },
                    "server": {"host": "127.0.0.1", "port": 0},
                    "connectors": [
                        {
                            "name": "polled",
                            "type": "mastodon",
                            "api_url": polled.base_url,
                            "access_token": TOKEN,
                            "account_id": BRAND_ID,
                            "poll_seconds": poll,
                        },
                        # Polled rarely, so what it stores came over the stream.
                        {
                            "name": "streamed",
                            "type": "mastodon",
                            "api_url": streamed.base_url,
                            "access_token": TOKEN,
                            "account_id": BRAND_ID,
                            "stream": True,
                            "poll_seconds": 3600,
                        },
                        {"name": "webhook", "type": "webhook", "secret": WEBHOOK_SECRET},
                    ],
                },
            )
            service = child.spawn_service(
                config, folder / "ready", scratch, folder / "service.log", outbox_seconds=outbox_seconds
            )
            port = int(await child.read_when_written(folder / "ready", service, "the service"))

            async def started() -> bool:
                return bool(
                    polled.fetch_requests()
                    and streamed.fetch_requests()
                    and any(r.path.startswith("/api/v1/streaming") for r in streamed.requests)
                )

            with console.status("detection: waiting for the first polls and the stream…"):
                await child.wait_for(started, "the first polls and the stream")
            window = WINDOW_POLLS * poll
            with console.status(f"detection: {count} posts per channel at random over {window:g} s…"):
                channels = await _post_all(polled, streamed, f"http://127.0.0.1:{port}", count, window)
                await _wait_for_slack(slack, channels, timeout=poll * 2 + 30)
            _match_slack(slack, channels)
            await _ingest_times(scratch, channels)
        except Exception:
            if (folder / "service.log").exists():
                console.print((folder / "service.log").read_text()[-3000:], markup=False)
            raise
        finally:
            child.stop(service)
            for fake in (polled, streamed):
                await fake.close()
            await slack.stop()
    return channels


async def _post_all(
    polled: MastodonFake, streamed: MastodonFake, base: str, count: int, window: float
) -> dict[str, Channel]:
    """Every channel's posts, each at a random moment of the window."""
    rng = random.Random(11)
    channels = {name: Channel(name) for name in CHANNELS}
    schedule = sorted((rng.uniform(0, window), name, k) for name in CHANNELS for k in range(count))
    begin = time.monotonic()
    async with aiohttp.ClientSession() as http:
        pending = []
        for at, name, k in schedule:
            await asyncio.sleep(max(0.0, begin + at - time.monotonic()))
            post = Post(name, f"BENCH{CHANNELS.index(name)}{k:04d}")
            channels[name].posts.append(post)
            text = f"Where is my order {post.token}? It was due on Monday."
            if name == "webhook":
                pending.append(asyncio.create_task(_push(http, base, post, text)))
                continue
            fake = polled if name == "polled" else streamed
            fake.now = datetime.now(UTC)
            post.external_id = fake.add_customer_post(text, author=f"customer{k}", minutes_ago=0)
            post.appeared = time.time()
            if name == "streamed":
                fake.push_event("notification", fake.notification_for(post.external_id))
        await asyncio.gather(*pending)
    return channels


async def _push(http: aiohttp.ClientSession, base: str, post: Post, text: str) -> None:
    post.external_id = post.token
    body = json.dumps(
        {
            "id": post.token,
            "text": text,
            "author": {"handle": f"user-{post.token}"},
            "posted_at": datetime.now(UTC).isoformat(),
            "kind": "mention",
        }
    ).encode()
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(WEBHOOK_SECRET, body)}
    post.appeared = time.time()
    async with http.post(f"{base}/webhooks/webhook", data=body, headers=headers) as response:
        await response.read()
        post.answered = time.time()
        if response.status != 202:
            raise RuntimeError(f"the webhook answered {response.status}")


def _posted_texts(slack: FakeSlack) -> list[tuple[float, str]]:
    return [(c.at, json.dumps(c.args)) for c in slack.calls if c.method == "chat.postMessage" and c.status == 200]


async def _wait_for_slack(slack: FakeSlack, channels: dict[str, Channel], timeout: float) -> None:
    tokens = [p.token for c in channels.values() for p in c.posts]

    async def all_posted() -> bool:
        texts = " ".join(text for _, text in _posted_texts(slack))
        return all(token in texts for token in tokens)

    with suppress(TimeoutError):  # the missing ones are reported as missing
        await child.wait_for(all_posted, "every post to reach Slack", timeout=timeout)


def _match_slack(slack: FakeSlack, channels: dict[str, Channel]) -> None:
    posted = _posted_texts(slack)
    for channel in channels.values():
        for post in channel.posts:
            post.in_slack = next((at for at, text in posted if post.token in text), None)


async def _ingest_times(scratch: Scratch, channels: dict[str, Channel]) -> None:
    async with scratch.engine().connect() as conn:
        rows = (await conn.execute(sa.select(Item.connector, Item.external_id, Item.ingested_at))).all()
    ingested = {(r.connector, r.external_id): r.ingested_at.timestamp() for r in rows}
    for channel in channels.values():
        for post in channel.posts:
            post.ingested = ingested.get((channel.name, post.external_id))


def _report(channels: dict[str, Channel], poll: float, count: int, outbox_seconds: float) -> Report:
    report = Report()
    polled, streamed, webhook = channels["polled"], channels["streamed"], channels["webhook"]
    total = polled.seconds("appeared", "in_slack")
    p95 = percentile(total, 95)
    wait = polled.seconds("appeared", "ingested")
    report.add(
        Figure(
            "detection",
            f"mastodon polled every {poll:g} s, p50",
            percentile(total, 50),
            "s",
            percentile(wait, 50),
            "post to ingest",
        ),
        Figure(
            "detection",
            f"mastodon polled every {poll:g} s, p95",
            p95,
            "s",
            percentile(wait, 95),
            "post to ingest",
            under(p95, poll + 1, "s"),
        ),
    )
    for channel, label, baseline, baseline_name in (
        (streamed, "mastodon streaming", streamed.seconds("appeared", "ingested"), "post to ingest"),
        (webhook, "webhook push", webhook.seconds("appeared", "answered"), "webhook answered"),
    ):
        ms = [s * 1000 for s in channel.seconds("appeared", "in_slack")]
        base = [s * 1000 for s in baseline]
        report.add(
            Figure("detection", f"{label}, p50", percentile(ms, 50), "ms", percentile(base, 50), baseline_name),
            Figure(
                "detection",
                f"{label}, p95",
                percentile(ms, 95),
                "ms",
                percentile(base, 95),
                baseline_name,
                under(percentile(ms, 95), PUSH_GOAL_S * 1000, "ms"),
            ),
        )
    report.note(
        f"detection: {count} posts per channel at random over {WINDOW_POLLS} poll intervals; outbox every "
        f"{outbox_seconds:g} s (Runner outbox_seconds; `inbox run` uses 1 s)"
    )
    for channel in channels.values():
        missing = sum(1 for p in channel.posts if p.in_slack is None)
        detect, rest = channel.seconds("appeared", "ingested"), channel.seconds("ingested", "in_slack")
        report.note(
            f"detection: {channel.name}: post to ingest p50 {percentile(detect, 50):.2f} s / p95 {percentile(detect, 95):.2f} s; "
            f"ingest to Slack p50 {percentile(rest, 50):.2f} s / p95 {percentile(rest, 95):.2f} s"
            + (f"; {missing} post(s) never reached Slack" if missing else "")
        )
    return report


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_detection.py`."""
    from inbox.bench.runner import script

    def options(parser: Any) -> Any:
        parser.add_argument(
            "--poll-seconds",
            type=float,
            help=f"the polled connector's interval (default {POLL_SECONDS:g}; --quick {QUICK_POLL_SECONDS:g})",
        )
        parser.add_argument("--posts", type=int, help=f"posts per channel (default {POSTS}; --quick {QUICK_POSTS})")
        parser.add_argument(
            "--outbox-seconds", type=float, default=1.0, help="the Runner's outbox interval (inbox run: 1)"
        )
        return lambda a: {"poll_seconds": a.poll_seconds, "posts": a.posts, "outbox_seconds": a.outbox_seconds}

    script(run, __doc__ or "", options, argv)
