"""`[n]` citation markers: the one parser of them, for LLM answers, briefing notes, chat history
and evaluation. A marker is a number in square brackets; the white space before it belongs to it,
so removing one leaves no gap before the punctuation that follows."""

from __future__ import annotations

import re

MARKER = re.compile(r"\s*\[(\d+)\]")
LEADING_MARKERS = re.compile(r"(?:\s*\[\d+\])+")
# What may still become a marker at the end of text that is being streamed.
PARTIAL_MARKER = re.compile(r"\s*\[\d*$|\s$")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:!?])")


def markers(text: str) -> list[int]:
    """The passage numbers of the [n] markers in `text`, in order."""
    return [int(m.group(1)) for m in MARKER.finditer(text)]


def strip_markers(text: str) -> str:
    """`text` without its markers."""
    return _SPACE_BEFORE_PUNCT.sub(r"\1", MARKER.sub("", text)).strip()


def drop_unknown_markers(text: str, count: int) -> str:
    """`text` without the [n] markers that name no passage (n outside 1..count)."""
    return MARKER.sub(lambda m: m.group(0) if 1 <= int(m.group(1)) <= count else "", text)


def with_markers(text: str, numbers: list[int] | tuple[int, ...]) -> str:
    """`text` ending with a marker for each number: "Talks resumed [2][7]"."""
    return text.rstrip() + " " + "".join(f"[{n}]" for n in numbers)
