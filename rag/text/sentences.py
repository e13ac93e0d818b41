"""Sentence spans: each paragraph of a text (a line, or a run of hard-wrapped lines) split by NLTK's
Punkt model (bundled with llama-index-core)."""

from __future__ import annotations

import re
from functools import cache

from rag.text.tokens import bundled_static_dir
from rag.types import Span

_LINE = re.compile(r"[^\n]+")
# A line that ends a sentence: its last character is terminal punctuation (a closing quote or
# bracket may follow).
_ENDS_SENTENCE = re.compile(r"[.!?:;][\"'”’)\]]*\s*$")


@cache
def _punkt():
    import nltk

    nltk_dir = str(bundled_static_dir() / "nltk_cache")
    if nltk_dir not in nltk.data.path:
        nltk.data.path.append(nltk_dir)
    from nltk.tokenize.punkt import PunktTokenizer

    return PunktTokenizer("english")


def paragraphs(text: str) -> list[tuple[int, int]]:
    """(start, end) of each paragraph: a line, or a run of hard-wrapped lines. Wire copy (Reuters)
    is wrapped at ~65 characters, so a line that does not end a sentence, or is followed by one
    that starts in lower case, runs on into the next line; a blank line always ends a paragraph."""
    out: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        start, end = line.span()
        if out and text[out[-1][1] : start] == "\n" and line.group().strip() and (
                not _ENDS_SENTENCE.search(text[out[-1][0] : out[-1][1]]) or line.group().lstrip()[:1].islower()):
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def split_sentences(text: str) -> list[Span]:
    """Sentence spans of `text`: each paragraph (`paragraphs`) split by NLTK's Punkt model."""
    punkt = _punkt()
    spans: list[Span] = []
    for base, end in paragraphs(text):
        for start, stop in punkt.span_tokenize(text[base:end]):
            spans.append(Span(base + start, base + stop))
    return [s for s in spans if text[s.start : s.end].strip()]
