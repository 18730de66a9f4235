"""`inbox demo`: sample multilingual traffic through the real pipeline, offline, on an embedded SQLite."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from inbox import connectors as registry
from inbox.cli.render import clock_text, print_queue
from inbox.connector import display_name
from inbox.pipeline.outbox import Notice
from inbox.reports import Window, build_report, conversation_rows, report_json
from inbox.service import Inbox
from inbox.settings import Settings, parse_config
from inbox.sla import duration_text
from inbox.store.models import EventKind, utcnow
from inbox.views import open_queue, thread_view


@dataclass(frozen=True, slots=True)
class Sample:
    """One customer message of the demo, dated relative to now."""

    channel: str
    minutes_ago: float
    handle: str
    name: str
    text: str
    rating: int | None = None
    kind: str = "mention"
    thread: str | None = None


SAMPLES = [
    Sample(
        "x",
        31,
        "claire_dpt",
        "Claire Dupont",
        "@acme ma commande #48213 n'est toujours pas arrivée après 10 jours. Inadmissible 😡",
    ),
    Sample("x", 3, "sean_obrien", "Seán O'Brien", "@acme do you ship to Ireland? can't find it anywhere on the site"),
    Sample(
        "x",
        22,
        "andrei.pop",
        "Andrei Popescu",
        "@acme mi-ați luat banii de două ori pentru comanda 778812, vreau banii înapoi!",
    ),
    Sample("x", 1, "cashflow_king", "💸 Easy Money 💸", "🔥 Make $5000/week from home!!! DM me now 👉 bit.ly/3xEasy"),
    Sample("x", 8, "mike_t", "Mike T", "shoutout to @acme support, sorted my issue in 5 min 🙌 thank you"),
    Sample(
        "x",
        2,
        "<!channel>",
        "{{ 7*7 }}",
        "Bonjour {{ 7*7 }}, où est mon colis ? <@U024BE7LH> <https://evil.example|acme.com>",
    ),
    Sample(
        "mastodon",
        12,
        "lena@mastodon.social",
        "Lena",
        "@acme your app keeps crashing on login since the last update, can't use it at all",
    ),
    Sample("mastodon", 4, "julien@piaille.fr", "Julien", "@acme est-ce que la garantie couvre un écran cassé ?"),
    Sample(
        "google_reviews",
        26,
        "ioana.m",
        "Ioana M.",
        "Cel mai prost serviciu. Curierul a lăsat coletul în ploaie și produsul a ajuns distrus.",
        1,
        "review",
    ),
    Sample(
        "google_reviews",
        15,
        "sophie.b",
        "Sophie B.",
        "Très bon accueil en magasin, vendeuse super sympa, merci !",
        5,
        "review",
    ),
    Sample(
        "google_reviews",
        6,
        "dan_k",
        "Dan K.",
        "Waited 40 minutes at the counter and the staff were rude about it.",
        2,
        "review",
    ),
    Sample(
        "trustpilot",
        18,
        "mark_h",
        "Mark H.",
        "Charged twice for order 55120 and still no refund after two weeks.",
        1,
        "review",
    ),
    Sample("trustpilot", 10, "elena.v", "Elena V.", "Livrare rapidă, totul perfect. Mulțumesc!", 5, "review"),
    Sample(
        "facebook",
        14,
        "camille.martin",
        "Camille Martin",
        "Bonjour, j'ai commandé un manteau il y a 12 jours (commande 60211) et toujours rien. Vous pouvez vérifier ?",
        kind="comment",
    ),
    Sample(
        "whatsapp",
        14,
        "40722123456",
        "Mihai Ionescu",
        "Bună ziua, coletul 90317 apare livrat dar nu l-am primit. Mă puteți ajuta?",
        kind="dm",
    ),
    Sample("whatsapp", 5, "33612345678", "Camille", "Bonjour, vous livrez le samedi à Lyon ?", kind="dm"),
]
FOLLOW_UP = Sample(
    "x", 0, "sean_obrien", "Seán O'Brien", "@acme brilliant, and how long does it usually take?", thread="x-1"
)
# The WhatsApp customer's answer to the CSAT question.
CSAT_ANSWER = Sample("whatsapp", 0, "40722123456", "Mihai Ionescu", "5", kind="dm")
CHANNELS = ("x", "mastodon", "google_reviews", "trustpilot", "facebook", "whatsapp")


class Recorder:
    """A notifier that keeps what a team lead would have been told."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def notify(self, notice: Notice) -> None:
        """Remember the notice."""
        self.notices.append(notice)


def _write(folder: Path, samples: list[Sample], start: int) -> None:
    now = utcnow()
    for offset, sample in enumerate(samples):
        record: dict[str, Any] = {
            "id": f"{sample.channel}-{start + offset}",
            "text": sample.text,
            "posted_at": (now - timedelta(minutes=sample.minutes_ago)).isoformat(),
            "author": {"handle": sample.handle, "name": sample.name},
            "kind": sample.kind,
            "rating": sample.rating,
            "thread_id": sample.thread,
        }
        with (folder / f"{sample.channel}.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def demo_settings(folder: Path) -> Settings:
    """One jsonl connector per channel, standing in for X, Mastodon, Google, Trustpilot, a Facebook Page and WhatsApp."""
    raw = {
        "database": {"url": f"sqlite:///{folder / 'demo.db'}"},
        "triage": {"brand": "Acme", "agent_name": "Ana"},
        "sla": {"channels": {"google_reviews": {"first_response_minutes": 30, "warn_after_minutes": 20}}},
        # The question goes out as soon as a conversation is resolved, so the demo shows an answer.
        "csat": {"enabled": True, "ask_after_minutes": 0, "channels": ["jsonl"]},
        "connectors": [
            {"name": f"demo-{c}", "type": "jsonl", "channel": c, "path": str(folder / f"{c}.jsonl"), "poll_seconds": 5}
            for c in CHANNELS
        ],
    }
    return parse_config(raw, source="demo", env={}, types=registry)


async def run_demo(out: Console, keep: Path | None = None) -> None:
    """Ingest, triage, sweep, reply and follow up, printing what agents and leads see."""
    with tempfile.TemporaryDirectory(prefix="inbox-demo-") as tmp:
        folder = keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for channel in CHANNELS:
            (folder / f"{channel}.jsonl").unlink(missing_ok=True)
        (folder / "demo.db").unlink(missing_ok=True)
        await _demo(out, folder)


async def _demo(out: Console, folder: Path) -> None:
    out.rule("[bold]cx-inbox demo[/]: offline, sample traffic, the real pipeline")
    _write(folder, SAMPLES, 0)
    recorder = Recorder()
    inbox = await Inbox.open(demo_settings(folder), notifiers=[recorder])
    try:
        names = ", ".join(display_name(c) or c for c in CHANNELS)
        with out.status(f"Polling {len(CHANNELS)} sample connectors ({names})…"):
            polled = [await poller.poll_once() for poller in inbox.pollers.values()]
        out.print(
            f"Polled {len(polled)} connectors: {sum(p.stored for p in polled)} items stored, "
            "triaged and given a suggested reply. Each SLA clock started at the customer's post time.\n"
        )
        await inbox.sweep.run()
        await inbox.outbox.dispatch()

        out.rule("What an agent sees: the queue, most urgent first")
        views = await open_queue(inbox.engine, inbox.policies, utcnow())
        print_queue(out, views)

        out.rule("What a team lead sees: SLA warnings and breaches (each announced once)")
        _print_alerts(out, recorder.notices)
        await inbox.sweep.run()
        repeated = await inbox.outbox.dispatch()
        out.print(f"A second SLA sweep announced {repeated} more alert(s): nothing is repeated.\n")

        out.rule("An agent clicks Send on the most urgent conversation")
        top = views[0]
        outcome = await inbox.actions.reply(top.thread_id, top.suggestion, "ana")
        again = await inbox.actions.reply(top.thread_id, top.suggestion, "bob")
        replied = await thread_view(inbox.engine, inbox.policies, top.thread_id, utcnow())
        assert replied is not None
        where = display_name(top.channel)
        out.print(
            Text(f"Reply {outcome.status} on {where} to @{top.author_handle}:"), Text(top.suggestion, style="italic")
        )
        out.print(Text("SLA for this conversation: ").append(clock_text(replied)))
        out.print(f"A second click by another agent: {again.status} (nothing sent twice).")
        replies = (folder / f"{top.channel}.jsonl.replies.jsonl").read_text(encoding="utf-8").strip().splitlines()
        out.print(
            f"The demo's {where} connector wrote {len(replies)} reply to its replies file (a real one posts it).\n"
        )

        spam = next(v for v in views if v.intent == "spam")
        await inbox.actions.resolve(spam.thread_id, "ana")
        out.print(Text(f"Spam from @{spam.author_handle} resolved without a reply.\n"))

        out.rule("A customer follows up in the same conversation")
        sean = next(v for v in views if v.author_handle == "sean_obrien")
        await inbox.actions.reply(sean.thread_id, sean.suggestion, "ana")
        _write(folder, [FOLLOW_UP], len(SAMPLES))
        await inbox.pollers["demo-x"].poll_once()
        follow = await thread_view(inbox.engine, inbox.policies, sean.thread_id, utcnow())
        assert follow is not None
        out.print(
            Text(
                f"@{follow.author_handle}'s follow-up joined conversation {follow.thread_id} "
                f"({follow.messages} messages) and started a {follow.clock.kind.replace('_', ' ')} clock: "
            ).append(clock_text(follow))
        )
        out.rule("The customer rates the conversation (CSAT)")
        mihai = next(v for v in views if v.author_handle == "40722123456")
        await inbox.actions.reply(mihai.thread_id, mihai.suggestion, "ana")
        await inbox.actions.resolve(mihai.thread_id, "ana")
        await inbox.sweep.run()  # the question is due at once here ([csat] ask_after_minutes = 0)
        first = next(i for i, sample in enumerate(SAMPLES) if sample.handle == CSAT_ANSWER.handle)
        _write(folder, [replace(CSAT_ANSWER, thread=f"whatsapp-{first}")], len(SAMPLES) + 1)
        await inbox.pollers["demo-whatsapp"].poll_once()
        out.print(
            Text(f"@{mihai.author_handle} was asked how we did on WhatsApp, in their language, and answered ")
            .append(CSAT_ANSWER.text, style="bold")
            .append(": stored as the answer, not as a new conversation.\n")
        )

        remaining = await open_queue(inbox.engine, inbox.policies, utcnow())
        out.rule("What a team lead measures: the report of this traffic")
        await _print_report(out, inbox)
        out.print(
            f"\n{len(remaining)} conversations still open. Next: configure real connectors and Slack (see README)."
        )
    finally:
        await inbox.close()


async def _print_report(out: Console, inbox: Inbox) -> None:
    """The headline figures of the demo's own conversations, the breaches among them, and where leads see more."""
    now = utcnow()
    window = Window(now - timedelta(days=1), now + timedelta(seconds=1))
    report = await build_report(inbox.engine, inbox.settings, window, None, now)
    [row] = report_json(report)["rows"]
    minutes, csat = row["first_response_minutes"], row["csat"]
    attainment = "–" if row["attainment"] is None else f"{row['attainment']:.0%}"
    out.print(
        f"{row['conversations']} conversations: SLA attainment {attainment} (met {row['met']}, missed {row['missed']}, "
        f"{row['waiting_past_due']} of them still waiting past the deadline; {row['open_not_due']} open before it). "
        f"First response p50 {minutes['p50']:.0f} min, p90 {minutes['p90']:.0f} min."
    )
    for c in await conversation_rows(inbox.engine, inbox.settings, window, now):
        target = f"target {c.sla_target_minutes or 0:g} min"
        if c.sla_outcome == "missed" and c.first_response_minutes is not None:
            line = f"answered after {c.first_response_minutes:.0f} min ({target})"
        elif c.sla_outcome == "breached":
            line = f"still waiting since {c.started_at:%H:%M} UTC ({target})"
        else:
            continue
        out.print(Text(f"Breach: {c.channel} · @{c.customer} ", style="red").append(Text(line)))
    satisfied = "–" if csat["satisfied"] is None else f"{csat['satisfied']:.0%}"
    out.print(f"CSAT: {csat['answers']} answer(s) to {csat['questions']} question(s), {satisfied} satisfied.")
    out.print(
        "The same figures per channel, agent, day or hour: `inbox report --by channel` (CSV and JSON too). Leads see "
        "them on the page at /reports: type `/inbox report` in Slack for a signed link."
    )


def _print_alerts(out: Console, notices: list[Notice]) -> None:
    alerts = [n for n in notices if n.kind in (EventKind.SLA_WARNING, EventKind.SLA_BREACH) and n.thread]
    if not alerts:
        out.print("No SLA alerts.")
        return
    table = Table(show_lines=False)
    for column in ("alert", "#", "channel · author", "waited", "assignee", "customer said"):
        table.add_column(column)
    for notice in alerts:
        t = notice.thread
        assert t is not None
        style = "bold red" if notice.kind == EventKind.SLA_BREACH else "yellow"
        table.add_row(
            Text("BREACH" if notice.kind == EventKind.SLA_BREACH else "warning", style=style),
            str(t.thread_id),
            Text(f"{t.channel} · @{t.author_handle}"),
            duration_text(t.clock.minutes_waited),
            Text(t.assignee or "nobody"),
            Text(t.text[:70] + ("…" if len(t.text) > 70 else "")),
        )
    out.print(table)
