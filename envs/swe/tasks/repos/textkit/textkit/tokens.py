"""Tokenising: words, sentences, n-grams and word frequencies."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TypeVar

from textkit._unicode import fold

T = TypeVar("T")

_TOKEN = re.compile(r"\w+(?:['’]\w+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
_ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "prof", "st", "vs", "etc", "e.g", "i.e"})


def tokenize(text: str, lowercase: bool = False) -> list[str]:
    """Split ``text`` into word tokens, keeping contractions ("don't") together.

    >>> tokenize("Don't panic, it's 42!")
    ["Don't", 'panic', "it's", '42']
    """
    tokens = _TOKEN.findall(text)
    return [fold(t) for t in tokens] if lowercase else tokens


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences on ``.``, ``!`` and ``?``.

    Common abbreviations such as "Dr." or "e.g." do not end a sentence.

    >>> sentences("Hi there. Dr. Who is here! Really?")
    ['Hi there.', 'Dr. Who is here!', 'Really?']
    """
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        before = text[start : match.start()].split()
        if before and before[-1].lower() in _ABBREVIATIONS and match.group() == ".":
            continue
        sentence = text[start : match.end()].strip()
        if sentence:
            out.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        out.append(tail)
    return out


def ngrams(tokens: Sequence[T], n: int) -> list[tuple[T, ...]]:
    """Return the contiguous ``n``-grams of ``tokens``.

    >>> ngrams(["a", "b", "c"], 2)
    [('a', 'b'), ('b', 'c')]
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


class Tokenizer:
    """A configurable word tokenizer with stop-word removal.

    Args:
        stopwords: words to drop from the output.
        lowercase: case-fold tokens (and stop words) before comparing and returning them.
        min_length: drop tokens shorter than this.
    """

    def __init__(self, stopwords: Iterable[str] = (), lowercase: bool = True, min_length: int = 1) -> None:
        self.lowercase = lowercase
        self.min_length = min_length
        self.stopwords: set[str] = {self._normalize(w) for w in stopwords}

    def _normalize(self, token: str) -> str:
        return fold(token) if self.lowercase else token

    def add_stopwords(self, *words: str) -> None:
        """Add more stop words to this tokenizer."""
        self.stopwords.update(self._normalize(w) for w in words)

    def tokenize(self, text: str) -> list[str]:
        """Tokenize ``text``, normalising case and dropping stop words and short tokens."""
        out = []
        for token in _TOKEN.findall(text):
            token = self._normalize(token)
            if len(token) >= self.min_length and token not in self.stopwords:
                out.append(token)
        return out


def word_frequencies(text: str, stopwords: Iterable[str] = (), top: int | None = None) -> list[tuple[str, int]]:
    """Count case-insensitive word frequencies, most common first.

    Ties keep the order in which the words first appear.

    >>> word_frequencies("the cat and the hat", stopwords=["and"])
    [('the', 2), ('cat', 1), ('hat', 1)]
    """
    counts = Counter(Tokenizer(stopwords).tokenize(text))
    return counts.most_common(top)
