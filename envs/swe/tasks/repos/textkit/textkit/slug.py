"""URL slugs."""

from __future__ import annotations

import re

from textkit._unicode import strip_accents

_NON_WORD = re.compile(r"[^a-zA-Z0-9]+")


def slugify(text: str, sep: str = "-", max_length: int | None = None, lowercase: bool = True) -> str:
    """Turn arbitrary text into a URL-safe slug.

    Accented letters are reduced to their ASCII base letter, every run of other
    characters becomes a single ``sep``, and leading/trailing separators are removed.

    Args:
        text: the text to convert.
        sep: the separator placed between words.
        max_length: if given, the slug is cut to at most this many characters
            (never ending in a separator).
        lowercase: lower-case the result.

    >>> slugify("Hello, World!")
    'hello-world'
    >>> slugify("Crème brûlée", sep="_")
    'creme_brulee'
    """
    if max_length is not None and max_length < 0:
        raise ValueError("max_length must be >= 0")
    ascii_text = strip_accents(text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_WORD.sub(sep, ascii_text).strip(sep)
    if lowercase:
        slug = slug.lower()
    if max_length is not None and len(slug) > max_length:
        slug = slug[:max_length].rstrip(sep)
    return slug
