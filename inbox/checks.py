"""`inbox check`: the store and every connector tried with one cheap call, one line each."""

from __future__ import annotations

import asyncio
import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from rich.text import Text
from sqlalchemy.exc import SQLAlchemyError

from inbox import connectors as registry
from inbox.settings import Settings
from inbox.connector import ConnectorError
from inbox.db import create_engine
from inbox.logs import SECRETS, log_context, redact

TIMEOUT = 20.0


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

    engine = create_engine(settings.database.url)
    try:
        async with asyncio.timeout(TIMEOUT):
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        row("database", engine.dialect.name, True, engine.url.render_as_string(hide_password=True))
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        row("database", engine.dialect.name, False, f"unreachable: {str(exc).splitlines()[0][:200]}")
    finally:
        await engine.dispose()

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
        from slack_sdk.errors import SlackApiError

        from inbox.slack.api import NETWORK_ERRORS, check as check_slack, describe

        mode = "socket" if settings.slack.app_token else "http"
        try:
            async with asyncio.timeout(TIMEOUT):
                row("slack", mode, True, await check_slack(settings.slack))
        except TimeoutError:
            row("slack", mode, False, f"no answer within {TIMEOUT:.0f} s")
        except (SlackApiError, *NETWORK_ERRORS) as exc:
            row("slack", mode, False, describe(exc))
    out.print(table)
    return problems
