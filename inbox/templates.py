"""Suggested replies rendered from short Jinja2 templates, one per intent and language.

Files
    ``{folder}/{intent}.{lang}.j2`` (the shipped ones live in ``inbox.config/templates``).
    Lookup falls back ``intent.lang`` -> ``intent.en`` -> ``generic.lang`` -> ``generic.en``.

Variables
    ``customer_name``, ``channel``, ``agent_name``, ``brand``, ``order_number``; any may be
    missing or None (templates use ``{% if order_number %}``) and extra ones (e.g. ``kind``)
    are passed through. A missing variable renders as nothing and never raises.

Safety
    Templates are rendered in Jinja2's ``SandboxedEnvironment`` with autoescape off (the
    output is plain text). Customer text only ever enters as variable VALUES, never as
    template source, so a name like ``{{ 7*7 }}`` is printed literally. Each template file
    is compiled once and cached.

Whitespace
    In a template, a blank line separates paragraphs and any other run of whitespace
    (line breaks included) is one space, so ``{% if %}`` blocks can sit on their own lines.
    The reply has one paragraph per line, no blank lines, no leading/trailing spaces.

Length
    With ``max_chars`` (a channel's limit: 280 for X, 500 for Mastodon, 4096 for Google
    review replies) a longer reply is cut at a word boundary and ends with "…"; the result
    never exceeds ``max_chars`` characters (Python characters; platforms that weigh URLs
    or emoji differently need their own margin).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

from jinja2 import ChainableUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from inbox.connector import display_name
from inbox.triage import shipped_config

__all__ = ["ReplyTemplateError", "ReplyTemplates", "Suggestion", "find_order_number"]

_SUFFIX = ".j2"
_FALLBACK_LANGUAGE = "en"
_GENERIC = "generic"
_NAME_PART = re.compile(r"^[a-z][a-z0-9_]*$")  # keeps lookups inside the folder
_PARAGRAPH = "\x1e"  # ASCII record separator: stands for a template's blank line while rendering
_BLANK_LINE = re.compile(r"[ \t]*\r?\n(?:[ \t]*\r?\n)+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACE_BEFORE = re.compile(r" +([,.])")
_ELLIPSIS = "…"
_RESOLVED_LIMIT = 1000
# TemplateError covers the sandbox's SecurityError; the rest are what template expressions
# can raise at render time (e.g. the sandbox's OverflowError for huge ranges, 1/0).
_RENDER_ERRORS = (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A rendered reply and where it came from."""

    text: str
    template: str  # file name used, e.g. "delivery.fr.j2"
    language: str  # the language of the template used (after fallback)
    truncated: bool


class ReplyTemplateError(ValueError):
    """A template that cannot be used (syntax error, unsafe code, none found)."""


class ReplyTemplates:
    """The reply templates of one folder, compiled once on first use."""

    def __init__(self, folder: Path | None = None, *, shipped: str = "templates") -> None:
        # `shipped`: the folder of the shipped config used without `folder` (`csat` holds the CSAT questions).
        self._folder: Traversable = Path(folder) if folder is not None else shipped_config().joinpath(shipped)
        self._env = SandboxedEnvironment(autoescape=False, undefined=ChainableUndefined, keep_trailing_newline=False)
        self._compiled: dict[str, Template | None] = {}
        self._resolved: dict[tuple[str, str], tuple[str, Template, str]] = {}

    def available(self) -> list[tuple[str, str]]:
        """(intent, language) pairs that have a template file, for a template picker."""
        pairs = set()
        if self._folder.is_dir():
            for entry in self._folder.iterdir():
                parts = entry.name.removesuffix(_SUFFIX).split(".")
                if entry.name.endswith(_SUFFIX) and len(parts) == 2 and all(_NAME_PART.match(p) for p in parts):
                    pairs.add((parts[0], parts[1]))
        return sorted(pairs)

    def validate(self, last: str = _GENERIC) -> None:
        """Compile every template now and require the last fallback (`{last}.en.j2`), so a broken folder fails at start-up."""
        problems = []
        for intent, language in self.available():
            try:
                self._template(f"{intent}.{language}{_SUFFIX}")
            except ReplyTemplateError as exc:
                problems.append(str(exc))
        if (last, _FALLBACK_LANGUAGE) not in self.available():
            problems.append(f"{self._folder}: {last}.{_FALLBACK_LANGUAGE}{_SUFFIX} is missing (the last fallback)")
        if problems:
            raise ReplyTemplateError("; ".join(problems))

    def render(
        self,
        intent: str,
        language: str,
        variables: Mapping[str, str | None],
        max_chars: int | None = None,
    ) -> Suggestion:
        """The reply for an intent and language: that template, else English, else generic (see the module docstring)."""
        name, template, used_language = self._resolve(str(intent).lower(), str(language).lower())
        return self._render(name, template, used_language, variables, max_chars)

    def render_named(
        self, name: str, language: str, variables: Mapping[str, str | None], max_chars: int | None = None
    ) -> Suggestion | None:
        """`{name}.{language}.j2`, else `{name}.en.j2`, rendered; None when the folder has neither (no generic fallback)."""
        for candidate in dict.fromkeys([str(language).lower(), _FALLBACK_LANGUAGE]):
            if not (_NAME_PART.match(name) and _NAME_PART.match(candidate)):
                continue
            file = f"{name}.{candidate}{_SUFFIX}"
            template = self._template(file)
            if template is not None:
                return self._render(file, template, candidate, variables, max_chars)
        return None

    def _render(
        self,
        name: str,
        template: Template,
        used_language: str,
        variables: Mapping[str, str | None],
        max_chars: int | None,
    ) -> Suggestion:
        if max_chars is not None and max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, not {max_chars}")
        try:
            raw = template.render(_values(variables))
        except _RENDER_ERRORS as exc:  # an admin's template doing something impossible
            raise ReplyTemplateError(f"{name}: {exc}") from exc
        text, truncated = _truncate(_tidy(raw), max_chars)
        return Suggestion(text=text, template=name, language=used_language, truncated=truncated)

    def _resolve(self, intent: str, language: str) -> tuple[str, Template, str]:
        found = self._resolved.get((intent, language))
        if found is None:
            found = self._lookup(intent, language)
            if len(self._resolved) < _RESOLVED_LIMIT:  # callers may pass any language string
                self._resolved[(intent, language)] = found
        return found

    def _lookup(self, intent: str, language: str) -> tuple[str, Template, str]:
        for candidate_intent, candidate_language in dict.fromkeys(
            [(intent, language), (intent, _FALLBACK_LANGUAGE), (_GENERIC, language), (_GENERIC, _FALLBACK_LANGUAGE)]
        ):
            if not (_NAME_PART.match(candidate_intent) and _NAME_PART.match(candidate_language)):
                continue
            name = f"{candidate_intent}.{candidate_language}{_SUFFIX}"
            template = self._template(name)
            if template is not None:
                return name, template, candidate_language
        raise ReplyTemplateError(
            f"no template for {intent}.{language} and no {_GENERIC}.{_FALLBACK_LANGUAGE}{_SUFFIX} in {self._folder}"
        )

    def _template(self, name: str) -> Template | None:
        if name in self._compiled:
            return self._compiled[name]
        entry = self._folder.joinpath(name)
        template = None
        if entry.is_file():
            source = entry.read_text(encoding="utf-8")
            try:
                template = self._env.from_string(_BLANK_LINE.sub(_PARAGRAPH, source.strip()))
            except TemplateError as exc:
                raise ReplyTemplateError(f"{name}: {exc}") from exc
        self._compiled[name] = template
        return template


def _values(variables: Mapping[str, str | None]) -> dict[str, str]:
    """Variable values as plain strings; None means missing. Values are data, never source."""
    values = {}
    for key, value in variables.items():
        if value is not None:
            text = value if isinstance(value, str) else str(value)
            values[str(key)] = (text if text.isprintable() else _CONTROL.sub(" ", text)).strip()
    return values


def _tidy(rendered: str) -> str:
    """One line per paragraph, single spaces, no blank lines, no space before , or ."""
    paragraphs = []
    for part in rendered.split(_PARAGRAPH):
        paragraph = " ".join(part.split())
        if " ," in paragraph or " ." in paragraph:
            paragraph = _SPACE_BEFORE.sub(r"\1", paragraph)
        if paragraph:
            paragraphs.append(paragraph)
    return "\n".join(paragraphs)


def _truncate(text: str, max_chars: int | None) -> tuple[str, bool]:
    """Cut at a word boundary so that text + "…" fits in max_chars."""
    if max_chars is None or len(text) <= max_chars:
        return text, False
    room = max_chars - len(_ELLIPSIS)
    head = text[:room]
    if room < len(text) and not text[room].isspace():
        cut = max(head.rfind(" "), head.rfind("\n"))
        if cut > 0:  # a single endless word is cut mid-word rather than dropped
            head = head[:cut]
    head = head.rstrip(" \n,;:–-")
    return head + _ELLIPSIS, True


# --------------------------------------------------------------------------- order numbers

# An order reference after a keyword (shipped languages), a "#number", or a letters-dash-digits
# code. At least 4 digits, so "2 weeks", "#1" or "10/10" are not orders; phone numbers and
# prices have no keyword and no "#", so they are not orders either.
_ORDER_AFTER_KEYWORD = re.compile(
    r"\b(?:orders?|commandes?|cde|comand[aă]|comenzii|pedido|encomenda|bestellung|bestelling|ordine)\b"
    r"(?:[\s:#.°º-]*(?:number|no|nr|num|num[eé]ro|num[aă]rul|nummer|n)(?![^\W\d_]))?"
    r"[\s:#.°º-]*(?P<ref>(?:[A-Z]{1,4}-?)?\d{4,})\b",
    re.IGNORECASE,
)
_HASH_NUMBER = re.compile(r"(?<![\w#&])#(?P<ref>(?:[A-Z]{1,4}-?)?\d{4,})\b", re.IGNORECASE)
_CODE = re.compile(r"(?<![\w-])(?P<ref>[A-Z]{2,4}-\d{4,})\b")


def reply_variables(
    *, customer_name: str | None, channel: str | None, kind: str | None, text: str, agent_name: str, brand: str
) -> dict[str, str | None]:
    """The variables every reply template gets, built the same way wherever a suggestion is made."""
    return {
        "customer_name": customer_name,
        "channel": display_name(channel),
        "kind": kind,
        "agent_name": agent_name,
        "brand": brand,
        "order_number": find_order_number(text),
    }


def find_order_number(text: str) -> str | None:
    """The first order reference in customer text, without its "#": "#12345" -> "12345".

    Recognises "#12345", "order 123456", "order no. 123456", "commande n°45678",
    "comanda 778899", "comanda nr. 778899" and codes like "AB-12345".
    """
    for pattern in (_ORDER_AFTER_KEYWORD, _HASH_NUMBER, _CODE):
        match = pattern.search(text)
        if match:
            return match.group("ref")
    return None
