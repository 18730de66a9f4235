"""What the triage model sees of a message: the same features at training and at run time.

Character n-grams (2 to 5, inside word boundaries, as scikit-learn's ``char_wb``) carry typos,
missing accents, inflections and languages nobody listed; word unigrams and bigrams carry
phrases. On top, a few marked words and cues the n-grams cannot see:

- words within three of a negation ("not", "pas", "nu", "nicht", "niet", "non", "não", ...) also
  count as ``!word``: "not good" is not "good";
- words after the last contrast ("but", "mais", "dar", "aber", "ma", "mas", "maar", "pero", ...)
  also count as ``>word``: a mixed review is read by what comes after its "but";
- links (and their top-level domain, shorteners), e-mail addresses, phone numbers, @handles,
  long numbers (orders), money and the star rating, inline ("★★☆☆☆", "3/5", "4 étoiles") or given;
- a few words in quotes ("tracking still says 'in transit'"), the scare quotes of sarcasm.

Pure functions of the text; the model (``model``) turns them into scores.
"""

from __future__ import annotations

import re
from functools import cache

from inbox.triage.text import Guarded, normalize

__all__ = [
    "CONTRASTS",
    "NEGATIONS",
    "NEGATION_WINDOW",
    "analyse",
    "char_grams",
    "cues_and_tokens",
    "describe",
    "features",
    "inline_rating",
]

_URL_RE = re.compile(
    r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|co|uk|fr|ro|de|es|it|nl|pt|net|org|io|ly|me|ee|gd|gy|at"
    r"|shop|store|xyz|info|online|click|site|live|top|win|biz|cam|icu|link|app)\b(?:/\S*)?"
)
_TLD_RE = re.compile(r"\.([a-z]{2,6})(?:/|$)")
_SHORTENERS = ("bit.ly", "tinyurl", "cutt.ly", "is.gd", "rb.gy", "t.me", "wa.me", "linktr.ee", "shorturl")
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")
_PHONE_RE = Guarded(r"(?<![\w])\+?\d[\d .()-]{7,}\d", r"\d[\d .()-]{7,}\d")
_HANDLE_RE = re.compile(r"(?<![\w@])@\w+")
_STARS_RE = re.compile(r"[★⭐☆]{2,}")
_OUT_OF_RE = re.compile(r"(?<![\d/.,])(10|\d(?:[.,]5)?)\s*/\s*(5|10)\b")
# "3 stars", and "3 von 5 Sternen", "3 out of 5 stars", "3 din 5 stele": the scale said in words
_STAR_WORDS = (
    r"([1-5])\s*(?:(?:von|su|sur|de|din|van|em|out of|of)\s*5\s*)?"
    r"(?:stars?|etoiles?|stele|stea|sterne?n?|estrellas?|stelle|estrelas?|sterren|ster)\b"
)
_STAR_WORDS_RE = Guarded(r"(?<!\d)" + _STAR_WORDS, _STAR_WORDS)
_NUMBER_RE = re.compile(r"\d+")
_LONG_WORD = 64  # padded words longer than this get their n-grams without remembered slices
# a few words in quotes: the scare quotes of sarcasm ('in transit', "next day", 'premium')
_QUOTED = r"['\"‘“«„]\s?(?=\w)[^'\"’”»\n]{1,40}(?<=\w)\s?['\"’”»](?!\w)"
_QUOTED_RE = Guarded(r"(?:^|(?<=\s))" + _QUOTED, _QUOTED)
_WORD_RE = re.compile(r"\w+|[^\w\s]")
# What makes `text.tokenize` differ from `_WORD_RE` on a text: the marks it drops, and the noise `text.prepare`
# takes out before it (handles, tags, links) when one of these is in the text
_TOKENS_APART = frozenset("'-‐‑–@#")
# a wait measured in time ("9 days", "40 minuti", "3 saptamani"), and thanks said beside one: the
# sarcasm of "thanks for the quick reply, only 9 days 👍", which no single word gives away
_WAIT = (  # after the number
    r"\s*(?:h|hrs?|hours?|heures?|ore|ora|horas?|uur|stunden?|min|mins|minutes?|minuten?|minuti|minutos"
    r"|days?|jours?|zile|tage?n?|dias|giorni|dagen|weeks?|semaines?|saptamani|saptamana|wochen?|semanas?"
    r"|settimane?|weken|months?|mois|luni|monate?|meses|mesi|maanden)\b"
)
_WAIT_RE = Guarded(r"\b\d+" + _WAIT, r"\d\d*" + _WAIT)  # (the guard's "\d\d*" is "\d+" with a digit first)
_THANKS_RE = re.compile(
    r"\b(?:thanks?|thank you|cheers|merci|mersi|multumesc|danke|gracias|grazie|obrigad[oa]|valeu"
    r"|bedankt|dank|dankjewel|bravo|felicitari|complimenti|parabens|enhorabuena)\b"
)
NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "nothing",
        "nobody",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "wasnt",
        "wont",
        "cant",
        "couldnt",
        "havent",
        "hasnt",
        "t",
        "ne",
        "pas",
        "jamais",
        "rien",
        "aucun",
        "aucune",
        "personne",
        "plus",
        "nest",
        "nu",
        "nici",
        "niciodata",
        "nimic",
        "nimeni",
        "deloc",
        "n",
        "nicht",
        "kein",
        "keine",
        "keinen",
        "nie",
        "nichts",
        "niemand",
        "ni",
        "nunca",
        "nada",
        "nadie",
        "tampoco",
        "non",
        "mai",
        "niente",
        "nessuno",
        "nemmeno",
        "nao",
        "nem",
        "nenhum",
        "nenhuma",
        "ninguem",
        "niet",
        "geen",
        "nooit",
        "niets",
        "niemand",
    ]
)
CONTRASTS = frozenset(
    [
        "but",
        "however",
        "though",
        "although",
        "yet",
        "mais",
        "cependant",
        "pourtant",
        "sauf",
        "dar",
        "insa",
        "totusi",
        "doar",
        "aber",
        "jedoch",
        "doch",
        "allerdings",
        "pero",
        "aunque",
        "ma",
        "tuttavia",
        "mas",
        "porem",
        "contudo",
        "maar",
        "echter",
        "alleen",
        # the regretful turn of a mixed review ("soft, sadly it pills", "leider", "peccato", "jammer")
        "toutefois",
        "neanmoins",
        "malheureusement",
        "dommage",
        "contre",
        "sadly",
        "unfortunately",
        "except",
        "leider",
        "nur",
        "embargo",
        "lastima",
        "desgraciadamente",
        "peccato",
        "purtroppo",
        "pena",
        "infelizmente",
        "embora",
        "jammer",
        "helaas",
        "pacate",
        "pacat",
    ]
)
NEGATION_WINDOW = 3


def inline_rating(text: str, normalized: str | None = None) -> int | None:
    """A star rating written in the text ("★★☆☆☆", "⭐⭐⭐⭐", "3/5", "4 stars", "2 étoiles"), if any.

    ``normalized``: ``normalize(text)``, when the caller has it already.
    """
    # "★☆☆☆☆" is one star; a lone "⭐" is decoration
    stars = _STARS_RE.search(text)
    if stars:  # a run: "★★☆☆☆" or "⭐⭐⭐"; one star alone is an emoji ("Jess was a star ⭐")
        filled = len(stars.group().replace("☆", ""))
        if filled:
            return min(5, filled)
    lowered = normalize(text) if normalized is None else normalized
    out_of = _OUT_OF_RE.search(lowered) if "/" in lowered else None  # (it needs one: most texts skip its scan)
    if out_of:
        value = float(out_of.group(1).replace(",", "."))
        scale = int(out_of.group(2))
        if value <= scale:
            return max(1, min(5, round(value * 5 / scale)))
    words = _STAR_WORDS_RE.search(lowered)
    return int(words.group(1)) if words else None


def _cues(norm: str) -> tuple[str, list[str], bool]:
    """The text with links, addresses, phones and handles replaced by placeholders, its cues, and whether numbers are left."""
    cues: list[str] = []
    if "@" in norm:
        if _EMAIL_RE.search(norm):
            cues.append("#email")
            norm = _EMAIL_RE.sub(" ", norm)
        handles = _HANDLE_RE.findall(norm)
        if handles:
            cues.append("#handle")
            if not norm.lstrip().startswith(handles[0]):
                cues.append("#handle-inside")  # "text @someone on insta", not an address to the brand
            norm = _HANDLE_RE.sub(" ", norm)
    if "." in norm or "/" in norm:
        for match in _URL_RE.finditer(norm):
            url = match.group()
            cues.append("#url")
            tld = _TLD_RE.search(url.split("?")[0] + "/")
            if tld:
                cues.append(f"#tld:{tld.group(1)}")
            if any(short in url for short in _SHORTENERS):
                cues.append("#shortener")
            if "-" in url.split("/")[2 if "://" in url else 0]:
                cues.append("#url-hyphen")
        norm = _URL_RE.sub(" ", norm)
    if _PHONE_RE.search(norm):
        cues.append("#phone")
        norm = _PHONE_RE.pattern.sub(" ", norm)
    numbers = _NUMBER_RE.findall(norm)
    for number in numbers:
        if len(number) >= 4:
            cues.append("#longnumber")
    if any(sign in norm for sign in "€$£"):
        cues.append("#money")
    return norm, cues, bool(numbers)


def cues_and_tokens(
    text: str,
    rating: int | None = None,
    *,
    normalized: str | None = None,
    read_rating: bool = True,
    tokens: list[str] | None = None,
) -> tuple[list[str], list[str]]:
    """(the message's cues, its word tokens): what ``analyse`` reads before walking the tokens.

    ``rating``, ``normalized`` and ``read_rating``: as ``analyse`` takes them. ``tokens``: ``text.tokenize``
    of the normalised text when the caller has them; they are the word tokens here too when nothing sets
    the two tokenizations apart (no link, address, handle, tag or number was taken out or replaced, and no
    apostrophe or hyphen, which ``text.tokenize`` drops), so the text is not split again.
    """
    normal = normalize(text) if normalized is None else normalized
    norm, out, numbers = _cues(normal)
    stars = rating if rating is not None or not read_rating else inline_rating(text, normal)
    if stars is not None:
        out.append(f"#stars:{stars}")
    if "!!" in text:
        out.append("#exclaim")
    if "?" in text:
        out.append("#ask")
    if _QUOTED_RE.search(text):
        out.append("#quoted")
    if numbers and _WAIT_RE.search(norm):  # (a wait needs a number)
        out.append("#wait")
        if _THANKS_RE.search(norm):
            out.append("#thanks-wait")
    if numbers:
        return out, _WORD_RE.findall(_NUMBER_RE.sub("0", norm))
    if tokens is not None and norm == normal and _TOKENS_APART.isdisjoint(normal):
        return out, tokens
    return out, _WORD_RE.findall(norm)


def analyse(
    text: str, rating: int | None = None, *, normalized: str | None = None, read_rating: bool = True
) -> tuple[list[str], list[str]]:
    """(word-level features and cues, the words whose character n-grams count) of one message.

    Without a ``rating`` the one written in the text counts, unless ``read_rating`` is False: the
    caller read it already and gives what it found (None: no rating). ``normalized``: ``normalize(text)``,
    when the caller has it already.
    """
    out, tokens = cues_and_tokens(text, rating, normalized=normalized, read_rating=read_rating)
    last_contrast = max((i for i, tok in enumerate(tokens) if tok in CONTRASTS), default=-1)
    negated_until = -1
    previous = "^"
    words: list[str] = []
    for index, token in enumerate(tokens):
        out.append("w:" + token)
        out.append(f"b:{previous} {token}")
        previous = token
        if token in NEGATIONS:
            negated_until = index + NEGATION_WINDOW
        elif index <= negated_until:
            out.append("!" + token)
        if index > last_contrast >= 0:
            out.append(">" + token)
        if token.isalnum():
            words.append(token)
    out.append(f"b:{previous} $")
    return out, words


@cache
def _gram_slices(size: int) -> tuple[slice, ...]:
    """The slices of a padded word of ``size`` characters giving its 2- to 5-grams, in ``char_grams``' order."""
    return tuple(slice(start, start + n) for n in (2, 3, 4, 5) if n <= size for start in range(size - n + 1))


def char_grams(word: str) -> list[str]:
    """The character 2- to 5-grams of one word padded with spaces (scikit-learn's ``char_wb``)."""
    padded = f" {word} "
    if len(padded) > _LONG_WORD:  # no slices remembered for an odd length (a pasted hash, a long URL)
        size = len(padded)
        return [padded[start : start + n] for n in (2, 3, 4, 5) if n <= size for start in range(size - n + 1)]
    return list(map(padded.__getitem__, _gram_slices(len(padded))))


def features(text: str, rating: int | None = None) -> list[str]:
    """Every feature of one message (duplicates possible; the model counts each once)."""
    out, words = analyse(text, rating)
    for word in words:
        out.extend(char_grams(word))
    return out


def describe(feature: str) -> str:
    """A feature as a person reads it (for ``inbox triage --explain``)."""
    kinds = {"w:": "word", "b:": "words", "!": "negated", ">": "after a contrast"}
    for prefix, kind in kinds.items():
        if feature.startswith(prefix) and len(feature) > len(prefix):
            return f"{kind} {feature[len(prefix) :]!r}"
    if feature.startswith("#"):
        return feature[1:]
    return f"letters {feature.replace(' ', '_')!r}"
