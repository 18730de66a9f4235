"""Which benchmarks exist, `inbox bench` running them in turn, and the entry point the tests/bench scripts share."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from rich.console import Console

from inbox.bench.core import Figure, Report, sqlite_temp_url

log = logging.getLogger(__name__)

# name -> (module, what it measures); each module has `async def run(url, *, quick, console) -> Report`.
BENCHMARKS: dict[str, tuple[str, str]] = {
    "ingest": ("inbox.bench.ingest", "ingest throughput, pipeline vs raw insert"),
    "workers": ("inbox.bench.workers", "ingest throughput with 1, 2 and 4 workers on PostgreSQL"),
    "sweep": ("inbox.bench.sweep", "SLA sweep over 1,000,000 items, 10,000 open"),
    "connectors": ("inbox.bench.fleet", "1,000 connectors in one process: event-loop lag and memory"),
    "detection": ("inbox.bench.detection", "from a post at the vendor to the Slack post"),
    "slack": ("inbox.bench.slack_ack", "Slack acknowledgement under 200 concurrent clicks"),
    "meta": ("inbox.bench.meta_push", "200 concurrent signed Meta webhook deliveries, stored before their 200"),
    "report": ("inbox.bench.report", "team leads' report over 1,000,000 conversations beside a COUNT(*)"),
    "page": ("inbox.bench.reports_page", "the reports page over a year of conversations"),
    "triage": ("inbox.bench.triage", "triage per message under 500 characters, model and rules vs keyword rules"),
}


class Benchmark(Protocol):
    """What a benchmark module's `run` looks like."""

    def __call__(self, url: str, *, quick: bool, console: Console, **options: Any) -> Awaitable[Report]: ...


def benchmark(name: str) -> Benchmark:
    """The `run` function of a benchmark, imported on demand."""
    run: Benchmark = importlib.import_module(BENCHMARKS[name][0]).run
    return run


async def run_benchmarks(url: str, names: Sequence[str], *, quick: bool, console: Console) -> Report:
    """Run each named benchmark on the store at `url`; a failing one is reported and the others still run."""
    report = Report()
    for name in names:
        try:
            report.extend(await benchmark(name)(url, quick=quick, console=console))
        except Exception as exc:
            log.debug("benchmark %s failed", name, exc_info=True)
            report.add(Figure(name, "failed", f"{type(exc).__name__}: {exc}"[:200]))
    return report


def script(
    run: Benchmark,
    doc: str,
    options: Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], dict[str, Any]]] | None = None,
    argv: Sequence[str] | None = None,
    *,
    both_stores: bool = False,
) -> None:
    """A tests/bench script: SQLite in a temporary folder, or --postgresql URL (a scratch schema there)."""
    parser = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    what = "also measure on" if both_stores else "measure on"
    parser.add_argument("--postgresql", metavar="URL", help=f"{what} this PostgreSQL database, in a scratch schema")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a first look")
    extra = options(parser) if options else (lambda args: {})
    args = parser.parse_args(argv)
    urls = [sqlite_temp_url()] if both_stores or not args.postgresql else []
    urls += [args.postgresql] if args.postgresql else []
    console = Console()
    logging.basicConfig(level=logging.WARNING)

    async def main() -> Report:
        report = Report()
        for url in urls:
            report.extend(await run(url, quick=args.quick, console=console, **extra(args)))
        return report

    asyncio.run(main()).print(console, doc.strip().splitlines()[0])
