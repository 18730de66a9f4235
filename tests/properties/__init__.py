"""Property-based tests: hostile text, odd timestamps and broken payloads never crash the pipeline.

Shared hypothesis strategies live here so every property file feeds the same kinds of bad input.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

# Pieces customers (or attackers) really send: Slack control sequences, mrkdwn, template syntax,
# HTML, entities, zero-width and bidi characters, emoji with modifiers, RTL scripts, null bytes.
FRAGMENTS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123|general>",
    "<!subteam^S123>",
    "<https://evil.example|ok>",
    "<http://x.y>",
    "<mailto:a@b.c|me>",
    "*bold*",
    "_it_",
    "~s~",
    "`c`",
    "```x```",
    "&",
    "&amp;",
    "&lt;",
    "&gt;",
    "<",
    ">",
    "|",
    "{{ 7*7 }}",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{{ ''.__class__.__mro__ }}",
    "{#",
    "#}",
    "<script>alert(1)</script>",
    "<b>x</b>",
    "<p>a</p><br>",
    "\u200b",
    "\u200d",
    "\u200f",
    "\u202e",
    "\ufeff",
    "\x00",
    "\r\n",
    "\t",
    "\x1b[31m",
    "🙂",
    "👍🏽",
    "👨‍👩‍👧",
    "مرحبا",
    "שלום",
    "Ελληνικά",
    "commande #12345",
    "order 123456",
    ":rotating_light:",
    "@acme",
    "  ",
]

# Surrogates cannot be encoded to UTF-8 at all (no store or HTTP body takes them), so they are left out.
_CHARS = st.characters(exclude_categories=("Cs",))


def hostile_text(max_pieces: int = 8) -> st.SearchStrategy[str]:
    """Short strings mixing hostile fragments with arbitrary Unicode."""
    piece = st.one_of(st.sampled_from(FRAGMENTS), st.text(_CHARS, max_size=12))
    return st.lists(piece, max_size=max_pieces).map("".join)


def huge_text() -> st.SearchStrategy[str]:
    """A ~100 KB body made of one repeated hostile fragment (plus a tail), to probe size limits."""
    return st.tuples(st.sampled_from([*FRAGMENTS, "word "]), st.text(_CHARS, max_size=5)).map(
        lambda parts: (parts[0] * (100_000 // len(parts[0]) + 1))[:100_000] + parts[1]
    )


def long_text() -> st.SearchStrategy[str]:
    """A repeated fragment of any length up to 3,000 characters: around Slack's and the platforms' limits."""
    return st.tuples(st.sampled_from(FRAGMENTS), st.integers(1, 3000)).map(
        lambda parts: (parts[0] * parts[1])[: parts[1]]
    )


def any_text() -> st.SearchStrategy[str]:
    """Mostly short hostile strings, sometimes one near the limits or a 100 KB one."""
    return st.one_of(hostile_text(), hostile_text(), long_text(), huge_text())


ZONES = [
    UTC,
    timezone(timedelta(hours=14)),
    timezone(timedelta(hours=-12)),
    timezone(timedelta(hours=5, minutes=45)),
    ZoneInfo("Europe/Paris"),
    ZoneInfo("America/New_York"),
    ZoneInfo("Australia/Lord_Howe"),
]


def odd_datetimes(now: datetime) -> st.SearchStrategy[datetime]:
    """Naive, zoned, far past, far future and near-now timestamps (including ones UTC cannot represent)."""
    zoned = st.datetimes(timezones=st.sampled_from(ZONES))
    naive = st.datetimes()
    near = st.integers(-10_000, 10_000).map(lambda minutes: now + timedelta(minutes=minutes))
    edges = st.sampled_from(
        [
            datetime.min,
            datetime.max,
            datetime.min.replace(tzinfo=UTC),
            datetime.max.replace(tzinfo=UTC),
            datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
            datetime.max.replace(tzinfo=timezone(timedelta(hours=-1))),
            datetime(1970, 1, 1, tzinfo=UTC),
            datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),
        ]
    )
    return st.one_of(zoned, naive, near, near, edges)


def representable(at: datetime) -> bool:
    """True when `at` can be expressed in UTC (an aware time near year 1 or 9999 may not be)."""
    try:
        (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
    except OverflowError:
        return False
    return True


def json_values() -> st.SearchStrategy[object]:
    """Arbitrary JSON: nested dicts and lists of scalars and hostile strings."""
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), hostile_text(3))
    return st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4), st.dictionaries(st.text(_CHARS, max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )
