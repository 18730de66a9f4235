"""The `inbox` command: run, demo, check, queue, backfill, report, staffing, triage, export, forget, retention, bench."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from inbox import connectors as registry
from inbox.logs import setup_logging
from inbox.settings import EVERYTHING, ConfigError, Settings, Uses, find_config_path, load_config

T = TypeVar("T")

app = typer.Typer(
    help="cx-inbox: one customer-service queue for social media and review sites, run from Slack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=False)
err = Console(stderr=True, highlight=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Config file (default: $INBOX_CONFIG, else ./inbox.toml, else built-in defaults)."
    ),
]


# What each command reads of the config: only those parts' ${VAR}s must be set (`run` uses it all).
STORE_USES = Uses(
    frozenset({"database", "sla", "triage"}), connectors=False
)  # queue: the store and what the queue shows
TRIAGE_USES = Uses(frozenset({"triage"}), connectors=False)
CHECK_USES = Uses(frozenset({"database", "sla", "slack", "triage"}))  # not the server nor the workers
BENCH_USES = Uses(frozenset({"database"}), connectors=False)
# forget, retention: the store, and Slack to edit the messages an erasure touches; export: the store alone.
PRIVACY_USES = Uses(frozenset({"database", "sla", "triage", "slack", "retention"}), connectors=False)
EXPORT_USES = Uses(frozenset({"database", "sla", "triage"}), connectors=False)

CustomerOption = Annotated[
    list[str],
    typer.Option(
        "--customer",
        help="CHANNEL:HANDLE as the store knows them, e.g. x:dana or whatsapp:33612345678; repeat for several.",
    ),
]


def _settings(config: Path | None, uses: Uses = EVERYTHING) -> Settings:
    """The validated config, its triage rules and its templates; exit 2 with every problem otherwise."""
    from inbox.templates import ReplyTemplateError, ReplyTemplates
    from inbox.triage import RulesError, load_rules

    try:
        settings = load_config(find_config_path(config), types=registry, uses=uses)
        load_rules(settings.triage.rules)
        ReplyTemplates(settings.triage.templates).validate()
        if settings.csat.templates is not None:
            ReplyTemplates(settings.csat.templates).validate(last="csat")
    except (ConfigError, RulesError, ReplyTemplateError) as exc:
        err.print(Text(str(exc), style="red"), soft_wrap=True)  # one problem per line, however narrow the terminal
        raise typer.Exit(2) from None
    return settings


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@app.command()
def run(config: ConfigOption = None, verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Run the service: poll connectors, sweep SLAs, serve Slack, webhooks, /healthz and /metrics."""
    from inbox.checks import probe_store, startup_problem
    from inbox.service import serve

    settings = _settings(config)
    setup_logging(logging.DEBUG if verbose else logging.INFO, settings=settings)
    # A store that cannot be used is one clear line and exit 1, not a traceback from deep inside the start-up.
    store = _run(probe_store(settings.database.url))
    if not store.ok:
        _fail(f"inbox run cannot start: the store: {store.detail}")
    ready = asyncio.Event()
    try:
        _run(serve(settings, ready=ready))
    except Exception as exc:
        problem = None if ready.is_set() else startup_problem(exc, settings)
        if problem is None:
            raise
        _fail(f"inbox run cannot start: {problem}")


def _fail(line: str, code: int = 1) -> NoReturn:
    """Print one line (never wrapped, secrets redacted) to stderr and exit."""
    from inbox.logs import redact

    err.print(Text(redact(line), style="red"), soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def demo(
    keep: Annotated[
        Path | None, typer.Option(help="Keep the demo's SQLite file and sample files in this folder.")
    ] = None,
) -> None:
    """Run sample multilingual traffic through the real pipeline, offline; show the agent's and the lead's view."""
    from inbox.cli.demo import run_demo

    setup_logging(logging.WARNING)
    _run(run_demo(out, keep))


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate the config and try the store's and each connector's credentials; non-zero exit on any problem."""
    from inbox.checks import run_checks

    settings = _settings(config, CHECK_USES)
    setup_logging(logging.ERROR, settings=settings)
    problems = _run(run_checks(settings, out))
    raise typer.Exit(1 if problems else 0)


@app.command()
def queue(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="Show at most this many conversations.")] = 50,
) -> None:
    """Open conversations, most urgent first, with SLA clocks and suggested replies."""
    from inbox.cli.render import print_queue
    from inbox.service import Inbox

    settings = _settings(config, STORE_USES)
    setup_logging(logging.WARNING, settings=settings)

    async def show() -> None:
        from inbox.store.models import utcnow
        from inbox.views import open_queue

        inbox = await Inbox.open(settings, notifiers=[])
        try:
            print_queue(out, await open_queue(inbox.engine, inbox.policies, utcnow(), limit))
        finally:
            await inbox.close()

    _run(show())


@app.command()
def backfill(
    connector: Annotated[str, typer.Argument(help="The connector's name in the config.")],
    since: Annotated[str, typer.Option("--since", help="How far back: a number and a unit, e.g. 30m, 12h, 2d, 1w.")],
    config: ConfigOption = None,
) -> None:
    """Fetch a connector's history from --since ago, stored once, without alerting leads about the past."""
    from inbox.cli.render import BackfillDisplay, print_backfill
    from inbox.pipeline.backfill import BackfillError, connector_settings, parse_duration
    from inbox.service import run_backfill

    try:
        duration = parse_duration(since)
    except BackfillError as exc:
        err.print(Text(str(exc), style="red"))
        raise typer.Exit(2) from None
    settings = _settings(config, Uses(STORE_USES.sections | {"workers"}, connectors=connector))
    try:
        connector_settings(settings, connector, registry)
    except BackfillError as exc:
        err.print(Text(str(exc), style="red"))
        raise typer.Exit(2) from None
    setup_logging(logging.WARNING)
    display = BackfillDisplay(out)
    try:
        with display:
            result = _run(run_backfill(settings, connector, duration, report=display.update))
    except BackfillError as exc:
        if display.last is not None:
            print_backfill(out, display.last, finished=False)
        err.print(Text(str(exc), style="red"))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        if display.last is not None:
            print_backfill(out, display.last, finished=False)
        err.print(
            "Interrupted: what is stored stays stored; the same backfill again goes on without storing anything twice."
        )
        raise typer.Exit(130) from None
    print_backfill(out, result)


@app.command()
def staffing(
    config: ConfigOption = None,
    since: Annotated[str, typer.Option("--since", help="The window: a number and a unit, e.g. 4w, 28d.")] = "4w",
    target: Annotated[float, typer.Option(min=0.01, max=0.99, help="Share of conversations to answer in time.")] = 0.8,
    within: Annotated[str, typer.Option("--within", help="The answer time, e.g. 30m, 1h.")] = "30m",
) -> None:
    """Agents needed per hour of the week (Erlang C on measured arrivals and handling), beside those who replied."""
    from zoneinfo import ZoneInfo

    from inbox.cli.render import print_staffing
    from inbox.pipeline.backfill import BackfillError, parse_duration
    from inbox.staffing import staffing_report
    from inbox.store.db import create_engine
    from inbox.store.models import utcnow

    durations = {}
    for option, value in (("--since", since), ("--within", within)):
        try:
            durations[option] = parse_duration(value)
        except BackfillError:
            err.print(Text(f"{option} {value!r} is not a duration: write a number and a unit, e.g. 30m, 12h, 2d, 4w"))
            raise typer.Exit(2) from None
    settings = _settings(config, STORE_USES)
    setup_logging(logging.WARNING, settings=settings)
    hours = settings.sla.business_hours
    zone = ZoneInfo(hours.timezone) if hours else ZoneInfo("UTC")

    async def show() -> None:
        from inbox.store.db import migrate

        engine = create_engine(settings.database.url)
        try:
            await migrate(engine)
            until = utcnow()
            report = await staffing_report(
                engine, until - durations["--since"], until, target=target, within=durations["--within"], zone=zone
            )
        finally:
            await engine.dispose()
        print_staffing(out, report)

    _run(show())


REPORT_USES = Uses(frozenset({"database", "sla", "reports"}), connectors=False)
FORMATS = ("table", "csv", "json")


@app.command()
def report(
    config: ConfigOption = None,
    since: Annotated[
        str | None, typer.Option("--since", help="The window back from now, e.g. 24h, 7d, 4w (default 7d).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="Start date (YYYY-MM-DD) in the report time zone, included.")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="End date, excluded (default: now).")] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Group by channel, connector, agent, intent, language, priority, day or hour."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv (one row per conversation) or json.")] = "table",
    out_file: Annotated[Path | None, typer.Option("--out", help="Write to this file instead of the terminal.")] = None,
) -> None:
    """SLA attainment, first-response percentiles, next responses and CSAT of the conversations started in a window."""
    from inbox.reports import ReportError, check_by, parse_window, report_zone
    from inbox.store.models import utcnow

    settings = _settings(config, REPORT_USES)
    now = utcnow().replace(microsecond=0)
    try:
        if fmt not in FORMATS:
            raise ReportError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
        grouping = check_by(by)
        window = parse_window(now, report_zone(settings), since=since, start=start, end=end)
    except ReportError as exc:
        _fail(str(exc), 2)
    setup_logging(logging.WARNING, settings=settings)
    try:
        if fmt == "csv":
            _run(_report_csv(settings, window, now, out_file))
            return
        text = _run(_report_text(settings, window, grouping, fmt, now, out_file is not None))
    except Exception as exc:
        from inbox.store.db import describe_outage, is_outage

        if not is_outage(exc):
            raise
        _fail(f"inbox report: the store cannot be read: {describe_outage(exc)}")
    if text is None:
        return
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        out_file.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"--out {str(out_file)!r}: cannot write it: {exc.strerror or exc}", 2)


async def _report_csv(settings: Settings, window: Any, now: Any, out_file: Path | None) -> None:
    """The CSV written as it streams from the store; to `out_file` through a temporary file beside it, renamed once
    whole, so that a failure midway leaves no cut file (nor an earlier one lost)."""
    from inbox.reports import csv_pieces
    from inbox.store.db import create_engine, is_outage, migrate

    engine = create_engine(settings.database.url)
    try:
        await migrate(engine)
        if out_file is None:
            async for piece in csv_pieces(engine, settings, window, now):
                sys.stdout.write(piece)
            return
        partial = out_file.with_name(f".{out_file.name}.partial")
        try:
            with partial.open("w", encoding="utf-8", newline="") as sink:
                async for piece in csv_pieces(engine, settings, window, now):
                    sink.write(piece)
            partial.replace(out_file)
        except OSError as exc:
            if is_outage(exc):  # the store's connection, not the file
                raise
            _fail(f"--out {str(out_file)!r}: cannot write it: {exc.strerror or exc}", 2)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        await engine.dispose()


async def _report_text(
    settings: Settings, window: Any, by: str | None, fmt: str, now: Any, to_file: bool
) -> str | None:
    """The report in `fmt` (the table is printed here unless it goes to a file: then its plain text)."""
    from inbox.reports import build_report, report_json
    from inbox.reports.table import print_report
    from inbox.store.db import create_engine, migrate

    engine = create_engine(settings.database.url)
    try:
        await migrate(engine)
        report = await build_report(engine, settings, window, by, now)
    finally:
        await engine.dispose()
    if fmt == "json":
        return json.dumps(report_json(report), ensure_ascii=False) + "\n"
    if not to_file:
        print_report(out, report)
        return None
    buffer = io.StringIO()
    print_report(Console(file=buffer, width=100, highlight=False, color_system=None), report)
    return buffer.getvalue()


@app.command()
def triage(
    text: Annotated[str, typer.Argument(help="The text to triage, or - to read one text per line from stdin.")],
    config: ConfigOption = None,
    channel: Annotated[
        str | None, typer.Option(help="Channel whose reply length limit applies (x, mastodon, ...).")
    ] = None,
    rating: Annotated[int | None, typer.Option(min=1, max=5, help="Star rating, for reviews.")] = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Add why: the model's probabilities and top features, the rules that fired."),
    ] = False,
) -> None:
    """Print language, sentiment, intent, priority and the suggested reply as JSON (one object per line with -)."""
    from inbox.connector import reply_limit
    from inbox.templates import ReplyTemplates, reply_variables
    from inbox.triage import Triager, explanation_json, load_rules

    settings = _settings(config, TRIAGE_USES)
    if channel is not None:
        channels = _channels(settings)
        if channel not in channels:
            _fail(f"unknown channel {channel!r}; channels: {', '.join(channels)}", 2)
    triager = Triager(load_rules(settings.triage.rules))
    templates = ReplyTemplates(settings.triage.templates)

    def one(line: str) -> dict[str, Any]:
        kind = "review" if rating else "mention"
        why = triager.explain(line, rating=rating, kind=kind) if explain else None
        result = why.result if why is not None else triager.classify(line, rating=rating, kind=kind)
        variables = reply_variables(
            customer_name=None,
            channel=channel,
            kind="review" if rating else "mention",
            text=line,
            agent_name=settings.triage.agent_name,
            brand=settings.triage.brand,
        )
        suggestion = templates.render(result.intent, result.language, variables, reply_limit(channel))
        out: dict[str, Any] = {
            "language": result.language,
            "sentiment": result.sentiment,
            "intent": str(result.intent),
            "priority": str(result.priority),
            "suggestion": suggestion.text,
        }
        if why is not None:
            out["explain"] = explanation_json(why)
        return out

    lines = (line.rstrip("\n") for line in sys.stdin) if text == "-" else [text]
    for line in lines:
        if text == "-" and not line.strip():
            continue
        sys.stdout.write(json.dumps(one(line), ensure_ascii=False) + "\n")
        sys.stdout.flush()


def _customers(values: list[str]) -> list[Any]:
    from inbox.pipeline.privacy import BadCustomer, parse_customer

    try:
        return [parse_customer(v) for v in values]
    except BadCustomer as exc:
        _fail(str(exc), 2)


@app.command()
def export(
    customer: CustomerOption,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON here (readable by you only), not to stdout.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Everything held about a customer as one JSON document: profile, items, triage, replies, CSAT, assignments."""
    from inbox.cli import privacy as cli_privacy
    from inbox.pipeline.privacy import NoSuchCustomer

    refs = _customers(customer)
    settings = _settings(config, EXPORT_USES)
    setup_logging(logging.WARNING, settings=settings)
    try:
        document = _run(cli_privacy.export(settings, refs))
    except NoSuchCustomer as exc:
        _fail(str(exc))
    cli_privacy.write_export(document, out_file, out)


@app.command()
def forget(
    customer: CustomerOption,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before erasing.")] = False,
    config: ConfigOption = None,
) -> None:
    """Erase what identifies a customer everywhere (the numbers reports use stay); their Slack messages are edited."""
    from inbox.cli import privacy as cli_privacy
    from inbox.pipeline.privacy import NoSuchCustomer

    refs = _customers(customer)
    settings = _settings(config, PRIVACY_USES)
    setup_logging(logging.WARNING, settings=settings)

    def confirm(question: str) -> bool:
        return yes or typer.confirm(question, default=False, err=True)

    try:
        erased = _run(cli_privacy.forget(settings, refs, out, confirm))
    except NoSuchCustomer as exc:
        _fail(str(exc))
    raise typer.Exit(0 if erased else 1)


@app.command()
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be erased, erase nothing.")] = False,
    config: ConfigOption = None,
) -> None:
    """Erase the texts and names of conversations resolved more than retention.text_days ago (inbox run: daily)."""
    from inbox.cli import privacy as cli_privacy

    settings = _settings(config, PRIVACY_USES)
    setup_logging(logging.WARNING, settings=settings)
    _run(cli_privacy.retention(settings, out, dry_run=dry_run))


def _channels(settings: Settings) -> list[str]:
    """Channels an item can come from: every connector type, and the `channel` of each configured connector."""
    configured = [str(getattr(c, "channel", c.type)) for c in settings.connectors]
    return sorted(set(registry.known_types()) | set(configured))


@app.command()
def bench(
    config: ConfigOption = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only these benchmarks (repeat, or separate with commas).")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="Smaller sizes: a first look in about a minute.")] = False,
) -> None:
    """Measure the inbox on your store ([database] url; scratch schema or file, never your data) and print the table."""
    from inbox.bench.runner import BENCHMARKS, run_benchmarks

    settings = _settings(config, BENCH_USES)
    names = [n.strip() for value in only or [] for n in value.split(",") if n.strip()] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        err.print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        raise typer.Exit(2)
    setup_logging(logging.WARNING)
    report = _run(run_benchmarks(settings.database.url, names, quick=quick, console=out))
    report.print(out, "inbox bench" + (" --quick" if quick else "") + f": {', '.join(names)}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
