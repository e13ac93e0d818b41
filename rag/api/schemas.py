"""Request and response bodies of the HTTP API (pydantic at the edge, dataclasses inside)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from rag.briefing.types import Briefing
from rag.types import (
    Answer,
    Article,
    ArticlePage,
    ArticleSummary,
    Citation,
    Extract,
    Facets,
    Feedback,
    Filters,
    IngestReport,
    Passage,
    SentenceCheck,
    Source,
    TimeWindow,
)

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    """Only what the document promises, `YYYY-MM-DD`: pydantic alone would also take 0 or "0"
    (seconds since 1970) for a date."""
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
        return value
    raise ValueError("expected a date as a string 'YYYY-MM-DD'")


# Strict types at the edge: what the OpenAPI document says, and nothing pydantic would coerce into
# it (`"stream": 0` is not a boolean, `"top_k": true` not an integer).
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
StrictBool = Annotated[bool, Strict()]
StrictInt = Annotated[int, Strict()]


class FiltersModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str | None = Field(None, max_length=200)
    source: str | None = Field(None, max_length=200)
    since: IsoDate | None = Field(None, description="Inclusive, YYYY-MM-DD")
    until: IsoDate | None = Field(None, description="Inclusive, YYYY-MM-DD")

    @model_validator(mode="after")
    def _ordered(self) -> FiltersModel:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        return self

    def to_filters(self) -> Filters:
        return Filters(self.category, self.source, self.since, self.until)


AS_OF_DESCRIPTION = ("The asking date: an ISO date (meaning the end of that day) or datetime (without an offset: "
                     "in RAG_TIMEZONE); default now. The question's time words are read against it, and nothing "
                     "dated after it is retrieved or cited")


def check_as_of(value: str | None) -> str | None:
    if value is not None:
        from rag.errors import InvalidInput
        from rag.when.asking import parse_as_of

        try:
            parse_as_of(value, UTC)
        except InvalidInput as error:
            raise ValueError(str(error)) from None
    return value


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_k: StrictInt | None = Field(None, ge=1, le=50, description="Passages to draw on (default from settings)")
    filters: FiltersModel | None = None
    as_of: str | None = Field(None, max_length=40, description=AS_OF_DESCRIPTION)

    _check_as_of = field_validator("as_of")(check_as_of)

    def to_filters(self) -> Filters:
        return self.filters.to_filters() if self.filters else Filters()


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


# The hard cap of question-like fields; the service enforces RAG_MAX_QUESTION_CHARS (at most this),
# and the app's OpenAPI document states that setting as their maxLength.
MAX_QUESTION_CHARS = 10_000


class AskRequest(_Query):
    question: str = Field(..., min_length=1, max_length=MAX_QUESTION_CHARS)
    stream: StrictBool = Field(False, description="Answer as text/event-stream: `token` events, then `answer`")

    _check = field_validator("question")(_not_blank)


class SearchRequest(_Query):
    query: str = Field(..., min_length=1, max_length=MAX_QUESTION_CHARS)

    _check = field_validator("query")(_not_blank)


class TimeWindowModel(BaseModel):
    """The days a question's time words name, inclusive; null: open on that side."""

    start: date | None
    end: date | None
    phrase: str = Field(..., description="The time words as the question wrote them")

    @classmethod
    def of(cls, window: TimeWindow | None) -> TimeWindowModel | None:
        return cls(start=window.start, end=window.end, phrase=window.phrase) if window else None


class CitationModel(BaseModel):
    n: int
    article_id: str
    title: str
    chunk_id: str
    quote: str = Field(..., description="Verbatim article text: article.text[start:end]")
    start: int
    end: int
    score: float
    published_at: datetime | None = Field(None, description="The cited article's date: when the evidence was true")
    date_source: str = Field("none", description="Where that date came from: record, meta, url, dateline or none")

    @classmethod
    def of(cls, citation: Citation) -> CitationModel:
        return cls(**{f: getattr(citation, f) for f in cls.model_fields})


class SentenceModel(BaseModel):
    text: str = Field(..., description="A sentence the LLM wrote, with its [n] markers")
    cites: list[int]
    supported: bool = Field(..., description="Whether the passages it cites support it (else it is "
                                             "left out of `answer`)")
    score: float

    @classmethod
    def of(cls, s: SentenceCheck) -> SentenceModel:
        return cls(text=s.text, cites=list(s.cites), supported=s.supported, score=s.score)


class ExtractModel(BaseModel):
    answer: str = Field(..., description="The short answer: sentence[start:end]")
    sentence: str = Field(..., description="The whole supporting sentence, verbatim (the first citation's quote)")
    start: int = Field(..., description="Offsets of the short answer inside `sentence`")
    end: int
    confidence: float = Field(..., description="Calibrated probability that the short answer is right "
                                               "(on SQuAD dev-a, by article folds)")

    @classmethod
    def of(cls, extract: Extract) -> ExtractModel:
        return cls(answer=extract.answer, sentence=extract.sentence, start=extract.start, end=extract.end,
                   confidence=round(extract.confidence, 4))


class AskResponse(BaseModel):
    answer: str = Field(..., description="What to show first, with [n] markers: the short answer when it is "
                                         "confident, else the supporting sentence with the short answer in "
                                         "**…**; or why it abstained")
    extract: ExtractModel | None = Field(
        None, description="Extractive answers: the short answer, its sentence and the confidence")
    abstained: bool
    backend: str = Field(..., description="Who wrote the answer: extractive, llamacpp or openai")
    citations: list[CitationModel] = Field(
        ..., description="n is the number the answer's [n] markers use (for an LLM answer: the passage "
                         "number in its prompt, so numbers may skip)")
    fallback_reason: str | None = Field(
        None, description="Why the LLM's answer was replaced by the extractive one")
    sentences: list[SentenceModel] = Field(
        default_factory=list, description="LLM answers: every sentence it wrote, with its support check")
    closest: CitationModel | None = Field(
        None, description="When abstaining: the nearest passage found, shown for orientation, not as support")
    as_of: datetime | None = Field(None, description="The asking date the answer holds for")
    time_window: TimeWindowModel | None = Field(
        None, description="The window the question's time words name (it filtered retrieval), or null")

    @classmethod
    def of(cls, answer: Answer) -> AskResponse:
        return cls(answer=answer.text, abstained=answer.abstained, backend=answer.backend,
                   extract=ExtractModel.of(answer.extract) if answer.extract and not answer.abstained else None,
                   citations=[CitationModel.of(c) for c in answer.citations],
                   fallback_reason=answer.fallback_reason,
                   sentences=[SentenceModel.of(s) for s in answer.sentences],
                   closest=CitationModel.of(answer.closest) if answer.closest else None,
                   as_of=answer.as_of, time_window=TimeWindowModel.of(answer.time_window))


class SearchResult(BaseModel):
    article_id: str
    chunk_id: str
    title: str
    text: str
    score: float
    start: int
    end: int
    source: str | None
    url: str | None
    published_at: datetime | None
    date_source: str
    category: str | None
    scores: dict[str, float]

    @classmethod
    def of(cls, p: Passage) -> SearchResult:
        return cls(article_id=p.article_id, chunk_id=p.chunk_id, title=p.title, text=p.text, score=p.score,
                   start=p.start, end=p.end, source=p.source, url=p.url, published_at=p.published_at,
                   date_source=p.date_source, category=p.category, scores=p.scores)


class SearchResponse(BaseModel):
    results: list[SearchResult]
    as_of: datetime | None = Field(None, description="The asking date: nothing dated after it was searched")
    time_window: TimeWindowModel | None = Field(None, description="The window the query's time words name, or null")


class ArticleIn(BaseModel):
    """One article to ingest: exactly one of `text` and `html`, or only a `url` (and a `category`)
    to fetch the page and extract it."""

    # The schema says "exactly one of text and html as a string, or a url alone" in JSON Schema's
    # words, so that clients and fuzzers know it; the validator below enforces the same.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["text"], "properties": {"text": {"type": "string"}}},
        {"required": ["html"], "properties": {"html": {"type": "string"}}},
        {"required": ["url"], "not": {"anyOf": [{"required": ["text"]}, {"required": ["html"]}]}},
    ]})

    id: str | None = Field(None, max_length=128)
    title: str | None = Field(None, max_length=1_000)
    text: str | None = None
    html: str | None = None
    source: str | None = Field(None, max_length=200)
    url: str | None = Field(None, max_length=2_000)
    published_at: str | None = Field(None, description="ISO 8601 date or date-time")
    category: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _text_or_html(self) -> ArticleIn:
        if self.text is not None and self.html is not None:
            raise ValueError("give the article as `text` or as `html`: exactly one of them")
        if self.text is None and self.html is None and self.url is None:
            raise ValueError("give exactly one of `text` and `html`, or a `url` alone to fetch the page")
        return self

    def record(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)

    @property
    def to_fetch(self) -> bool:
        """Only a URL: the page is fetched (its own title, source, date and canonical URL are used)."""
        return self.url is not None and self.text is None and self.html is None

    def fetch_conflicts(self) -> list[str]:
        """Fields given beside a URL to fetch that the page itself decides."""
        return [name for name in ("id", "title", "source", "published_at") if getattr(self, name) is not None]


class FailureModel(BaseModel):
    origin: str
    reason: str


class DuplicateModel(BaseModel):
    id: str
    duplicate_of: str = Field(..., description="The stored article with the same title and text")


class IngestResponse(BaseModel):
    ingested: list[str]
    unchanged: list[str]
    duplicates: list[DuplicateModel] = Field(
        default_factory=list, description="Not stored: another article already holds the same title and text")
    failed: list[FailureModel]

    @classmethod
    def of(cls, report: IngestReport) -> IngestResponse:
        return cls(ingested=report.ingested, unchanged=report.unchanged,
                   duplicates=[DuplicateModel(id=i, duplicate_of=kept) for i, kept in report.duplicates],
                   failed=[FailureModel(origin=f.origin, reason=f.reason) for f in report.failed])


class ArticleOut(BaseModel):
    id: str
    title: str
    text: str
    source: str | None
    url: str | None
    published_at: datetime | None
    date_source: str = Field(..., description="Where published_at came from: record (the record's field), meta "
                                              "(the page's date metadata), url, dateline, feed or sitemap (the "
                                              "entry that listed a fetched page), or none")
    category: str | None
    author: str | None = None

    @classmethod
    def of(cls, a: Article) -> ArticleOut:
        return cls(id=a.id, title=a.title, text=a.text, source=a.source, url=a.url,
                   published_at=a.published_at, category=a.category, author=a.author, date_source=a.date_source)


class DeleteResponse(BaseModel):
    deleted: str


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        ..., description="What is wrong: a message, or a list of field errors (FastAPI's validation)")


# -- polled sources -------------------------------------------------------------------------------
class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(..., min_length=1, max_length=2_000, description="An RSS or Atom feed, a sitemap or a page")
    every: str = Field("15m", max_length=20, description="How often to poll it: 90s, 15m, 1h, 1h30m, 1d")
    category: str | None = Field(None, max_length=200, description="Category given to its articles")

    @field_validator("every")
    @classmethod
    def _interval(cls, value: str) -> str:
        from rag.ingest.fetch.poller import parse_every

        parse_every(value)  # ValueError → 422 naming the field
        return value

    def every_s(self) -> int:
        from rag.ingest.fetch.poller import parse_every

        return parse_every(self.every)


class SourceStatus(BaseModel):
    id: str
    url: str
    status: str = Field(..., description="new (not polled yet), ok (the last poll worked) or failing (backing off)")
    last_fetched_at: datetime | None = Field(None, description="Last answer from the source (200 or 304)")
    last_new_article_at: datetime | None = Field(None, description="Last poll that stored a new or changed article")
    last_error: str | None = Field(None, description="What went wrong in the last poll (the source, or items of it)")


class SourceOut(SourceStatus):
    every_s: int
    category: str | None
    added_at: datetime | None
    last_error_at: datetime | None
    failures: int = Field(..., description="Polls failed in a row (the backoff doubles the interval with each)")
    next_poll_at: datetime | None

    @classmethod
    def of(cls, s: Source) -> SourceOut:
        return cls(id=s.id, url=s.url, status=s.status, every_s=s.every_s, category=s.category,
                   added_at=s.added_at, last_fetched_at=s.last_fetched_at,
                   last_new_article_at=s.last_new_article_at, last_error=s.last_error,
                   last_error_at=s.last_error_at, failures=s.failures, next_poll_at=s.next_poll_at)


class SourcesResponse(BaseModel):
    sources: list[SourceOut]


class SourceDeleted(BaseModel):
    deleted: str


class HealthResponse(BaseModel):
    status: str = Field(..., description="ok, degraded (index rebuilt at load), loading or failed")
    articles: int | None = Field(None, description="Articles stored in the docstore")
    articles_searchable: int | None = Field(
        None, description="Articles the published indexes hold: fewer than `articles` while an ingest run "
                          "is writing (it publishes when it finishes)")
    chunks: int | None = None
    model: str | None = None
    dimension: int | None = None
    index_generation: int | None = None
    index_problem: str | None = None
    sources: list[SourceStatus] | None = Field(None, description="Each polled source and how its last poll went")
    error: str | None = None


# -- briefings ----------------------------------------------------------------------------------
class BriefRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str = Field(..., min_length=1, max_length=MAX_QUESTION_CHARS)
    since: IsoDate | None = Field(None, description="Only articles published on or after (YYYY-MM-DD)")
    until: IsoDate | None = Field(None, description="Only articles published on or before (YYYY-MM-DD)")
    category: str | None = Field(None, max_length=200)
    source: str | None = Field(None, max_length=200)
    max_articles: StrictInt | None = Field(None, ge=1, le=10_000,
                                     description="Articles read at most, most relevant first (default from settings)")
    format: Literal["json", "md"] = Field("json", description="json, or md for Markdown (text/markdown)")
    as_of: str | None = Field(None, max_length=40, description=AS_OF_DESCRIPTION)

    _check = field_validator("topic")(_not_blank)
    _check_as_of = field_validator("as_of")(check_as_of)

    @model_validator(mode="after")
    def _ordered(self) -> BriefRequest:
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"since ({self.since}) is after until ({self.until})")
        return self

    def to_filters(self) -> Filters:
        return Filters(self.category, self.source, self.since, self.until)


class EvidenceModel(BaseModel):
    n: int
    article_id: str
    quote: str = Field(..., description="Verbatim article text: article.text[start:end]")
    start: int
    end: int


class BriefPointModel(BaseModel):
    text: str = Field(..., description="The point, ending with its [n] markers")
    citations: list[int]
    story: int = Field(..., description="Index into `stories`")
    evidence: list[EvidenceModel] = Field(..., description="The sentence of each cited article behind the point")


class TimelineEntryModel(BaseModel):
    date: date
    text: str
    citations: list[int]


class BriefSourceModel(BaseModel):
    n: int
    article_id: str
    title: str
    source: str | None
    published_at: datetime | None
    category: str | None
    url: str | None
    duplicates: list[str] = Field(..., description="Ids of near-duplicate copies merged into this article")


class StoryModel(BaseModel):
    title: str
    articles: int


class ChangeModel(BaseModel):
    story: int = Field(..., description="Index into `stories`")
    first: date
    last: date
    before: str = Field(..., description="The headline of the story's first article in the window")
    after: str = Field(..., description="The headline of its last")
    citations: list[int] = Field(..., description="Source numbers of those two articles")


class BriefResponse(BaseModel):
    topic: str
    title: str
    overview: str
    points: list[BriefPointModel]
    timeline: list[TimelineEntryModel]
    sources: list[BriefSourceModel]
    stories: list[StoryModel]
    articles_matched: int = Field(..., description="Articles inside the filters that are about the topic")
    articles_read: int = Field(..., description="Of those, read (at most max_articles, most relevant first)")
    duplicates_merged: int
    backend: str
    fallback_reason: str | None = None
    changes: list[ChangeModel] = Field(
        default_factory=list, description="With a window (the topic's time words, or since/until): each story's "
                                          "first and last article across it, in date order")
    as_of: datetime | None = None
    time_window: TimeWindowModel | None = None

    @classmethod
    def of(cls, b: Briefing) -> BriefResponse:
        return cls(
            topic=b.topic, title=b.title, overview=b.overview,
            points=[BriefPointModel(text=p.text, citations=list(p.citations), story=p.story,
                                    evidence=[EvidenceModel(n=e.n, article_id=e.article_id, quote=e.quote,
                                                            start=e.start, end=e.end) for e in p.evidence])
                    for p in b.points],
            timeline=[TimelineEntryModel(date=e.date, text=e.text, citations=list(e.citations)) for e in b.timeline],
            sources=[BriefSourceModel(n=s.n, article_id=s.article_id, title=s.title, source=s.source,
                                      published_at=s.published_at, category=s.category, url=s.url,
                                      duplicates=list(s.duplicates)) for s in b.sources],
            stories=[StoryModel(title=s.title, articles=s.articles) for s in b.stories],
            articles_matched=b.articles_matched, articles_read=b.articles_read,
            duplicates_merged=b.duplicates_merged, backend=b.backend, fallback_reason=b.fallback_reason,
            changes=[ChangeModel(story=c.story, first=c.first, last=c.last, before=c.before, after=c.after,
                                 citations=list(c.citations)) for c in b.changes],
            as_of=b.as_of, time_window=TimeWindowModel.of(b.time_window),
        )


# -- the staff page's routes (any client may use them) ------------------------------------------
class MeResponse(BaseModel):
    keys_required: bool = Field(..., description="Whether this server asks for an API key at all")
    key: str | None = Field(None, description="The key's label (key- + 8 hex digits), never the key")
    scopes: list[str] = Field(..., description="What the key may do; every scope when no keys are configured")


class FacetValue(BaseModel):
    value: str
    articles: int


class FacetsResponse(BaseModel):
    categories: list[FacetValue]
    sources: list[FacetValue]
    first_published: datetime | None
    last_published: datetime | None
    articles: int
    undated: int = Field(..., description="Articles without a date: any date filter leaves them out")

    @classmethod
    def of(cls, f: Facets) -> FacetsResponse:
        return cls(categories=[FacetValue(value=v, articles=n) for v, n in f.categories],
                   sources=[FacetValue(value=v, articles=n) for v, n in f.sources],
                   first_published=f.first_published, last_published=f.last_published,
                   articles=f.articles, undated=f.undated)


class ArticleSummaryModel(BaseModel):
    id: str
    title: str
    source: str | None
    url: str | None
    published_at: datetime | None
    category: str | None
    ingested_at: datetime

    @classmethod
    def of(cls, a: ArticleSummary) -> ArticleSummaryModel:
        return cls(**{f: getattr(a, f) for f in cls.model_fields})


class ArticleListResponse(BaseModel):
    total: int = Field(..., description="Articles matching, over every page")
    offset: int
    articles: list[ArticleSummaryModel]

    @classmethod
    def of(cls, page: ArticlePage) -> ArticleListResponse:
        return cls(total=page.total, offset=page.offset, articles=[ArticleSummaryModel.of(a) for a in page.articles])


class FeedbackRequest(BaseModel):
    """A reader's verdict on an answer, with the answer as it was shown."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, max_length=10_000)
    answer: str = Field(..., max_length=100_000)
    citations: list[CitationModel] = Field(default_factory=list, max_length=100)
    backend: str = Field(..., min_length=1, max_length=100)
    verdict: Literal["up", "down"]
    comment: str | None = Field(None, max_length=5_000)

    _check = field_validator("question")(_not_blank)

    def to_feedback(self, key: str | None) -> Feedback:
        return Feedback(question=self.question, answer=self.answer,
                        citations=tuple(c.model_dump(mode="json") for c in self.citations), backend=self.backend,
                        verdict=self.verdict, comment=(self.comment or "").strip() or None, key=key)


class FeedbackModel(BaseModel):
    id: int
    created_at: datetime
    question: str
    answer: str
    citations: list[dict[str, Any]]
    backend: str
    verdict: Literal["up", "down"]
    comment: str | None
    key: str | None = Field(..., description="Label of the API key that sent it (None when keys are off)")

    @classmethod
    def of(cls, f: Feedback) -> FeedbackModel:
        return cls(id=f.id, created_at=f.created_at, question=f.question, answer=f.answer,
                   citations=list(f.citations), backend=f.backend, verdict=f.verdict, comment=f.comment, key=f.key)


class FeedbackList(BaseModel):
    feedback: list[FeedbackModel]
