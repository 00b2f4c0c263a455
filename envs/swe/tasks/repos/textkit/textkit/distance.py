"""Edit distances and fuzzy matching."""

from __future__ import annotations

from collections.abc import Iterable

from textkit._unicode import fold


def levenshtein(a: str, b: str, ignore_case: bool = False) -> int:
    """Return the Levenshtein edit distance between ``a`` and ``b``.

    The distance is the minimum number of single-character insertions, deletions
    and substitutions needed to turn one string into the other.

    >>> levenshtein("kitten", "sitting")
    3
    """
    if ignore_case:
        a, b = fold(a), fold(b)
    if a == b:
        return 0
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i]
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost))
        previous = current
    return previous[-1]


def hamming(a: str, b: str) -> int:
    """Return the number of positions at which two equal-length strings differ.

    Raises:
        ValueError: if the strings have different lengths.
    """
    if len(a) != len(b):
        raise ValueError(f"hamming distance needs equal lengths, got {len(a)} and {len(b)}")
    return sum(ca != cb for ca, cb in zip(a, b, strict=True))


def similarity(a: str, b: str, ignore_case: bool = False) -> float:
    """Return a similarity ratio in ``[0, 1]`` based on the edit distance.

    ``1.0`` means identical, ``0.0`` means nothing in common.

    >>> similarity("abcd", "abce")
    0.75
    """
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(a, b, ignore_case=ignore_case) / longest


def closest(word: str, candidates: Iterable[str], max_distance: int = 2, ignore_case: bool = False) -> str | None:
    """Return the candidate nearest to ``word``, or ``None`` if none is within ``max_distance``.

    When several candidates are equally near, the first one (in iteration order) wins.

    >>> closest("appel", ["apple", "apply", "ape"])
    'apple'
    """
    best: str | None = None
    best_distance = max_distance + 1
    for candidate in candidates:
        distance = levenshtein(word, candidate, ignore_case=ignore_case)
        if distance < best_distance:
            best, best_distance = candidate, distance
    return best
