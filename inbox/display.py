"""Customer-controlled strings as shown to people (Slack, the terminal, alerts): characters that could disguise them shown,
not obeyed.

What is stored stays as received (it is data, and an export must return it); only what is displayed is neutralised.
A bidirectional override turns `@\u202eevil` into what reads as another name, a terminal escape recolours the screen:
those become a visible U+FFFD, so an agent sees that something was there.
"""

from __future__ import annotations

import re
import unicodedata

MARK = "\ufffd"

# Controls that reorder or re-style what follows them: never obeyed, in any text.
_BIDI = "\u202a-\u202e\u2066-\u2069"
_C0_C1 = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # every control but tab, line feed and carriage return
_DANGEROUS = re.compile(f"[{_BIDI}{_C0_C1}]")
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85]")
_SPACES = re.compile(r"\s+")
_ZWJ = "\u200d"


def shown_text(text: str) -> str:
    """Customer text for display: bidi controls and control characters marked, Unicode line breaks made plain newlines.

    Zero-width joiners, direction marks and the like stay: emoji sequences and right-to-left scripts need them, and
    they cannot move text beyond themselves.
    """
    return _DANGEROUS.sub(MARK, _LINE_BREAKS.sub("\n", text))


def shown_name(name: str) -> str:
    """A handle or display name for display, on one line: every invisible format or control character marked.

    A name is short and should look like what it is, so unlike text nothing invisible is kept in it, except a
    zero-width joiner inside an emoji sequence (👩‍💻).
    """
    name = _SPACES.sub(" ", name)
    out = []
    for i, char in enumerate(name):
        if unicodedata.category(char) in ("Cc", "Cf") and not (char == _ZWJ and _joins_emoji(name, i)):
            out.append(MARK)
        else:
            out.append(char)
    return "".join(out)


def _joins_emoji(name: str, i: int) -> bool:
    return 0 < i < len(name) - 1 and _emoji_part(name[i - 1]) and _emoji_part(name[i + 1])


def _emoji_part(char: str) -> bool:
    # Symbols, skin-tone modifiers and the emoji variation selector: what joined emoji sequences are made of.
    return unicodedata.category(char) in ("So", "Sk") or char == "\ufe0f"


def stars(rating: int | None) -> str:
    """★★☆☆☆ for a 2-star review."""
    return "" if rating is None else "★" * rating + "☆" * (5 - rating)
