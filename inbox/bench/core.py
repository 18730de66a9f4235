"""What every benchmark shares: scratch stores on the user's database, figures beside their baselines, the table."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.db import create_engine, migrate

CHUNK = 100_000  # generated rows written per statement
# How a child process finds the scratch store: the environment, so a password never shows in `ps`.
URL_ENV = "INBOX_BENCH_DATABASE_URL"
SCHEMA_ENV = "INBOX_BENCH_SCHEMA"


@dataclass(frozen=True, slots=True)
class Goal:
    """A target from the issue, and whether the figure met it."""

    text: str
    met: bool


def under(value: float, limit: float, unit: str) -> Goal:
    """The goal `value < limit`."""
    return Goal(f"< {_number(limit)} {unit}", value < limit)


def at_least(value: float, limit: float, unit: str) -> Goal:
    """The goal `value >= limit`."""
    return Goal(f">= {_number(limit)} {unit}", value >= limit)


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number (or fact, such as a query plan) beside the baseline measured in the same run."""

    benchmark: str
    name: str
    value: float | str
    unit: str = ""
    baseline: float | str | None = None
    baseline_name: str = ""
    goal: Goal | None = None

    @property
    def ratio(self) -> float | None:
        """value / baseline, when both are numbers."""
        if isinstance(self.value, str) or not isinstance(self.baseline, int | float) or not self.baseline:
            return None
        return self.value / self.baseline

    def row(self) -> list[str]:
        """The table cells."""
        baseline = ""
        if self.baseline is not None:
            shown = self.baseline if isinstance(self.baseline, str) else show(self.baseline, self.unit)
            baseline = f"{self.baseline_name}: {shown}" if self.baseline_name else shown
        value = self.value if isinstance(self.value, str) else show(self.value, self.unit)
        ratio = "" if self.ratio is None else f"{_number(self.ratio)}x"
        met = "" if self.goal is None else ("[green]yes[/]" if self.goal.met else "[red]no[/]")
        return [self.benchmark, self.name, value, baseline, ratio, self.goal.text if self.goal else "", met]


@dataclass(slots=True)
class Report:
    """Figures in the order measured, and notes printed under the table."""

    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *figures: Figure) -> None:
        """Append figures."""
        self.figures.extend(figures)

    def note(self, text: str) -> None:
        """A line under the table: what was measured, where the time goes."""
        self.notes.append(text)

    def extend(self, other: Report) -> None:
        """Take another report's figures and notes."""
        self.figures += other.figures
        self.notes += [n for n in other.notes if n not in self.notes]

    def print(self, console: Console, title: str) -> None:
        """The rich table, then the notes."""
        table = Table(title=title, title_justify="left")
        for column in ("benchmark", "figure", "value", "baseline (same run)", "ratio", "goal", "met"):
            table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
        for figure in self.figures:
            table.add_row(*figure.row())
        console.print(table)
        for line in self.notes:
            console.print(f"  {line}", markup=False, highlight=False)


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of `values`."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def show(value: float, unit: str) -> str:
    """A figure for people: three significant digits, thousands separated."""
    return f"{_number(value)} {unit}".strip()


def _number(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


@dataclass(slots=True)
class Scratch:
    """An empty, migrated store of its own on the user's database server or disk; dropped when done."""

    url: str
    schema: str | None
    engines: list[AsyncEngine] = field(default_factory=list)

    @property
    def dialect(self) -> str:
        """'sqlite' or 'postgresql'."""
        return make_url(self.url).get_backend_name()

    def engine(self, **kwargs: Any) -> AsyncEngine:
        """A new engine on the scratch store (closed with it)."""
        engine = create_engine(self.url, schema=self.schema, **kwargs)
        self.engines.append(engine)
        return engine

    def child_env(self) -> dict[str, str]:
        """The environment a child process needs to open this store (see `open_child_store`)."""
        env = {**os.environ, URL_ENV: self.url, "PYTHONUNBUFFERED": "1"}
        env.pop(SCHEMA_ENV, None)
        if self.schema:
            env[SCHEMA_ENV] = self.schema
        return env


def open_child_store(**kwargs: Any) -> AsyncEngine:
    """In a benchmark's child process: an engine on the scratch store its parent made."""
    return create_engine(os.environ[URL_ENV], schema=os.environ.get(SCHEMA_ENV), **kwargs)


@asynccontextmanager
async def scratch_store(url: str, label: str) -> AsyncIterator[Scratch]:
    """A scratch store beside the user's: a schema on their PostgreSQL, a file in a folder next to their SQLite file."""
    async with _scratch_space(url, label) as scratch:
        try:
            await migrate(scratch.engine())
            yield scratch
        finally:
            for engine in scratch.engines:
                await engine.dispose()


@asynccontextmanager
async def _scratch_space(url: str, label: str) -> AsyncIterator[Scratch]:
    """Where a scratch store lives, made and removed: a temporary folder (SQLite) or schema (PostgreSQL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix=f".inbox-bench-{label}-", dir=_folder_beside(parsed.database)))
        try:
            yield Scratch(f"sqlite:///{folder / 'bench.db'}", None)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    schema = f"inbox_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url)
    try:
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield Scratch(url, schema)
        finally:
            async with admin.begin() as conn:
                await conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    finally:
        await admin.dispose()


def _folder_beside(database: str | None) -> str | None:
    """The folder of the user's SQLite file, so the scratch file is on the same disk (else the system's temp)."""
    if not database or database == ":memory:":
        return None
    folder = Path(database).expanduser().resolve().parent
    return str(folder) if folder.is_dir() and os.access(folder, os.W_OK) else None


def insert_series(dialect: str, table: str, columns: dict[str, str], low: int, high: int) -> str:
    """INSERT … SELECT over the integers low..high (as `i`), generated by the database."""
    names, values = ", ".join(columns), ", ".join(columns.values())
    if dialect == "postgresql":
        return f"INSERT INTO {table} ({names}) SELECT {values} FROM generate_series({low}, {high}) AS n(i)"
    series = f"WITH RECURSIVE n(i) AS (SELECT {low} UNION ALL SELECT i + 1 FROM n WHERE i < {high}) "
    return f"{series}INSERT INTO {table} ({names}) SELECT {values} FROM n"


Series = list[tuple[str, int, dict[str, str]]]  # (table, rows, column -> SQL value of the row number `i`)


async def write_series(
    engine: AsyncEngine, tables: Series, params: dict[str, Any], console: Console, what: str
) -> None:
    """Write generated rows table by table, in chunks of CHUNK rows, with a progress bar saying `what`."""
    dialect = engine.dialect.name
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(what, total=sum(rows for _, rows, _ in tables))
        for table, rows, columns in tables:
            for low in range(1, rows + 1, CHUNK):
                high = min(rows, low + CHUNK - 1)
                async with engine.begin() as conn:
                    await conn.execute(sa.text(insert_series(dialect, table, columns, low, high)), params)
                progress.advance(task, high - low + 1)


def sqlite_temp_url() -> str:
    """The store a script measures when no --postgresql is given: SQLite in the system's temp folder."""
    return f"sqlite:///{Path(tempfile.gettempdir()) / 'inbox-bench.db'}"


def write_config(path: Path, tables: dict[str, Any]) -> Path:
    """A config file from tables of plain values (a list of tables becomes [[name]] blocks)."""
    lines: list[str] = []
    for name, table in tables.items():
        for entry in table if isinstance(table, list) else [table]:
            lines.append(f"[[{name}]]" if isinstance(table, list) else f"[{name}]")
            lines += [f"{key} = {_toml(value)}" for key, value in entry.items()]
            lines.append("")
    path.write_text("\n".join(lines))
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string
