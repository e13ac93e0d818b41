"""Sentence spans: each line of a text is a paragraph, split by NLTK's Punkt model (bundled with
llama-index-core)."""

from __future__ import annotations

import re
from functools import cache

from rag.text.tokens import bundled_static_dir
from rag.types import Span

_LINE = re.compile(r"[^\n]+")


@cache
def _punkt():
    import nltk

    nltk_dir = str(bundled_static_dir() / "nltk_cache")
    if nltk_dir not in nltk.data.path:
        nltk.data.path.append(nltk_dir)
    from nltk.tokenize.punkt import PunktTokenizer

    return PunktTokenizer("english")


def split_sentences(text: str) -> list[Span]:
    """Sentence spans of `text`: each line is a paragraph, split by NLTK's Punkt model."""
    punkt = _punkt()
    spans: list[Span] = []
    for line in _LINE.finditer(text):
        base = line.start()
        for start, end in punkt.span_tokenize(line.group()):
            spans.append(Span(base + start, base + end))
    return [s for s in spans if text[s.start : s.end].strip()]
