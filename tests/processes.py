"""Helpers for tests that run `inbox` as a separate process: its config file, its environment, starting it, waiting."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from inbox.fakes import slack_payloads as payloads
from inbox.fakes.slack import TOKEN, FakeSlack

ROOT = Path(__file__).resolve().parents[1]
TRIAGE, LEADS, AGENT = "CTRIAGE01", "CLEADS001", "UAGENT001"
T = TypeVar("T")


def toml_table(values: dict[str, Any]) -> str:
    """The body of a TOML table: JSON scalars and string lists are valid TOML values."""
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def slack_table(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    """The [slack] table of an inbox posting to the fake Slack's triage and leads channels."""
    return {
        "bot_token": TOKEN,
        "signing_secret": payloads.SECRET,
        "api_url": f"{slack.url}api/",
        "triage_channel": TRIAGE,
        "leads_channel": LEADS,
        **extra,
    }


def free_port() -> int:
    """A TCP port nothing listens on now, for a server the test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def inbox_env(**extra: str) -> dict[str, str]:
    """This environment without INBOX_CONFIG (the process reads the config it is given), plus `extra`."""
    return {**{k: v for k, v in os.environ.items() if k != "INBOX_CONFIG"}, **extra}


def inbox_cli(
    *args: str, cwd: Path | None = None, stdin: str | None = None, timeout: float = 120, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """`python -m inbox ARGS` to its end, as a user runs it: (return code, stdout, stderr) as text."""
    return subprocess.run(
        [sys.executable, "-m", "inbox", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd or ROOT,
        env=inbox_env(COLUMNS=str(columns), INBOX_CONFIG=""),
        timeout=timeout,
    )


async def start_inbox_run(config: Path, log: Path, *, script: bool = False) -> asyncio.subprocess.Process:
    """`inbox run --config CONFIG` in the background, its log appended to `log`.

    `script`: the installed console script, as users (and the maintainers' check) run it; else `python -m inbox`.
    """
    command = [str(Path(sys.executable).with_name("inbox"))] if script else [sys.executable, "-m", "inbox"]
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            *command,
            "run",
            "--config",
            str(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL if not script else sink,
            stderr=sink,
            env=inbox_env(),
        )


class InboxProcess:
    """An `inbox run` process (the installed script) on `port`, and what a monitor and an agent do to it over HTTP."""

    def __init__(self, config: Path, port: int, log: Path, http: aiohttp.ClientSession) -> None:
        self.config, self.port, self.log, self.http = config, port, log, http
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await start_inbox_run(self.config, self.log, script=True)

    @property
    def running(self) -> bool:
        """Started and not ended yet."""
        return self.process is not None and self.process.returncode is None

    async def kill(self) -> bool:
        """SIGKILL, as a crash or the OOM killer ends it, and wait for it; False when it was not running."""
        if self.process is None or self.process.returncode is not None:
            return False
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        return True

    async def stop(self) -> int | None:
        """SIGTERM, then its exit code (None if it never started)."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        return await self.process.wait()

    async def healthz(self) -> tuple[int, dict[str, Any], float]:
        """GET /healthz: (status, body, seconds until the answer)."""
        started = time.monotonic()
        async with self.http.get(f"http://127.0.0.1:{self.port}/healthz") as response:
            body = await response.json()
            return response.status, body, time.monotonic() - started

    async def click(self, message: dict[str, Any], action_id: str, response_url: str = "http://127.0.0.1:9/") -> int:
        """The agent clicks the button `action_id` of a triage message: a signed interaction payload."""
        value = next(
            e["value"] for b in message["blocks"] for e in b.get("elements", []) if e.get("action_id") == action_id
        )
        payload = payloads.block_action(
            action_id, value, user=AGENT, channel=TRIAGE, message_ts=message["ts"], response_url=response_url
        )
        body = payloads.form(payload)
        async with self.http.post(
            f"http://127.0.0.1:{self.port}/slack/events", data=body.encode(), headers=payloads.signed(body)
        ) as response:
            await response.read()
            return response.status


async def until(what: str, check: Callable[[], Awaitable[T | None]], seconds: float, every: float = 0.2) -> T:
    """Wait for `check` to return something truthy, polling; fail saying what did not happen in time."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {seconds:.0f} s: {what}"
        await asyncio.sleep(every)
