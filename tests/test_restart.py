"""`kill -9` of the only `inbox run`, then a restart: new items reach Slack without waiting for the dead lease.

A real `inbox run` polls a `jsonl` file and takes webhook pushes, posting to a local Slack. It is killed with
SIGKILL while it holds its connector lease and started again at once; a line appended to the file and a push
must both reach Slack, and the restarted process must say it took the dead worker's connectors over at once.

The promise (new items within 10 s of the restart) is a matter of order, not of this machine's speed: the
restarted process does not wait for the dead one's lease to run out. So the lease here is an hour long: an
item in Slack within the test's ceiling (minutes) proves the lease was not waited for, however busy the machine.
The seconds it took are printed, for the record.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from inbox.connectors.webhook import sign
from inbox.fakes.slack import FakeSlack
from tests.processes import TRIAGE, free_port, slack_table, start_inbox_run, toml_table

SECRET = "restart-webhook-secret-0123456789"
LEASE_SECONDS = 3600  # far longer than WAIT_SECONDS: a restart that waited for the dead lease could not pass
WAIT_SECONDS = 300.0  # how long to wait for a verdict at all, so a broken build fails with its log, not a hang


def write_config(folder: Path, url: str, slack: FakeSlack, feed: Path, port: int) -> Path:
    # The defaults a user has (a 5 s poll, as in the report) but for the lease: an hour, see the module's doc.
    text = (
        f'[database]\nurl = "{url}"\n'
        f"[workers]\nlease_seconds = {LEASE_SECONDS}\n"
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f"[slack]\n{toml_table(slack_table(slack))}"
        + "\n[[connectors]]\n"
        + toml_table({"name": "feed", "type": "jsonl", "path": str(feed), "poll_seconds": 5})
        + "\n[[connectors]]\n"
        + toml_table({"name": "shop", "type": "webhook", "secret": SECRET})
    )
    path = folder / "inbox.toml"
    path.write_text(text)
    return path


def mention(item_id: str) -> dict[str, object]:
    return {
        "id": item_id,
        "text": f"where is my order? ({item_id})",
        "posted_at": datetime.now(UTC).isoformat(),
        "author": {"handle": f"customer-{item_id}"},
    }


def append(feed: Path, item_id: str) -> None:
    with feed.open("a") as handle:
        handle.write(json.dumps(mention(item_id)) + "\n")


def posted_at(slack: FakeSlack, item_id: str) -> float | None:
    """When the triage post naming `item_id` reached Slack (wall clock, as the fake recorded it)."""
    marker = f"({item_id})"
    for call in slack.calls:
        if (
            call.method == "chat.postMessage"
            and call.ok
            and call.args.get("channel") == TRIAGE
            and marker in json.dumps(call.args)
        ):
            return call.at
    return None


async def push(port: int, item_id: str, until: float) -> None:
    """Push one item to the webhook, again while the restarted process is not listening yet."""
    data = json.dumps(mention(item_id)).encode()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        while True:
            try:
                async with http.post(
                    f"http://127.0.0.1:{port}/webhooks/shop",
                    data=data,
                    headers={"X-Inbox-Signature": sign(SECRET, data)},
                ) as response:
                    assert response.status == 202, await response.text()
                    return
            except aiohttp.ClientConnectionError:
                if time.monotonic() > until:
                    raise
                await asyncio.sleep(0.1)


async def in_slack(slack: FakeSlack, item_ids: list[str], until: float) -> dict[str, float]:
    """Wait (up to the monotonic `until`) for the triage posts of `item_ids`; return when each arrived."""
    while True:
        arrived = {i: at for i in item_ids if (at := posted_at(slack, i)) is not None}
        if len(arrived) == len(item_ids) or time.monotonic() > until:
            return arrived
        await asyncio.sleep(0.05)


async def test_a_restart_after_kill_9_delivers_new_items_without_waiting_for_the_lease(
    store_url: str, tmp_path: Path
) -> None:
    slack = FakeSlack()
    await slack.start()
    feed, log = tmp_path / "feed.jsonl", tmp_path / "inbox.log"
    append(feed, "before")
    port = free_port()
    config = write_config(tmp_path, store_url, slack, feed, port)
    process = await start_inbox_run(config, log)
    try:
        # Polling (and posting) for sure: the first item is in Slack. Then the process dies holding its lease.
        first = await in_slack(slack, ["before"], time.monotonic() + WAIT_SECONDS)
        assert first, "the first run never posted its item"
        process.send_signal(signal.SIGKILL)
        await process.wait()

        restarted_at = time.time()  # wall clock, as the fake stamps the posts
        process = await start_inbox_run(config, log)
        append(feed, "after-jsonl")
        await push(port, "after-webhook", time.monotonic() + WAIT_SECONDS)
        arrived = await in_slack(slack, ["after-jsonl", "after-webhook"], time.monotonic() + WAIT_SECONDS)
        took = {item_id: round(at - restarted_at, 2) for item_id, at in arrived.items()}
        print(f"seconds from the restart command to Slack: {took}")
        assert set(took) == {"after-jsonl", "after-webhook"}, f"never reached Slack after the restart: {took}"
        # How: the restarted process found the killed one's pid gone and took its connectors over at once.
        assert "are dead (no such process): their connectors and claims are taken over now" in log.read_text()
    except BaseException:
        print(log.read_text(errors="replace")[-6000:])
        raise
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()
        await slack.stop()
    assert process.returncode == 0
