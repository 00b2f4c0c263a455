"""Unicode helpers shared by the other modules."""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


def strip_accents(text: str) -> str:
    """Remove diacritics, keeping the base letters.

    >>> strip_accents("Crème brûlée")
    'Creme brulee'
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace to a single space and strip both ends.

    >>> normalize_whitespace("  a \\t b\\n\\nc ")
    'a b c'
    """
    return _WHITESPACE.sub(" ", text).strip()


def fold(text: str) -> str:
    """Return a caseless form of ``text`` for case-insensitive comparison.

    Unlike :meth:`str.lower`, this uses full Unicode case folding, so ``"STRASSE"``
    and ``"straße"`` fold to the same string.
    """
    return text.casefold()
