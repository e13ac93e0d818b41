"""What a briefing is made of: the records it returns (`Briefing` and its parts) and those its steps
pass between them (`Doc`, `DocSentence`, `Point`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from rag.types import Article, Span, TimeWindow

# (stage, done, total): "matching", "reading", "embedding", "map", "combine"
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class Evidence:
    """The sentence of a cited article that supports a point, verbatim (article.text[start:end])."""

    n: int
    article_id: str
    quote: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class BriefPoint:
    text: str  # ends with its [n] markers
    citations: tuple[int, ...]
    story: int  # index into Briefing.stories
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    date: date
    text: str
    citations: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """How one story moved across the briefing's window: its first and its last dated article."""

    story: int  # index into Briefing.stories
    first: date
    last: date
    before: str  # the first article's headline
    after: str  # the last article's headline
    citations: tuple[int, int]  # their source numbers


@dataclass(frozen=True, slots=True)
class BriefSource:
    n: int
    article_id: str
    title: str
    source: str | None
    published_at: object  # datetime | None
    category: str | None
    url: str | None
    duplicates: tuple[str, ...] = ()  # ids of the merged copies of this article


@dataclass(frozen=True, slots=True)
class Story:
    title: str  # the headline of its most relevant article
    articles: int


@dataclass(frozen=True, slots=True)
class Briefing:
    topic: str
    title: str
    overview: str
    points: tuple[BriefPoint, ...]
    timeline: tuple[TimelineEntry, ...]
    sources: tuple[BriefSource, ...]
    stories: tuple[Story, ...]
    articles_matched: int
    articles_read: int
    duplicates_merged: int
    backend: str = "extractive"
    fallback_reason: str | None = None
    changes: tuple[Change, ...] = ()  # with a window: what changed across it, story by story
    as_of: datetime | None = None  # the asking date: nothing dated after it was read
    time_window: TimeWindow | None = None  # the window the topic's time words named


# -- records the steps pass between them -----------------------------------------------------------
@dataclass(slots=True)
class Doc:
    """A matched article as the steps read it: its sentences, relevance, vector and story."""

    article: Article
    spans: list[Span]
    relevance: float
    vector: np.ndarray
    duplicates: list[str] = field(default_factory=list)
    story: int = 0
    coverage: float = 1.0  # share of the topic's (IDF-weighted) terms the article holds


@dataclass(frozen=True, slots=True)
class DocSentence:
    """A sentence of a matched article, verbatim."""

    doc: int  # index into the docs
    span: Span
    text: str
    position: int  # in its article


@dataclass(slots=True)
class Point:
    """A point before numbering: its text, the docs it cites and the sentence behind each."""

    text: str  # without markers
    docs: list[int]  # cited docs, first is the main one
    evidence: dict[int, DocSentence]  # doc → supporting sentence
    story: int
