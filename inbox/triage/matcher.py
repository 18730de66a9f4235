"""Finding listed terms in a message's tokens.

A term is a word, an emoji, a punctuation mark ("?") or a phrase of several words, compared
after ``text.normalize``; a trailing ``*`` on a single word matches any word starting with it
("rembours*"). The longest listed phrase wins at a position and its words do not count again
for what the phrase says ("merci pour rien" is negative, its "merci" is not positive);
``neutral`` phrases ("thanks in advance") silence their words entirely.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from inbox.triage.text import words_of

__all__ = ["CACHE_LIMIT", "ESCALATION", "NEGATIVE", "NEUTRAL", "POSITIVE", "Entry", "Matcher"]

# An entry is (category, language, weight). Categories: "+", "-", "!" (escalation), "0"
# (neutral: a phrase whose words must not count) or an intent.
Entry = tuple[str, str, float]
POSITIVE, NEGATIVE, ESCALATION, NEUTRAL = "+", "-", "!", "0"
CACHE_LIMIT = 50_000  # entries in a per-token cache before it is emptied


class Matcher:
    """Finds listed terms in a token list: longest phrase first, then exact word, then prefix.

    A phrase overrides the words inside it for what it says (sentiment, escalation, an
    intent); for what it does not say, the words inside still count: "wrong address" is a
    delivery phrase and its "wrong" still counts as negative.
    """

    def __init__(self, terms: Iterable[tuple[str, Entry]]) -> None:
        exact: dict[str, list[Entry]] = {}
        prefixes: dict[str, list[Entry]] = {}
        for term, entry in terms:
            wildcard = term.endswith("*")
            words = words_of(term[:-1] if wildcard else term)
            if words:
                target = prefixes if wildcard else exact
                target.setdefault(words[0] if wildcard else " ".join(words), []).append(entry)
        self._prefixes = {k: tuple(v) for k, v in prefixes.items()}
        self._prefix_lengths = sorted({len(p) for p in prefixes}, reverse=True)
        own = {k: tuple(v) for k, v in exact.items()}
        self._exact = {k: self._with_inner_words(k, v, own) for k, v in own.items()}
        sizes: dict[str, set[int]] = {}
        for key in own:
            words = key.split(" ")
            if len(words) > 1:
                sizes.setdefault(words[0], set()).add(len(words))
        self._phrase_sizes = {word: tuple(sorted(n, reverse=True)) for word, n in sizes.items()}
        self._cache: dict[str, tuple[Entry, ...]] = {}
        self.empty = not exact and not prefixes  # nothing to find (no admin overrides): `find` is skipped

    def _static(self, word: str, own: Mapping[str, tuple[Entry, ...]]) -> tuple[Entry, ...]:
        """An exact term, completed by the longest matching prefix term for what it does not say."""
        exact = own.get(word, ())
        prefix: tuple[Entry, ...] = ()
        for size in self._prefix_lengths:
            if size <= len(word) and (hit := self._prefixes.get(word[:size])):
                prefix = hit
                break
        if not (exact and prefix):
            return exact or prefix
        groups = {_group(entry[0]) for entry in exact}
        return exact + tuple(entry for entry in prefix if _group(entry[0]) not in groups)

    def _with_inner_words(
        self, key: str, entries: tuple[Entry, ...], own: Mapping[str, tuple[Entry, ...]]
    ) -> tuple[Entry, ...]:
        if any(entry[0] == NEUTRAL for entry in entries):
            return entries  # "thanks in advance" is politeness: its "thanks" is no praise
        words = key.split(" ")
        groups = {_group(entry[0]) for entry in entries}
        inherited: list[Entry] = []
        for size in range(len(words) - 1, 0, -1):  # longer inner terms first
            level = [
                entry
                for start in range(len(words) - size + 1)
                for entry in self._static(" ".join(words[start : start + size]), own)
                if _group(entry[0]) not in groups
            ]
            inherited.extend(level)
            groups.update(_group(entry[0]) for entry in level)
        return entries + tuple(inherited)

    def _word(self, token: str) -> tuple[Entry, ...]:
        found = self._static(token, self._exact)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache.clear()  # bounded memory; the working vocabulary refills it quickly
        self._cache[token] = found
        return found

    def find(self, tokens: list[str]) -> list[tuple[int, str, tuple[Entry, ...]]]:
        """(token index, matched key, entries) for every match, left to right."""
        hits: list[tuple[int, str, tuple[Entry, ...]]] = []
        if self.empty:
            return hits
        cache, phrase_sizes = self._cache, self._phrase_sizes
        i, count = 0, len(tokens)
        while i < count:
            token = tokens[i]
            sizes = phrase_sizes.get(token)
            if sizes is not None:
                phrase = self._phrase(tokens, i, sizes)
                if phrase is not None:
                    hits.append((i, phrase[0], phrase[1]))
                    i += phrase[2]
                    continue
            entries = cache.get(token)
            if entries is None:
                entries = self._word(token)
            if entries:
                hits.append((i, token, entries))
            i += 1
        return hits

    def _phrase(
        self, tokens: list[str], start: int, sizes: tuple[int, ...]
    ) -> tuple[str, tuple[Entry, ...], int] | None:
        room = len(tokens) - start
        for size in sizes:
            if size <= room:
                key = " ".join(tokens[start : start + size])
                entries = self._exact.get(key)
                if entries:
                    return key, entries, size
        return None


def _group(category: str) -> str:
    """Positive and negative terms speak about the same thing: the sentiment."""
    return NEGATIVE if category == POSITIVE else category
