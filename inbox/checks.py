"""`inbox check`: the store and every connector tried with one cheap call, one line each."""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from inbox import connectors as registry
from inbox.connector import ConnectorError
from inbox.logs import SECRETS, log_context, redact
from inbox.settings import Settings
from inbox.store.db import create_engine
from inbox.store.probes import ping, read_sqlite_file

TIMEOUT = 20.0


@dataclass(frozen=True, slots=True)
class StoreProbe:
    """Whether the store can be used, and one line saying where it is or what is wrong and what to do."""

    kind: str
    ok: bool
    detail: str


async def probe_store(url: str) -> StoreProbe:
    """Try the store without creating or changing anything (a SQLite file is opened read-only, never created)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return await asyncio.to_thread(_probe_sqlite, parsed.database)
    engine = create_engine(url)
    where = engine.url.render_as_string(hide_password=True)
    try:
        async with asyncio.timeout(TIMEOUT):
            await ping(engine)
        return StoreProbe("postgresql", True, where)
    except TimeoutError:
        return StoreProbe(
            "postgresql",
            False,
            f"unreachable: no answer within {TIMEOUT:.0f} s from {where}; check database.url and the network",
        )
    except (SQLAlchemyError, OSError) as exc:
        reason = _first_line(exc)
        if "does not exist" in reason and "database" in reason:
            hint = f"create it (createdb {parsed.database}) or fix database.url"
        elif "password" in reason or "authentication" in reason:
            hint = "check the user and password in database.url"
        else:
            hint = "is PostgreSQL running there? check database.url"
        return StoreProbe("postgresql", False, f"unreachable: {reason} ({where}); {hint}")
    finally:
        await engine.dispose()


def _probe_sqlite(database: str | None) -> StoreProbe:
    if not database or database == ":memory:":
        return StoreProbe("sqlite", True, "in memory (nothing is kept after the process ends)")
    path = Path(database)
    if not path.exists():
        folder = path.parent
        if not folder.is_dir():
            return StoreProbe(
                "sqlite", False, f"folder {folder} does not exist: create it (mkdir -p {folder}) or change database.url"
            )
        return StoreProbe("sqlite", True, f"{path} does not exist yet: `inbox run` creates it")
    try:
        read_sqlite_file(path)
    except sqlite3.Error as exc:
        return StoreProbe("sqlite", False, f"cannot read {path}: {exc}; is it an inbox database? check database.url")
    return StoreProbe("sqlite", True, str(path))


def startup_problem(exc: BaseException, settings: Settings) -> str | None:
    """One line saying what stopped `inbox run` from starting, where, and what to do; None for a bug (keep its traceback)."""
    server = settings.server
    where = f"{server.host}:{server.port}"
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        if exc.errno == errno.EADDRINUSE:
            return f"cannot listen on {where}: the port is already in use (another inbox run?); stop that process or set another server.port"
        if exc.errno == errno.EACCES:
            return f"cannot listen on {where}: permission denied (ports below 1024 need privileges); set server.port to 1024 or more"
        if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
            return f"cannot listen on {where}: no such address on this machine; fix server.host (0.0.0.0 listens everywhere)"
    if isinstance(exc, (SQLAlchemyError, OSError)):
        url = make_url(settings.database.url).render_as_string(hide_password=True)
        return f"cannot prepare the store at {url}: {_first_line(exc)}; try `inbox check`, then fix database.url or the database"
    return None


def _first_line(exc: BaseException) -> str:
    # SQLAlchemy prefixes the driver's message with "(module.Class) "; the message is what a person needs.
    return re.sub(r"^\([\w.]+\) ", "", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:200]


async def run_checks(settings: Settings, out: Console) -> int:
    """Print one row per check; return the number of problems."""
    table = Table(title="inbox check", show_lines=False)
    for column in ("check", "type", "result", "detail"):
        table.add_column(column)
    problems = 0
    SECRETS.add_settings(settings)

    def row(name: str, kind: str, ok: bool, detail: str) -> None:
        nonlocal problems
        problems += not ok
        # Vendor error text is data, not Rich markup; and it may echo the credentials just tried.
        table.add_row(Text(name), kind, "[green]ok[/]" if ok else "[red]FAIL[/]", Text(redact(detail)))

    store = await probe_store(settings.database.url)
    row("database", store.kind, store.ok, store.detail)

    for settings_ in settings.connectors:
        if not settings_.enabled:
            table.add_row(Text(settings_.name), settings_.type, "[dim]off[/]", "enabled = false")
            continue
        connector = registry.build(settings_)
        try:
            with log_context(connector=settings_.name):
                async with asyncio.timeout(TIMEOUT):
                    detail = await connector.check()
            row(settings_.name, settings_.type, True, detail)
        except ConnectorError as exc:
            row(settings_.name, settings_.type, False, str(exc))
        except TimeoutError:
            row(settings_.name, settings_.type, False, f"no answer within {TIMEOUT:.0f} s")
        finally:
            await connector.close()
    if not settings.slack.enabled:
        table.add_row("slack", "-", "[dim]off[/]", "no bot_token: escalations go to the log")
    else:
        from inbox.slack.api import SLACK_ERRORS, describe
        from inbox.slack.api import check as check_slack

        mode = "socket" if settings.slack.app_token else "http"
        try:
            async with asyncio.timeout(TIMEOUT):
                row("slack", mode, True, await check_slack(settings.slack))
        except TimeoutError:
            row("slack", mode, False, f"no answer within {TIMEOUT:.0f} s")
        except SLACK_ERRORS as exc:
            row("slack", mode, False, describe(exc))
    out.print(table)
    return problems
