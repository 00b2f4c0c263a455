"""Line wrapping, truncation and indentation."""

from __future__ import annotations


def wrap(text: str, width: int = 70, break_long_words: bool = True) -> list[str]:
    """Wrap ``text`` into lines of at most ``width`` characters.

    Whitespace (including newlines) is collapsed; words are never split unless a
    single word is longer than ``width`` and ``break_long_words`` is true.

    >>> wrap("the quick brown fox", 10)
    ['the quick', 'brown fox']
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    lines: list[str] = []
    current = ""
    for word in text.split():
        while break_long_words and len(word) > width:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:width])
            word = word[width:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def fill(text: str, width: int = 70, break_long_words: bool = True) -> str:
    """Like :func:`wrap`, but return a single string with newline-separated lines."""
    return "\n".join(wrap(text, width, break_long_words))


def truncate(text: str, length: int, suffix: str = "...", word_boundary: bool = False) -> str:
    """Shorten ``text`` to at most ``length`` characters, ending with ``suffix``.

    The suffix counts towards ``length``. With ``word_boundary``, the text is cut
    at the last space before the limit so that no word is split.

    >>> truncate("The quick brown fox", 10)
    'The qui...'
    >>> truncate("The quick brown fox", 12, word_boundary=True)
    'The quick...'
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if len(text) <= length:
        return text
    if length <= len(suffix):
        return suffix[:length]
    keep = length - len(suffix)
    cut = text[:keep]
    if word_boundary and not text[keep].isspace():
        space = cut.rfind(" ")
        if space > 0:
            cut = cut[:space]
    return cut.rstrip() + suffix


def indent(text: str, prefix: str, skip_empty: bool = True) -> str:
    """Prefix every line of ``text`` with ``prefix``.

    Lines that are empty or only whitespace are left alone when ``skip_empty`` is true.

    >>> indent("a\\n\\nb", "> ")
    '> a\\n\\n> b'
    """
    out = []
    for line in text.splitlines(keepends=True):
        if skip_empty and not line.strip():
            out.append(line)
        else:
            out.append(prefix + line)
    return "".join(out)
