"""`build_service(settings)`: the one place where the parts are built and wired together."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from rag.answer import Answerer
from rag.answer.backends import build_backend
from rag.answer.citations import SupportScorer
from rag.answer.dated import latest_answer, stamped
from rag.answer.extractive.answerer import ExtractiveAnswerer, why_not
from rag.answer.llm import LLMAnswerer
from rag.briefing.briefer import Briefer
from rag.briefing.llm import MapReduce
from rag.briefing.types import Briefing, Progress
from rag.chat import Chat, ChatReply, Turn
from rag.chunking import Chunker
from rag.config import Settings
from rag.embedding import Embedder, build_embedder
from rag.embedding.cache import CachedEmbedder
from rag.embedding.model import bundled_model_path
from rag.embedding.wordpieces import WordPieceVectors
from rag.errors import InvalidInput, WriterBusy
from rag.indexer import Indexer, no_progress
from rag.indexer import Progress as IngestProgress
from rag.ingest.fetch import Fetcher, FetchPolicy
from rag.ingest.fetch.crawl import Reader
from rag.ingest.fetch.poller import BATCH, Poller, new_source
from rag.retrieval import Retriever
from rag.store import QdrantTarget, Store
from rag.telemetry import Telemetry, TelemetryRelay, timed
from rag.text.terms import key_pattern
from rag.types import (
    NO_FILTERS,
    Answer,
    Article,
    ArticlePage,
    Facets,
    Feedback,
    Filters,
    IngestFailure,
    IngestReport,
    Passage,
    Source,
)
from rag.when.asking import Asked, asked, latest_first, parse_as_of, time_zone

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

AsOf = str | datetime | date | None  # the asking date: an ISO string, a datetime or a date; None = now
# Passages a "latest" question draws newer evidence from (its answer still reads the first top_k).
LATEST_POOL = 20


@dataclass
class Service:
    """What the HTTP API and the CLI call; every use case is one method."""

    settings: Settings
    embedder: Embedder
    store: Store
    indexer: Indexer
    retriever: Retriever
    answerer: Answerer
    briefer: Briefer
    llm: LLM | None = None  # rewrites chat follow-ups; None: the offline rewrite
    reader: Reader | None = None  # URLs → articles, through the SSRF-safe fetcher
    # Stage times, answers and ingest runs go here; the app points it at its metrics (`observe`).
    telemetry: TelemetryRelay = field(default_factory=TelemetryRelay)
    chats: Chat = field(init=False)

    def __post_init__(self) -> None:
        # Chat answers through `ask`, so that an answerer swapped in later (cross-validation
        # does) answers chat too.
        self.chats = Chat(self.ask, self.llm, self.settings.max_question_chars)

    def read_url(self, url: str, category: str | None = None,
                 seen: set[str] | None = None) -> Iterator[Article | IngestFailure]:
        """The articles at a URL: a feed's or sitemap's items, or the page (failures included);
        ids in `seen` (shared by the URLs of one run) are passed over, so each story comes once."""
        return self.reader.read(url, category, seen)

    def fetch_page(self, url: str, category: str | None = None) -> Article:
        """One article page, fetched and extracted; FetchRefused / FetchFailed / InvalidInput say why not."""
        return self.reader.page(url, category)

    def add_source(self, url: str, every_s: int, category: str | None = None) -> Source:
        """Start polling a feed, sitemap or page (re-adding one changes its interval and category).
        A URL that could never be fetched (scheme, private address) is refused now."""
        return self.store.docstore.add_source(new_source(url, every_s, category, self.reader.fetcher.policy.allow_hosts))

    def sources(self) -> list[Source]:
        return self.store.docstore.sources()

    def remove_source(self, source_id: str) -> None:
        self.store.docstore.remove_source(source_id)

    def poller(self) -> Poller:
        """A poller of this service's sources (not started)."""
        return Poller(self.store.docstore, self.reader, lambda items: self.ingest(items),
                      batch=min(self.settings.ingest_batch_size, BATCH))

    def observe(self, telemetry: Telemetry) -> None:
        """Report to `telemetry` from now on (the app does, with its metrics)."""
        self.telemetry.target = telemetry

    def ask(self, question: str, top_k: int | None = None, filters: Filters = NO_FILTERS,
            as_of: AsOf = None) -> Answer:
        """The answer as of `as_of` (default now): its time words ("last week", "latest") read
        against that date, nothing dated after it retrieved, its evidence's dates stated."""
        question = self._check_question(question)
        asking = self.when(question, filters, as_of)
        top_k = top_k or self.settings.top_k
        with timed(self.telemetry, "retrieve"):
            passages = self._retrieve(asking, top_k)
        with timed(self.telemetry, "answer"):
            if self.answerer.reads_dates:
                # It reads the question as asked: the prompt gives the asking date and each passage's.
                answer = self.answerer.answer(question, passages[:top_k], as_of=asking.as_of)
            elif asking.latest:
                answer = latest_answer(self.answerer.answer, asking.query, passages, top_k, self.zone)
            else:
                answer = stamped(self.answerer.answer(asking.query, passages), self.zone)
        answer = self._true_reason(dataclasses.replace(answer, as_of=asking.as_of, time_window=asking.window),
                                   asking, filters)
        self.telemetry.answered(answer)
        return answer

    def ask_stream(self, question: str, top_k: int | None = None, filters: Filters = NO_FILTERS,
                   as_of: AsOf = None) -> Iterator[str | Answer]:
        """Checks the question and retrieves now (errors surface before any streaming); the
        iterator then yields the answer's text as it is written, and the checked `Answer` last."""
        question = self._check_question(question)
        if not self.answerer.reads_dates:  # the extractive answer comes whole, dated
            return iter([self.ask(question, top_k, filters, as_of)])
        asking = self.when(question, filters, as_of)
        top_k = top_k or self.settings.top_k
        with timed(self.telemetry, "retrieve"):
            passages = self._retrieve(asking, top_k)[:top_k]

        def events() -> Iterator[str | Answer]:
            for event in self.answerer.stream(question, passages, as_of=asking.as_of):
                yield (self._true_reason(dataclasses.replace(event, as_of=asking.as_of, time_window=asking.window),
                                         asking, filters)
                       if isinstance(event, Answer) else event)

        return self._reported(events())

    def _reported(self, events: Iterator[str | Answer]) -> Iterator[str | Answer]:
        """`events`, with the time to the checked answer and the answer itself reported."""
        started = time.perf_counter()
        for event in events:
            if isinstance(event, Answer):
                self.telemetry.stage("answer", time.perf_counter() - started)
                self.telemetry.answered(event)
            yield event

    def search(self, query: str, top_k: int | None = None, filters: Filters = NO_FILTERS,
               as_of: AsOf = None) -> list[Passage]:
        return self.search_when(query, top_k, filters, as_of)[0]

    def search_when(self, query: str, top_k: int | None = None, filters: Filters = NO_FILTERS,
                    as_of: AsOf = None) -> tuple[list[Passage], Asked]:
        """The passages, and when the query was asked (the window its time words name)."""
        asking = self.when(self._check_question(query, "query"), filters, as_of)
        top_k = top_k or self.settings.top_k
        return self._retrieve(asking, top_k)[:top_k], asking

    def when(self, question: str, filters: Filters = NO_FILTERS, as_of: AsOf = None) -> Asked:
        """`question` asked on `as_of` (default now, in `RAG_TIMEZONE`): its window and filters."""
        self._check_filters(filters)
        docstore = self.store.docstore
        return asked(question, filters, parse_as_of(as_of, self.zone), docstore.latest_published(),
                     docstore.has_dated_between)

    @property
    def zone(self) -> ZoneInfo:
        return time_zone(self.settings.timezone)

    def _retrieve(self, asking: Asked, top_k: int) -> list[Passage]:
        """Passages for the question without its time words, inside its window and not after its
        asking date; for a "latest" question a wider pool (newer articles that answer are looked
        for in it), those that answer newest first for an answerer that reads dates."""
        if not asking.latest:
            return self.retriever.search(asking.query, top_k, asking.filters)
        pool = self.retriever.search(asking.query, max(top_k, LATEST_POOL), asking.filters)
        return latest_first(pool) if self.answerer.reads_dates else pool

    def brief(self, topic: str, filters: Filters = NO_FILTERS, max_articles: int | None = None,
              progress: Progress | None = None, as_of: AsOf = None) -> Briefing:
        """A briefing over every matching article (not a top-k) dated up to `as_of`; the topic's
        time words ("Texaco last week") become a window, and with one it says what changed."""
        if len(topic) > self.settings.max_question_chars:
            raise InvalidInput(f"topic is {len(topic)} characters, over the {self.settings.max_question_chars} limit")
        if not topic.strip():
            return self.briefer.brief(topic, filters, max_articles, progress)  # its error names the topic
        asking = self.when(topic.strip(), filters, as_of)
        briefing = self.briefer.brief(asking.query, asking.filters, max_articles, progress,
                                      windowed=asking.window is not None or bool(filters.since or filters.until))
        return dataclasses.replace(briefing, as_of=asking.as_of, time_window=asking.window)

    def chat(self, turns: Sequence[Turn], top_k: int | None = None, filters: Filters = NO_FILTERS,
             as_of: AsOf = None) -> ChatReply:
        """Answer the last user turn, rewritten into a standalone question from the others."""
        return self.chats.reply(turns, top_k, filters, as_of)

    def ingest(self, items: Iterable[Article | IngestFailure], lock_timeout: float | None = None,
               progress: IngestProgress = no_progress) -> IngestReport:
        """Store what is new or changed; `progress` hears how many more items are done."""
        started = time.perf_counter()
        report = self.indexer.add(items, lock_timeout=lock_timeout, progress=progress)
        self.telemetry.ingested(report, time.perf_counter() - started)
        return report

    def delete(self, article_id: str, lock_timeout: float | None = None) -> None:
        self.indexer.delete(article_id, lock_timeout=lock_timeout)

    def article(self, article_id: str) -> Article:
        return self.store.docstore.get_article(article_id)

    def articles(self, filters: Filters = NO_FILTERS, query: str | None = None, limit: int = 50,
                 offset: int = 0) -> ArticlePage:
        """Articles inside the filters whose title or id holds `query`, newest first, a page at a time."""
        return self.store.docstore.list_articles(filters, query, limit, offset)

    def facets(self) -> Facets:
        return self.store.docstore.facets()

    def add_feedback(self, feedback: Feedback) -> Feedback:
        if feedback.verdict not in ("up", "down"):
            raise InvalidInput(f"verdict must be 'up' or 'down', got {feedback.verdict!r}")
        return self.store.docstore.add_feedback(feedback)

    def feedback(self, since: datetime | None = None) -> list[Feedback]:
        return self.store.docstore.feedback(since)

    def health(self) -> dict:
        indexes = self.store.indexes()
        articles, chunks = self.store.docstore.counts()
        # An ingest run commits articles batch by batch but publishes the indexes once at its end:
        # until then the stored ones outnumber those a question can find.
        searchable = len(set(indexes.chunk_articles.values()))
        return {
            "status": "ok" if self.store.load_problem is None else "degraded",
            "articles": articles,
            "articles_searchable": searchable,
            "chunks": chunks,
            "model": self.embedder.name,
            "dimension": self.embedder.dimension,
            "index_generation": indexes.generation,
            "index_problem": self.store.load_problem,
            "sources": [{"id": s.id, "url": s.url, "status": s.status, "last_fetched_at": s.last_fetched_at,
                         "last_new_article_at": s.last_new_article_at, "last_error": s.last_error}
                        for s in self.store.docstore.sources()],
        }

    def warm_up(self) -> None:
        """Searches before the first request, so that no caller pays for first runs: OpenVINO
        compiles its kernels per input width (a question is padded to a multiple of 16 word
        pieces: a short and a long one cover the usual widths), ONNX Runtime sizes its buffers,
        and BM25 and FAISS touch their pages. Reads only; an empty index is fine."""
        long = "What did the minister say about the budget deficit and pensions in the statement last week?"
        for question in ("warm up", long):
            self.retriever.search(question, self.settings.top_k, NO_FILTERS)

    def _check_question(self, question: str, name: str = "question") -> str:
        question = question.strip()
        if not question:
            raise InvalidInput(f"{name} must not be empty")
        if not any(ch.isalnum() for ch in question):  # "\u200b", "???": nothing to look for
            raise InvalidInput(f"{name} holds no word to search for: {question!r}")
        if len(question) > self.settings.max_question_chars:
            raise InvalidInput(
                f"{name} is {len(question)} characters, over the {self.settings.max_question_chars} limit"
            )
        return question

    def _true_reason(self, answer: Answer, asking: Asked, filters: Filters) -> Answer:
        """A refusal may say a term is missing only if no article inside the filters holds it: the
        passages read are a few of many ("Six Nations" is in 97 files when the passages lack it).
        Nothing after the asking date counts, but only filters or a window the asker named narrow
        what the refusal speaks of."""
        if not answer.abstained or not answer.missing:
            return answer
        absent = [term for term in answer.missing
                  if not any(key_pattern(term).search(f"{title}\n{text}".lower())
                             for _, title, text in self.store.docstore.mentioning(term, asking.filters))]
        scope = "articles" if filters.empty and asking.window is None else "articles inside the filters"
        closest = answer.closest.title if answer.closest else None
        return dataclasses.replace(answer, text=why_not(absent, closest, scope), missing=tuple(absent))

    def _check_filters(self, filters: Filters) -> None:
        """A category no article carries is a mistake to name, not an empty result to explain away."""
        if filters.category is None:
            return
        known = sorted(category for category, _ in self.store.docstore.facets().categories)
        if filters.category not in known:
            listed = ", ".join(known) if known else "none: no stored article has a category"
            raise InvalidInput(f"unknown category {filters.category!r}; the categories are: {listed}")

    def close(self) -> None:
        self.answerer.close()
        self.store.close()


def build_service(settings: Settings, embedder: Embedder | None = None,
                  pieces: WordPieceVectors | None = None) -> Service:
    """Load the models (unless passed in, e.g. shared by tests or by training) and open the index."""
    embedder = embedder or build_embedder(settings)
    backend = build_backend(settings)  # before the store opens: a bad setting leaves nothing open
    store = Store(settings.index_dir, embedder.name, embedder.dimension, settings.faiss_index,
                  QdrantTarget.from_settings(settings), settings.docstore_dsn())
    chunker = Chunker(budget=settings.chunk_tokens, overlap=settings.chunk_overlap_tokens)
    # Question-time code reads the sentence vectors ingest stored; only the question is embedded.
    stored = CachedEmbedder(embedder, store.docstore.cached_vectors)
    # Retrieval's re-scoring and the answerer's soft overlaps read the bundled model's word pieces,
    # whichever encoder runs.
    pieces = pieces or WordPieceVectors(bundled_model_path())
    retriever = Retriever(store, stored, pieces, settings.candidates, settings.dense_weight,
                          settings.article_weight, settings.coverage_weight)
    extractive = ExtractiveAnswerer.with_model(stored, pieces, settings.answerer_model, settings.abstention)
    support = SupportScorer(stored, settings.support_threshold)
    answerer: Answerer = extractive
    telemetry = TelemetryRelay()
    if backend is not None:
        answerer = LLMAnswerer(
            backend.llm, backend.name, support, extractive,
            timeout_s=settings.llm_timeout_s, retries=settings.llm_retries,
            context_tokens=settings.llm_context_tokens, retryable=backend.retryable,
            not_retryable=backend.not_retryable, serialize=backend.serialize, stops_on=backend.stops_on,
            telemetry=telemetry,
        )
    indexer = Indexer(chunker, embedder, store, batch_size=settings.ingest_batch_size)
    try:  # an index from before sentence vectors gets them now, unless an ingest run is at it
        indexer.backfill(lock_timeout=0)
    except WriterBusy:
        pass
    llm = backend.llm if backend is not None else None
    return Service(
        settings=settings,
        embedder=stored,
        store=store,
        indexer=indexer,
        retriever=retriever,
        answerer=answerer,
        briefer=Briefer(retriever, store.docstore, stored, MapReduce(llm, support) if llm is not None else None,
                        settings.brief_max_articles),
        llm=llm,
        reader=Reader(Fetcher(FetchPolicy.from_settings(settings)), settings.feed_max_items),
        telemetry=telemetry,
    )
