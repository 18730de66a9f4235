"""Meta webhook deliveries: 200 signed WhatsApp deliveries at once against the running service, beside the HTTP floor.

The service runs in its own process (on a scratch store, Slack off) with one `whatsapp` connector. Each round fires
every delivery at once (one customer message each, as Meta sends them) and times each answer; right after the burst
the store is read: every delivery answered 200 must already be stored (kept as received, or already ingested), since
the 200 comes only after the commit. Rounds start once the previous one's deliveries are triaged and ingested.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from rich.console import Console

from inbox.bench import child
from inbox.bench.core import Figure, Report, percentile, scratch_store, under, write_config
from inbox.bench.slack_ack import Request, Round, burst
from inbox.fakes.whatsapp import WhatsAppFake
from inbox.store import pushes
from inbox.store.models import Item, Pushed

DELIVERIES, QUICK_DELIVERIES = 200, 50
GOAL_MS = 100.0
APP_SECRET = "bench-app-secret-0123456789"
NAME = "acme-wa"


def write_setup(folder: Path, fake: WhatsAppFake) -> Path:
    """A config with one whatsapp connector (its Graph API is never called: nothing is sent)."""
    return write_config(
        folder / "inbox.toml",
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "connectors": [
                {
                    "name": NAME,
                    "type": "whatsapp",
                    "api_url": "http://127.0.0.1:9",
                    "phone_number_id": fake.phone_number_id,
                    "access_token": "bench-token",
                    "app_secret": APP_SECRET,
                    "verify_token": "bench-verify-token-0123",
                }
            ],
        },
    )


def deliveries(fake: WhatsAppFake, count: int, base: str, round_no: int) -> tuple[list[Request], list[str]]:
    """`count` signed deliveries of one message each, from `count` customers; and the messages' ids."""
    ids = [
        fake.add_customer_post(
            f"Bonjour, ma commande {round_no}-{i} n'est pas arrivée", author=f"3361{round_no}{i:06d}"
        )
        for i in range(count)
    ]
    requests: list[Request] = []
    for delivery in fake.take_deliveries(per_delivery=1):
        body, headers = fake.signed(delivery)
        requests.append(("POST", f"{base}/webhooks/{NAME}", {"data": body, "headers": headers}))
    return requests, ids


async def measure(url: str, count: int, console: Console) -> tuple[list[Round], list[int]]:
    """The rounds, and per delivery round how many of its messages were in the store right after its burst."""
    fake = WhatsAppFake(app_secret=APP_SECRET)
    async with scratch_store(url, "metapush") as scratch:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            service = None
            try:
                config = write_setup(folder, fake)
                service = child.spawn_service(config, folder / "ready", scratch, folder / "service.log")
                port = await child.read_when_written(folder / "ready", service, "the service")
                engine = scratch.engine()
                return await _rounds(f"http://127.0.0.1:{port}", fake, count, engine, console)
            except Exception:
                if (folder / "service.log").exists():
                    console.print((folder / "service.log").read_text()[-3000:], markup=False)
                raise
            finally:
                child.stop(service)


async def _rounds(
    base: str, fake: WhatsAppFake, count: int, engine: Any, console: Console
) -> tuple[list[Round], list[int]]:
    async def stored(ids: list[str]) -> int:
        # Kept as received (not yet triaged) or already ingested as an item: either way in the store.
        async with engine.connect() as conn:
            items = set((await conn.execute(sa.select(Item.external_id).where(Item.external_id.in_(ids)))).scalars())
            kept = "\n".join((await conn.execute(sa.select(Pushed.body))).scalars())
        return sum(1 for i in ids if i in items or f'"{i}"' in kept)

    async def ingested() -> bool:
        return await pushes.waiting(engine) == 0

    async def settled() -> None:
        # The next round starts once the last one's bodies are triaged and ingested, so rounds do not overlap.
        await child.wait_for(ingested, "the kept deliveries to be ingested", timeout=180, every=0.05)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def healthy() -> bool:
            async with http.get(f"{base}/healthz") as response:
                return response.status == 200

        # Warm-up: the triage models load at start (the service warms them before its first poll), code paths,
        # and a pool of kept-alive connections, as Meta keeps its connections to an endpoint open.
        with console.status("meta push: warming up…"):
            await child.wait_for(healthy, "the service to be healthy", timeout=120)
            for warm_round in (7, 8, 9):
                warm, _ = deliveries(fake, count, base, warm_round)
                await burst(http, warm)
                await settled()
            await burst(http, [("GET", f"{base}/healthz", {})] * count)
        rounds: list[Round] = []
        in_store: list[int] = []
        with console.status(f"meta push: rounds of {count} concurrent requests…"):
            rounds.append(
                Round("GET /nothing (404, the HTTP floor)", await burst(http, [("GET", f"{base}/nothing", {})] * count))
            )
            rounds.append(Round("GET /healthz", await burst(http, [("GET", f"{base}/healthz", {})] * count)))
            for round_no in (1, 2):
                requests, ids = deliveries(fake, count, base, round_no)
                results = await burst(http, requests)
                rounds.append(Round(f"signed WhatsApp deliveries, round {round_no}", results))
                # Read at once: what was answered 200 must be in the store already.
                in_store.append(await stored(ids) if all(status == 200 for status, _ in results) else -1)
                await settled()
        return rounds, in_store


async def run(url: str, *, quick: bool, console: Console, deliveries: int | None = None) -> Report:
    """The Meta push benchmark on the store at `url`."""
    count = deliveries or (QUICK_DELIVERIES if quick else DELIVERIES)
    rounds, in_store = await measure(url, count, console)
    floor, health, *pushed = rounds
    report = Report()
    for delivered, stored in zip(pushed, in_store, strict=True):
        p99 = percentile(delivered.times, 99)
        label = delivered.name.split(", ")[-1]
        report.add(
            Figure(
                "meta push", f"{count} concurrent deliveries ({label}), p50", percentile(delivered.times, 50), "ms",
                percentile(floor.times, 50), "GET 404 (HTTP floor)",
            ),
            Figure(
                "meta push", f"{count} concurrent deliveries ({label}), p99", p99, "ms",
                percentile(floor.times, 99), "GET 404 (HTTP floor)", under(p99, GOAL_MS, "ms"),
            ),
            Figure("meta push", f"stored when answered ({label})", f"{max(stored, 0)}/{count}"),
        )  # fmt: skip
    for r in rounds:
        report.note(f"meta push: {r.line()}")
    report.note(
        f"meta push: answer times are client side; {health.name} is one store query; every delivery is a signed "
        "X-Hub-Signature-256 POST of one message, verified, read and committed as received before its 200 (triage and "
        "threads follow the answer)"
    )
    return report


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_meta_push.py`."""
    from inbox.bench.runner import script

    def options(parser: Any) -> Any:
        parser.add_argument(
            "--deliveries",
            type=int,
            help=f"concurrent deliveries per round (default {DELIVERIES}; --quick {QUICK_DELIVERIES})",
        )
        return lambda args: {"deliveries": args.deliveries}

    script(run, __doc__ or "", options, argv)
