"""Text safety for Slack: customer text is shown literally, agent text comes back as plain text."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from inbox.display import shown_name, shown_text

# Slack's three control characters; everything else is shown as is (its formatting docs).
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CONTROL = re.compile(r"[&<>]")
# Look-alikes for mrkdwn's formatting characters, used only where untrusted text must sit in mrkdwn.
_FORMATTING = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})
PLAIN_TEXT_LIMIT = 3000  # a section's text object
FIELD_LIMIT = 2000  # a section field


def escape(text: str) -> str:
    """Replace &, < and > by entities, so text can never form a mention, a ping or a link; bidi and control characters shown, not obeyed."""
    return _CONTROL.sub(lambda m: _ENTITIES[m.group()], shown_text(text))


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def plain(text: str, limit: int = PLAIN_TEXT_LIMIT) -> dict[str, Any]:
    """A plain_text object for untrusted text: no mrkdwn, no emoji codes, control characters escaped."""
    return {"type": "plain_text", "text": escape_within(text, limit) or " ", "emoji": False}


def escape_within(text: str, limit: int) -> str:
    """`escape(text)` in at most `limit` characters: cut between characters, never inside an entity."""
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped
    # An entity is up to five characters long, so the cut is found on the escaped widths.
    width = 0
    for end, char in enumerate(text):
        width += len(_ENTITIES.get(char, char))
        if width > limit - 1:
            return escape(text[:end].rstrip()) + "…"
    return escaped


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn object for text we wrote ourselves (untrusted parts go through `literal`)."""
    return {"type": "mrkdwn", "text": text}


def literal(text: str, limit: int = 200) -> str:
    """Untrusted text for a mrkdwn context (names, handles, reasons): escaped, formatting and invisible characters
    replaced, on one line."""
    return escape(clip(shown_name(text).strip(), limit)).translate(_FORMATTING)


def safe_url(url: str | None) -> str | None:
    """An http(s) URL safe to place in a link or button, or None for anything else."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    # `|` and `>` would end a mrkdwn link early; spaces and quotes have no place in a URL.
    quoted = quote(url, safe=":/?#[]@!$&'()*+,;=%-._~")
    # Measured after quoting (a character may become 12): Slack refuses a whole message whose URL is over 3,000.
    return quoted if len(quoted) <= 2900 else None


def link(url: str | None, label: str) -> str:
    """A mrkdwn link with an untrusted label, or the bare label when the URL is unusable."""
    target = safe_url(url)
    text = literal(label).replace("|", "¦")
    return f"<{target}|{text}>" if target else text


_SLACK_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def from_slack(text: str) -> str:
    """An agent's Slack message as the plain text a customer should read."""

    def unwrap(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return f"@{label or target[1:]}"
        if target.startswith("#"):
            return f"#{label or target[1:]}"
        if target.startswith("!"):
            special = target[1:].split("^")[0]
            return label or f"@{special}"
        if target.startswith("mailto:"):
            return label or target.removeprefix("mailto:")
        if not label:
            return target
        # An address Slack auto-linked keeps the form the agent typed; a named link shows its address.
        return label if label in target else f"{label} ({target})"

    text = _SLACK_LINK.sub(unwrap, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
