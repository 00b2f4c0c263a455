"""Identifier case conversion: snake_case, camelCase, PascalCase, kebab-case."""

from __future__ import annotations

import re

# An acronym followed by a capitalised word ("HTTPServer" -> "HTTP", "Server"),
# a capitalised or lower-case word, a run of capitals, or a run of digits.
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_words(text: str) -> list[str]:
    """Split an identifier or phrase into its words.

    Handles separators (space, ``_``, ``-``, ``.``), camelCase humps, acronyms and digits.

    >>> split_words("parseHTTPResponse2")
    ['parse', 'HTTP', 'Response', '2']
    >>> split_words("user_id-value")
    ['user', 'id', 'value']
    """
    return _WORD.findall(text)


def to_snake(text: str) -> str:
    """Convert to ``snake_case``.

    >>> to_snake("HTTPServerError")
    'http_server_error'
    """
    return "_".join(word.lower() for word in split_words(text))


def to_kebab(text: str) -> str:
    """Convert to ``kebab-case``.

    >>> to_kebab("backgroundColor")
    'background-color'
    """
    return "-".join(word.lower() for word in split_words(text))


def to_pascal(text: str) -> str:
    """Convert to ``PascalCase``.

    >>> to_pascal("user_account id")
    'UserAccountId'
    """
    return "".join(word[:1].upper() + word[1:].lower() for word in split_words(text))


def to_camel(text: str) -> str:
    """Convert to ``camelCase``.

    >>> to_camel("User account ID")
    'userAccountId'
    """
    pascal = to_pascal(text)
    return pascal[:1].lower() + pascal[1:]


def to_title(text: str, small_words: frozenset[str] = frozenset({"a", "an", "and", "of", "the", "to", "in"})) -> str:
    """Title-case a phrase, keeping small words lower-case except at the start.

    >>> to_title("the lord of the rings")
    'The Lord of the Rings'
    """
    words = text.split()
    out = []
    for i, word in enumerate(words):
        if i > 0 and word.lower() in small_words:
            out.append(word.lower())
        else:
            out.append(word[:1].upper() + word[1:].lower())
    return " ".join(out)
