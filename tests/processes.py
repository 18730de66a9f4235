"""Helpers for tests that run `inbox` as a separate process: its config file, its environment, running it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from inbox.fakes import slack_payloads as payloads
from inbox.fakes.slack import TOKEN, FakeSlack

ROOT = Path(__file__).resolve().parents[1]
TRIAGE, LEADS = "CTRIAGE01", "CLEADS001"


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
