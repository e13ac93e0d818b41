"""The frozen records that flow between stages: ingest → chunk → store → retrieve → answer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Article:
    """A cleaned article. `text` is the text every offset and quote refers to."""

    id: str
    title: str
    text: str
    source: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    category: str | None = None
    origin: str = ""  # where it was read from (file path, request item); for messages only
    # Where `published_at` came from: record, meta, url, dateline or none (`rag.ingest.dates`).
    # Not in `content_hash`: it follows from the fields that are.
    date_source: str = "none"

    @property
    def content_hash(self) -> str:
        """Hash of everything stored about the article: equal hashes mean nothing to re-ingest."""
        fields = [self.title, self.text, self.source, self.url, self.category,
                  self.published_at.isoformat() if self.published_at else None]
        return hashlib.sha256(json.dumps(fields, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IngestFailure:
    """An item that could not be read or stored; `origin` names the file (and line) or request item."""

    origin: str
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Span:
    """Character offsets [start, end) into an article's text."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """A run of whole sentences of one article that fits the embedding window."""

    article_id: str
    n: int
    start: int
    end: int
    text: str  # == article.text[start:end]
    sentences: tuple[Span, ...]  # article offsets of the sentences inside this chunk

    @property
    def id(self) -> str:
        return chunk_id(self.article_id, self.n)


def chunk_id(article_id: str, n: int) -> str:
    """Stable chunk ids, so that citations survive a rebuild of the derived indexes."""
    return f"{article_id}:{n}"


@dataclass(frozen=True, slots=True)
class Filters:
    """Metadata filters; `since` and `until` are inclusive dates (UTC days): an article needs a date
    inside them. A question's time window is `window_start` (inclusive) to `window_end` (exclusive),
    instants: it keeps out every article dated outside it, and `as_of` (an instant) every article
    dated after it; undated articles pass both (nothing says they are outside)."""

    category: str | None = None
    source: str | None = None
    since: date | None = None
    until: date | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    as_of: datetime | None = None

    def __post_init__(self) -> None:
        if self.category:  # categories are stored lower-case ("Business" finds "business")
            object.__setattr__(self, "category", self.category.lower())

    @property
    def empty(self) -> bool:
        return not (self.category or self.source or self.since or self.until or self.window_start
                    or self.window_end or self.as_of)


NO_FILTERS = Filters()


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieved chunk with its article's metadata and its fused score."""

    chunk_id: str
    article_id: str
    title: str
    text: str
    start: int
    end: int
    sentences: tuple[Span, ...]
    score: float
    source: str | None = None
    url: str | None = None
    published_at: datetime | None = None
    category: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # per retriever, for explanations
    date_source: str = "none"

    def quote(self, span: Span) -> str:
        """The article text at `span`, which must lie inside this passage."""
        return self.text[span.start - self.start : span.end - self.start]


@dataclass(frozen=True, slots=True)
class Citation:
    """A numbered pointer from an answer to the verbatim article text supporting it."""

    n: int
    article_id: str
    title: str
    chunk_id: str
    quote: str  # == article.text[start:end]
    start: int
    end: int
    score: float
    published_at: datetime | None = None  # the cited article's date: when the evidence was true
    date_source: str = "none"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Days `start`..`end` (inclusive; None: open) a question's time words name, and the words."""

    start: date | None
    end: date | None
    phrase: str


@dataclass(frozen=True, slots=True)
class SentenceCheck:
    """One sentence of an LLM answer, checked against the passages it cites."""

    text: str  # with its [n] markers
    cites: tuple[int, ...]
    supported: bool
    score: float  # support score in [0, 1]; compared with Settings.support_threshold


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer whose [n] markers match `citations`; `abstained` when the articles lack it."""

    text: str
    abstained: bool
    backend: str
    citations: tuple[Citation, ...] = ()
    fallback_reason: str | None = None
    closest: Citation | None = None  # when abstaining: the nearest sentence found, not a claim
    sentences: tuple[SentenceCheck, ...] = ()  # LLM answers: every sentence it wrote, checked
    as_of: datetime | None = None  # the asking date the answer holds for
    time_window: TimeWindow | None = None  # the window the question's time words named


@dataclass(slots=True)
class IngestReport:
    """What one ingest run did, item by item."""

    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[IngestFailure] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed
