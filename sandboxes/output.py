"""Bytes from a sandbox to text a model and a Parquet row can hold (reliability A8, A9).

Output is read as bytes, never with `text=True`: a 0xFF byte or a multibyte character split at the cut
must not raise. Invalid UTF-8 becomes U+FFFD, terminal escape sequences are removed (they forge log lines
and waste tokens), other control characters except newline and tab are shown as `\\xNN`, and what was cut
from the middle is said in a marker.
"""

from __future__ import annotations

import base64
import codecs
import re

from agentenv.messages import cap_text

__all__ = ["cap_text", "clean_text", "decode_bytes", "decode_output", "truncation_marker"]

ANSI_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])"
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def truncation_marker(dropped: int) -> str:
    return f"\n[... truncated {dropped} bytes ...]\n"


def clean_text(text: str) -> str:
    """Remove terminal escapes, fold `\\r\\n` and show other control characters (and lone surrogates)."""
    text = ANSI_ESCAPE.sub("", text).replace("\r\n", "\n")
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else "\ufffd", text)


def decode_bytes(data: bytes) -> str:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return clean_text(decoder.decode(data, final=True))


def decode_output(head_b64: str, tail_b64: str, dropped: int) -> str:
    head = base64.b64decode(head_b64) if head_b64 else b""
    tail = base64.b64decode(tail_b64) if tail_b64 else b""
    if not dropped:
        return decode_bytes(head + tail)
    return decode_bytes(head) + truncation_marker(dropped) + decode_bytes(tail)


