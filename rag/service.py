"""`build_service(settings)`: the one place where the parts are built and wired together."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from rag.answer import Answerer
from rag.answer.backends import build_backend
from rag.answer.citations import SupportScorer
from rag.answer.dated import latest_answer, stamped
from rag.answer.extractive.answerer import ExtractiveAnswerer
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
from rag.indexer import Indexer
from rag.retrieval import Retriever
from rag.store import QdrantTarget, Store
from rag.types import NO_FILTERS, Answer, Article, Filters, IngestFailure, IngestReport, Passage
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
    chats: Chat = field(init=False)

    def __post_init__(self) -> None:
        # Chat answers through `ask`, so that an answerer swapped in later (cross-validation
        # does) answers chat too.
        self.chats = Chat(self.ask, self.llm, self.settings.max_question_chars)

    def ask(self, question: str, top_k: int | None = None, filters: Filters = NO_FILTERS,
            as_of: AsOf = None) -> Answer:
        """The answer as of `as_of` (default now): its time words ("last week", "latest") read
        against that date, nothing dated after it retrieved, its evidence's dates stated."""
        question = self._check_question(question)
        timed = self.when(question, filters, as_of)
        top_k = top_k or self.settings.top_k
        passages = self._retrieve(timed, top_k)
        if self.answerer.reads_dates:
            # It reads the question as asked: the prompt gives the asking date and each passage's.
            answer = self.answerer.answer(question, passages[:top_k], as_of=timed.as_of)
        elif timed.latest:
            answer = latest_answer(self.answerer.answer, timed.query, passages, top_k, self.zone)
        else:
            answer = stamped(self.answerer.answer(timed.query, passages), self.zone)
        return dataclasses.replace(answer, as_of=timed.as_of, time_window=timed.window)

    def ask_stream(self, question: str, top_k: int | None = None, filters: Filters = NO_FILTERS,
                   as_of: AsOf = None) -> Iterator[str | Answer]:
        """Checks the question and retrieves now (errors surface before any streaming); the
        iterator then yields the answer's text as it is written, and the checked `Answer` last."""
        question = self._check_question(question)
        if not self.answerer.reads_dates:  # the extractive answer comes whole, dated
            return iter([self.ask(question, top_k, filters, as_of)])
        timed = self.when(question, filters, as_of)
        top_k = top_k or self.settings.top_k
        passages = self._retrieve(timed, top_k)[:top_k]

        def events() -> Iterator[str | Answer]:
            for event in self.answerer.stream(question, passages, as_of=timed.as_of):
                yield (dataclasses.replace(event, as_of=timed.as_of, time_window=timed.window)
                       if isinstance(event, Answer) else event)

        return events()

    def search(self, query: str, top_k: int | None = None, filters: Filters = NO_FILTERS,
               as_of: AsOf = None) -> list[Passage]:
        return self.search_when(query, top_k, filters, as_of)[0]

    def search_when(self, query: str, top_k: int | None = None, filters: Filters = NO_FILTERS,
                    as_of: AsOf = None) -> tuple[list[Passage], Asked]:
        """The passages, and when the query was asked (the window its time words name)."""
        timed = self.when(self._check_question(query, "query"), filters, as_of)
        top_k = top_k or self.settings.top_k
        return self._retrieve(timed, top_k)[:top_k], timed

    def when(self, question: str, filters: Filters = NO_FILTERS, as_of: AsOf = None) -> Asked:
        """`question` asked on `as_of` (default now, in `RAG_TIMEZONE`): its window and filters."""
        docstore = self.store.docstore
        return asked(question, filters, parse_as_of(as_of, self.zone), docstore.latest_published(),
                     docstore.has_dated_between)

    @property
    def zone(self) -> ZoneInfo:
        return time_zone(self.settings.timezone)

    def _retrieve(self, timed: Asked, top_k: int) -> list[Passage]:
        """Passages for the question without its time words, inside its window and not after its
        asking date; for a "latest" question a wider pool (newer articles that answer are looked
        for in it), those that answer newest first for an answerer that reads dates."""
        if not timed.latest:
            return self.retriever.search(timed.query, top_k, timed.filters)
        pool = self.retriever.search(timed.query, max(top_k, LATEST_POOL), timed.filters)
        return latest_first(pool) if self.answerer.reads_dates else pool

    def brief(self, topic: str, filters: Filters = NO_FILTERS, max_articles: int | None = None,
              progress: Progress | None = None, as_of: AsOf = None) -> Briefing:
        """A briefing over every matching article (not a top-k) dated up to `as_of`; the topic's
        time words ("Texaco last week") become a window, and with one it says what changed."""
        if len(topic) > self.settings.max_question_chars:
            raise InvalidInput(f"topic is {len(topic)} characters, over the {self.settings.max_question_chars} limit")
        if not topic.strip():
            return self.briefer.brief(topic, filters, max_articles, progress)  # its error names the topic
        timed = self.when(topic.strip(), filters, as_of)
        briefing = self.briefer.brief(timed.query, timed.filters, max_articles, progress,
                                      windowed=timed.window is not None or bool(filters.since or filters.until))
        return dataclasses.replace(briefing, as_of=timed.as_of, time_window=timed.window)

    def chat(self, turns: Sequence[Turn], top_k: int | None = None, filters: Filters = NO_FILTERS,
             as_of: AsOf = None) -> ChatReply:
        """Answer the last user turn, rewritten into a standalone question from the others."""
        return self.chats.reply(turns, top_k, filters, as_of)

    def ingest(self, items: Iterable[Article | IngestFailure], lock_timeout: float | None = None) -> IngestReport:
        return self.indexer.add(items, lock_timeout=lock_timeout)

    def delete(self, article_id: str, lock_timeout: float | None = None) -> None:
        self.indexer.delete(article_id, lock_timeout=lock_timeout)

    def article(self, article_id: str) -> Article:
        return self.store.docstore.get_article(article_id)

    def health(self) -> dict:
        indexes = self.store.indexes()
        articles, chunks = self.store.docstore.counts()
        return {
            "status": "ok" if self.store.load_problem is None else "degraded",
            "articles": articles,
            "chunks": chunks,
            "model": self.embedder.name,
            "dimension": self.embedder.dimension,
            "index_generation": indexes.generation,
            "index_problem": self.store.load_problem,
        }

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

    def close(self) -> None:
        self.answerer.close()
        self.store.close()


def build_service(settings: Settings, embedder: Embedder | None = None,
                  pieces: WordPieceVectors | None = None) -> Service:
    """Load the models (unless passed in, e.g. shared by tests or by training) and open the index."""
    embedder = embedder or build_embedder(settings)
    backend = build_backend(settings)  # before the store opens: a bad setting leaves nothing open
    store = Store(settings.index_dir, embedder.name, embedder.dimension, settings.faiss_index,
                  QdrantTarget.from_settings(settings))
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
    if backend is not None:
        answerer = LLMAnswerer(
            backend.llm, backend.name, support, extractive,
            timeout_s=settings.llm_timeout_s, retries=settings.llm_retries,
            context_tokens=settings.llm_context_tokens, retryable=backend.retryable,
            not_retryable=backend.not_retryable, serialize=backend.serialize,
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
    )
