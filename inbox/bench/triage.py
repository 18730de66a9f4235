"""Triage time per message under 500 characters: the model and the rules, beside the keyword rules alone.

Both triagers (shipped rules, lingua's models loaded first) classify the same messages, alternating item by
item so both see the same load; each item's wall time and the thread's CPU time are taken. The messages are
the corpus's when run from a checkout (the built-in samples otherwise), each given a seeded typo or number so
that no word cache has seen it: a pessimistic mix of new words.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

from inbox.bench.core import Figure, Report, percentile, under
from inbox.triage import Triager, load_rules
from inbox.triage.corpus import CorpusError, load_corpus

ITEMS, QUICK_ITEMS = 5000, 1000
GOAL_MS = 1.0
MAX_CHARS = 500
SAMPLES = (
    "where is my parcel?? ordered 2 weeks ago and tracking hasnt moved since monday",
    "Super, 3 semaines pour un colis, bravo 👏",
    "mi-ati luat banii de doua ori pentru aceeasi comanda!! vreau banii inapoi",
    "Hi, could I switch my delivery slot to Thursday afternoon? order 55410",
    "Bonjour, pourriez-vous m'envoyer une facture pour la commande 55120 ? Merci d'avance",
    "I had the same problem, agent Mark sorted it, text him on WhatsApp +44 7700 900123",
    "★★☆☆☆ comfy, but the sole peeled after 6 weeks",
    "Grazie mille eh, 40 minuti in attesa al telefono",
    "Hallo, ich möchte mich als Verkäufer bewerben, wohin schicke ich meinen Lebenslauf?",
    "la app se cierra cada vez que abro el carrito",
    "obrigado pela ajuda, atendimento nota 10 ❤️",
    "waar blijft mijn pakket?? al 2 weken onderweg",
)


def _texts() -> list[str]:
    try:
        return [ex.text for ex in load_corpus() if len(ex.text) < MAX_CHARS]
    except (CorpusError, OSError):
        return list(SAMPLES)


def _variant(text: str, rng: random.Random) -> str:
    """The text with one seeded change: a letter dropped or doubled, or a number added."""
    words = text.split(" ")
    i = rng.randrange(len(words))
    word = words[i]
    if len(word) > 3 and rng.random() < 0.6:
        j = rng.randrange(1, len(word) - 1)
        words[i] = word[:j] + word[j + 1 :] if rng.random() < 0.5 else word[:j] + word[j] + word[j:]
    else:
        words.insert(i, str(rng.randrange(10, 99_999)))
    return " ".join(words)[:MAX_CHARS]


def _timed(classify: Callable[[str], object], text: str, wall: list[float], cpu: list[float]) -> None:
    started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
    classify(text)
    cpu.append((time.thread_time_ns() - started_cpu) / 1e6)
    wall.append((time.perf_counter_ns() - started) / 1e6)


async def run(url: str, *, quick: bool, console: Console, items: int | None = None, **_: Any) -> Report:
    """Time triage per message (no store needed: `url` is unused)."""
    count = items or (QUICK_ITEMS if quick else ITEMS)
    rng = random.Random(14)
    texts = _texts()
    messages = [_variant(texts[i % len(texts)], rng) for i in range(count)]
    rules = load_rules()
    model, baseline = Triager(rules), Triager(rules, rules_only=True)
    with console.status("triage: loading the language models"):
        model.warm_up()
        baseline.warm_up()
        for text in SAMPLES:  # first calls build lazy state in both
            model.classify(text)
            baseline.classify(text)
    times: dict[str, tuple[list[float], list[float]]] = {"model": ([], []), "rules": ([], [])}
    with console.status(f"triage: {count:,} messages"):
        for text in messages:
            _timed(model.classify, text, *times["model"])
            _timed(baseline.classify, text, *times["rules"])
    load = os.getloadavg()[0]
    report = Report()
    for label, p in (("p50", 50), ("p99", 99)):
        for clock, column in (("wall", 0), ("CPU", 1)):
            value = percentile(times["model"][column], p)
            goal = under(value, GOAL_MS, "ms") if p == 99 else None
            report.add(
                Figure(
                    "triage",
                    f"{label} per message, {clock} time",
                    value,
                    "ms",
                    baseline=percentile(times["rules"][column], p),
                    baseline_name="keyword rules alone",
                    goal=goal,
                )
            )
    report.note(
        f"triage: {count:,} messages under {MAX_CHARS} characters, each with a fresh typo or number, language "
        f"detection included; CPU time is the thread's own, wall time includes waiting for a core (load average "
        f"{load:.1f} at the end on {os.cpu_count()} cores)."
    )
    return report


def main(argv: list[str] | None = None) -> None:
    """`python tests/bench/bench_triage.py`."""
    from inbox.bench.runner import script

    def options(parser: Any) -> Callable[[Any], dict[str, Any]]:
        parser.add_argument("--items", type=int, help=f"messages (default {ITEMS:,}; --quick {QUICK_ITEMS:,})")
        return lambda args: {"items": args.items}

    script(run, __doc__ or "", options, argv)
