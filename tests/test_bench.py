"""`inbox bench` as a user runs it: the quick sweep benchmark on the configured store, in scratch space only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from inbox.store.db import create_engine
from tests.conftest import PG_URL, STORES
from tests.test_cli import inbox


async def _bench_schemas() -> list[str]:
    engine = create_engine(PG_URL or "")
    async with engine.connect() as conn:
        rows = await conn.execute(sa.text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'inbox_bench_%'"))
        names = [r[0] for r in rows]
    await engine.dispose()
    return names


@pytest.mark.parametrize("kind", STORES)
def test_bench_quick_sweep_prints_its_table_and_leaves_the_store_as_it_was(tmp_path: Path, kind: str) -> None:
    user_db = tmp_path / "data" / "inbox.db"
    user_db.parent.mkdir()
    url = f"sqlite:///{user_db}" if kind == "sqlite" else PG_URL
    (tmp_path / "inbox.toml").write_text(f'[database]\nurl = "{url}"\n')
    before = asyncio.run(_bench_schemas()) if kind == "postgresql" else []

    run = inbox("bench", "--quick", "--only", "sweep", cwd=tmp_path, timeout=120)

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any("benchmark" in line and "baseline (same run)" in line and "goal" in line for line in lines), run.stdout
    assert any(line.startswith("│ sweep") and " p95, " in line and "index unusable:" in line for line in lines), (
        run.stdout
    )
    # The plan check is a fact, not a timing: the sweep must reach its threads through the partial index.
    plan = next(line for line in lines if line.startswith("│ sweep") and "│ plan" in line)
    assert "ix_thread_sla_due" in plan and plan.rstrip(" │").endswith("yes"), run.stdout
    # Scratch space only: the user's SQLite file is never created, no scratch folder or schema is left behind.
    assert list(user_db.parent.iterdir()) == []
    if kind == "postgresql":
        assert asyncio.run(_bench_schemas()) == before


@pytest.mark.parametrize("kind", STORES)
def test_bench_quick_ingest_runs_the_pipeline_and_the_raw_insert_of_its_rows(tmp_path: Path, kind: str) -> None:
    url = f"sqlite:///{tmp_path / 'inbox.db'}" if kind == "sqlite" else PG_URL
    (tmp_path / "inbox.toml").write_text(f'[database]\nurl = "{url}"\n')

    run = inbox("bench", "--quick", "--only", "ingest", cwd=tmp_path, timeout=300)

    assert run.returncode == 0, run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith("│ ingest")]
    # The raw insert copies every row the pipeline wrote (computed columns are the store's to fill): both figures there.
    assert any("pipeline" in row and "raw insert of the same rows:" in row for row in rows), run.stdout
    assert not any("failed" in row for row in rows), run.stdout


def test_bench_refuses_an_unknown_name(tmp_path: Path) -> None:
    run = inbox("bench", "--only", "sweep,nonsense", cwd=tmp_path)
    assert run.returncode == 2
    assert "unknown benchmark(s): nonsense" in run.stderr
