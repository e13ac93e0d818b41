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
    author: str | None = None
    # Where `published_at` came from: record, meta, url, dateline (`rag.ingest.dates`), feed or
    # sitemap (`rag.ingest.fetch`), or none. Not in `content_hash`: it follows from the fields that are.
    date_source: str = "none"

    @property
    def text_key(self) -> str:
        """Hash of the title and text alone, case and spacing aside: the same story arriving by
        two paths (two folders, a file and a record) has one key, and is stored once."""
        words = " ".join(f"{self.title}\n{self.text}".casefold().split())
        return hashlib.sha256(words.encode("utf-8", "surrogatepass")).hexdigest()

    @property
    def content_hash(self) -> str:
        """Hash of everything stored about the article: equal hashes mean nothing to re-ingest."""
        fields = [self.title, self.text, self.source, self.url, self.category,
                  self.published_at.isoformat() if self.published_at else None]
        if self.author or self.date_source:  # only when set: articles stored before they existed keep their hash
            fields += [self.author, self.date_source]
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
class Extract:
    """An extractive answer as a reader needs it: the short answer, inside the whole supporting
    sentence (verbatim: the first citation's quote), and how likely the short answer is right."""

    answer: str  # == sentence[start:end]
    sentence: str
    start: int  # offsets of the short answer inside `sentence`
    end: int
    confidence: float  # calibrated P(the short answer is right); see rag/answer/extractive/confidence.py

    def marked(self, mark: str = "**") -> str:
        """The sentence with the short answer marked: `… filed with the **Santa Clara court**.`"""
        if self.start == 0 and self.end == len(self.sentence):
            return self.sentence
        return f"{self.sentence[: self.start]}{mark}{self.answer}{mark}{self.sentence[self.end :]}"


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
    extract: Extract | None = None  # extractive answers: short answer, its sentence, confidence
    # When abstaining: question terms the passages read lack (the service checks every article).
    missing: tuple[str, ...] = ()
    as_of: datetime | None = None  # the asking date the answer holds for
    time_window: TimeWindow | None = None  # the window the question's time words named


@dataclass(slots=True)
class IngestReport:
    """What one ingest run did, item by item."""

    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[IngestFailure] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    chunks: int = 0  # chunks stored for the articles ingested
    # (id, id of the stored article with the same title and text): not stored a second time
    duplicates: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True, slots=True)
class Source:
    """A feed, sitemap or page that `rag serve` polls, with how its last polls went."""

    id: str
    url: str
    every_s: int
    category: str | None = None
    added_at: datetime | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_fetched_at: datetime | None = None
    last_new_article_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0
    next_poll_at: datetime | None = None

    @property
    def status(self) -> str:
        """`new` (not fetched yet), `ok` (the last poll read the source: some of its items may
        have failed, see `last_error`), `failing` (it could not, and it is backing off)."""
        if self.failures:
            return "failing"
        return "ok" if self.last_fetched_at else "new"


@dataclass(frozen=True, slots=True)
class SourceItem:
    """An entry of a source's feed whose article is stored (or that failed), as last seen."""

    url: str
    signature: str
    etag: str | None = None
    last_modified: str | None = None
    article_id: str | None = None


@dataclass(frozen=True, slots=True)
class ArticleSummary:
    """An article without its text, for lists."""

    id: str
    title: str
    source: str | None
    url: str | None
    published_at: datetime | None
    category: str | None
    ingested_at: datetime


@dataclass(frozen=True, slots=True)
class ArticlePage:
    """One page of a listing: `total` articles match, `articles` are those from `offset` on."""

    total: int
    offset: int
    articles: tuple[ArticleSummary, ...]


@dataclass(frozen=True, slots=True)
class Facets:
    """The values the index's articles hold, with how many articles hold each (most first), and
    the span of their dates: what a filter can choose from."""

    categories: tuple[tuple[str, int], ...]
    sources: tuple[tuple[str, int], ...]
    first_published: datetime | None
    last_published: datetime | None
    articles: int
    undated: int


@dataclass(frozen=True, slots=True)
class Feedback:
    """A reader's verdict on one answer: what was asked, what came back (with its citations as
    the API gave them), the verdict and an optional comment. `key` is the API key's label (never
    the key), None when keys are off. Kept so that a newsroom can build its own evaluation set."""

    question: str
    answer: str
    citations: tuple[dict, ...]
    backend: str
    verdict: str  # "up" or "down"
    comment: str | None = None
    key: str | None = None
    created_at: datetime | None = None  # set when stored
    id: int | None = None  # set when stored
