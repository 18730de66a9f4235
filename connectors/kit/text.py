"""Text as platforms give it: HTML to plain text, and whether a posted reply is the one we sent."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable
from html.parser import HTMLParser

_URL = re.compile(r"https?://\S+")
# The @handles a platform puts in front of a reply (X) or that we put there ourselves (Mastodon: @user@instance).
_LEADING_MENTIONS = re.compile(r"^(?:@[\w.@-]+\s+)+")


def comparable(text: str) -> str:
    """A reply's words as every platform keeps them: entities unescaped, leading @handles, link targets and wrapping dropped."""
    # X prefixes the @handles it answers, wraps links in t.co and escapes &<>; review sites trim and re-wrap whitespace.
    text = _LEADING_MENTIONS.sub("", " ".join(html.unescape(text).split()) + " ")
    return " ".join(_URL.sub("<link>", text).split())


def same_reply(posted: object, sent: str) -> bool:
    """Whether a reply found on the platform is the one we sent (after a crash, so it is not sent twice)."""
    return isinstance(posted, str) and comparable(posted) == comparable(sent)


def any_word(words: Iterable[str]) -> re.Pattern[str] | None:
    """A case-insensitive search for any of `words` as a whole word ("acme" not in "acmes"); None without words."""
    stripped = [re.escape(w.strip()) for w in words if w.strip()]
    return re.compile(rf"(?<!\w)(?:{'|'.join(stripped)})(?!\w)", re.IGNORECASE) if stripped else None


def idempotency_key(*parts: str) -> str:
    """An `Idempotency-Key` for one reply: the same parts (connector, item, text) give the same key after a crash."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class _TextExtractor(HTMLParser):
    """Text of a post's HTML, keeping paragraphs and line breaks."""

    BLOCKS = frozenset({"p", "div", "blockquote", "pre", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Line breaks for <br> and block elements."""
        if tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCKS and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        """Keep text, including the hidden parts of shortened links."""
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Plain text of a post's HTML (Mastodon's `content`): tags dropped, entities unescaped, <br>/<p> kept as line breaks."""
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
