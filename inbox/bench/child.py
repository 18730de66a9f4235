"""Processes the benchmarks start: the service on a scratch store, and a fake Slack of its own.

`python -m inbox.bench.child service CONFIG READY_FILE [--outbox-seconds S]` runs what `inbox run` runs (the
store, the HTTP server with Slack and webhooks, the Runner's polls, sweep and outbox) on the scratch store
named in the environment (see inbox.bench.core), and writes its port to READY_FILE once serving.
`python -m inbox.bench.child worker CONFIG READY_FILE` runs one worker's polls, leases and sweep (no server, no
outbox) and writes its worker id there once started.
`python -m inbox.bench.child fake-slack URL_FILE` serves the fake Slack Web API and writes its URL there.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from inbox import connectors as registry
from inbox.bench.core import Scratch

T = TypeVar("T")


def spawn_service(
    config: Path, ready: Path, scratch: Scratch, log: Path, *, outbox_seconds: float = 1.0
) -> subprocess.Popen[bytes]:
    """Start the service in its own process; its log goes to `log`."""
    command = [
        sys.executable,
        "-m",
        "inbox.bench.child",
        "service",
        str(config),
        str(ready),
        "--outbox-seconds",
        str(outbox_seconds),
    ]
    with log.open("wb") as stderr:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=scratch.child_env())


def spawn_worker(config: Path, ready: Path, scratch: Scratch, log: Path) -> subprocess.Popen[bytes]:
    """Start one polling worker (no server, no outbox) in its own process; its log goes to `log`."""
    command = [sys.executable, "-m", "inbox.bench.child", "worker", str(config), str(ready)]
    with log.open("wb") as stderr:
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=scratch.child_env())


def spawn_fake_slack(url_file: Path) -> subprocess.Popen[bytes]:
    """Start the fake Slack in its own process."""
    return subprocess.Popen(
        [sys.executable, "-m", "inbox.bench.child", "fake-slack", str(url_file)], stdout=subprocess.DEVNULL
    )


def stop(*processes: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM each process and wait for it (the service finishes its in-flight work first)."""
    for process in processes:
        if process is not None and process.poll() is None:
            process.terminate()
    for process in processes:
        if process is not None:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def wait_for(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 60, every: float = 0.2) -> T:
    """Poll `check` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


async def read_when_written(path: Path, process: subprocess.Popen[bytes], what: str, timeout: float = 120) -> str:
    """The text a child writes to `path` once ready; fails early if the child dies."""

    async def check() -> str | None:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode} before it was ready")
        return path.read_text() if path.exists() else None

    return await wait_for(check, what, timeout)


async def _service(config: Path, ready: Path, outbox_seconds: float) -> None:
    import logging

    from inbox.bench.core import open_child_store
    from inbox.logs import setup_logging
    from inbox.server import start_server
    from inbox.service import Inbox, Runner
    from inbox.settings import load_config

    setup_logging(logging.WARNING, json_lines=True)
    settings = load_config(config, types=registry)
    inbox = Inbox(settings, open_child_store())
    site = await start_server(inbox, settings.server.host, settings.server.port)
    if inbox.slack is not None:
        await inbox.slack.start()
    runner = Runner(inbox, outbox_seconds=outbox_seconds)
    await runner.start()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    _write(ready, str(site.port))
    await stopping.wait()
    await runner.stop()
    await site.runner.cleanup()
    await inbox.close()


async def _worker(config: Path, ready: Path) -> None:
    """One `inbox run` worker without its HTTP server or outbox: polls (under leases), ingest and the sweep."""
    import logging

    from inbox.bench.core import open_child_store
    from inbox.logs import setup_logging
    from inbox.service import Inbox, Runner
    from inbox.settings import load_config

    setup_logging(logging.WARNING, json_lines=True)
    inbox = Inbox(load_config(config, types=registry), open_child_store(), notifiers=[])
    # Ingest alone is measured: no outbox round after every page or sweep (Slack's rate limit paces it anyway).
    inbox.ingestor.on_event = inbox.sweep.on_event = lambda: None
    runner = Runner(inbox, outbox_seconds=3600)
    await runner.start()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
    _write(ready, inbox.worker)
    await stopping.wait()
    await runner.stop()
    await inbox.close()


async def _fake_slack(url_file: Path) -> None:
    from inbox.fakes.slack import FakeSlack

    fake = FakeSlack()
    _write(url_file, await fake.start())
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await stopping.wait()
    await fake.stop()


def _write(path: Path, text: str) -> None:
    # Written whole, then renamed: the parent never reads half a line.
    partial = path.with_suffix(".partial")
    partial.write_text(text)
    partial.replace(path)


def main() -> None:
    """Command line of the child processes."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    service = sub.add_parser("service")
    service.add_argument("config", type=Path)
    service.add_argument("ready", type=Path)
    service.add_argument("--outbox-seconds", type=float, default=1.0)
    worker = sub.add_parser("worker")
    worker.add_argument("config", type=Path)
    worker.add_argument("ready", type=Path)
    fake = sub.add_parser("fake-slack")
    fake.add_argument("url_file", type=Path)
    args = parser.parse_args()
    if args.what == "service":
        asyncio.run(_service(args.config, args.ready, args.outbox_seconds))
    elif args.what == "worker":
        asyncio.run(_worker(args.config, args.ready))
    else:
        asyncio.run(_fake_slack(args.url_file))


if __name__ == "__main__":
    main()
