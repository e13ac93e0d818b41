"""What an operator watches, in Prometheus' text format (prometheus_client).

HTTP requests by route and status (count and latency), requests in flight, rejections by the rate
and concurrency limits, time per stage (retrieve, answer, LLM, citation check), answers by backend
and abstention, LLM fallbacks by reason, ingest runs (articles by outcome, chunks, failures,
duration), and at each scrape the index's size (articles, chunks, sentences) and generations.

Each app has a registry of its own (no global: tests build many apps in one process); the route
is `rag.api.routes.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rag.errors import RagError
from rag.types import Answer, IngestReport

if TYPE_CHECKING:
    from rag.service import Service

# No `_created` series (a timestamp per label set): they double a scrape and nobody graphs them.
disable_created_metrics()

# Latency buckets (seconds) from a cache-warm /search (~5 ms) to an LLM answer near its timeout.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INGEST_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0)

# An LLM fallback's reason is a sentence naming details (a host, an error); the metric counts its
# kind, from the words the answerer's messages are built of.
FALLBACK_KINDS = (
    ("did not answer within", "timeout"), ("did not finish within", "timeout"), ("busy for", "busy"),
    ("unreachable", "unreachable"), ("failed", "error"), ("empty answer", "empty"),
    ("is supported by", "unsupported"), ("holds no sentence", "no_sentence"), ("context budget", "context_budget"),
)


def fallback_kind(reason: str) -> str:
    return next((kind for words, kind in FALLBACK_KINDS if words in reason), "other")


class Metrics:
    """The app's metrics; also the service's `Telemetry` (stage times, answers, ingest runs)."""

    def __init__(self, service: Callable[[], Service | None]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rag_http_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=r)
        self.latency = Histogram("rag_http_request_duration_seconds", "Time to answer an HTTP request, "
                                 "to its last byte", ["route", "method", "status"], buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.in_flight = Gauge("rag_http_requests_in_flight", "HTTP requests being served", registry=r)
        self.rejections = Counter("rag_rejections", "Requests refused by a limit: rate_limit (429), "
                                  "concurrency (503)", ["reason"], registry=r)
        self.stages = Histogram("rag_stage_duration_seconds", "Time per stage of answering",
                                ["stage"], buckets=LATENCY_BUCKETS, registry=r)
        self.answers = Counter("rag_answers", "Answers given", ["backend", "abstained"], registry=r)
        self.fallbacks = Counter("rag_llm_fallbacks", "LLM answers replaced by the extractive one, by reason",
                                 ["reason"], registry=r)
        self.ingest_articles = Counter("rag_ingest_articles", "Articles through ingest, by outcome",
                                       ["outcome"], registry=r)
        self.ingest_chunks = Counter("rag_ingest_chunks", "Chunks stored by ingest", registry=r)
        self.ingest_failures = Counter("rag_ingest_failures", "Items ingest refused (unreadable, empty, "
                                       "too large, duplicate id)", registry=r)
        self.ingest_duration = Histogram("rag_ingest_duration_seconds", "Time of one ingest run",
                                         buckets=INGEST_BUCKETS, registry=r)
        for outcome in ("ingested", "unchanged", "failed"):
            self.ingest_articles.labels(outcome)  # present at 0 from the start
        for reason in ("rate_limit", "concurrency"):
            self.rejections.labels(reason)
        r.register(_IndexCollector(service))

    # -- Telemetry ----------------------------------------------------------------------------
    def stage(self, name: str, seconds: float) -> None:
        self.stages.labels(name).observe(seconds)

    def answered(self, answer: Answer) -> None:
        self.answers.labels(answer.backend, str(answer.abstained).lower()).inc()
        if answer.fallback_reason:
            self.fallbacks.labels(fallback_kind(answer.fallback_reason)).inc()

    def ingested(self, report: IngestReport, seconds: float) -> None:
        self.ingest_articles.labels("ingested").inc(len(report.ingested))
        self.ingest_articles.labels("unchanged").inc(len(report.unchanged))
        self.ingest_articles.labels("failed").inc(len(report.failed))
        self.ingest_failures.inc(len(report.failed))
        self.ingest_chunks.inc(report.chunks)
        self.ingest_duration.observe(seconds)

    # -- HTTP ---------------------------------------------------------------------------------
    def request_done(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method, str(status)).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _IndexCollector(Collector):
    """The index's size and generations, read at each scrape (cheap: counts and the generation)."""

    def __init__(self, service: Callable[[], Service | None]) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("rag_docstore_up", "1 when the docstore answered this scrape")
        service = self.service()
        if service is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            articles, chunks = service.store.docstore.counts()
            generation = service.store.docstore.generation()
        except RagError:  # the database is down: the scrape still answers, saying so
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        indexes = service.store.indexes()
        for name, text, value in (
            ("rag_index_articles", "Articles in the docstore", articles),
            ("rag_index_chunks", "Chunks in the docstore", chunks),
            ("rag_index_sentences", "Sentence vectors searched by this process", len(indexes.vectors)),
            ("rag_docstore_generation", "The docstore's generation (bumps on every write)", generation),
            ("rag_index_generation", "Generation of this process's derived indexes", indexes.generation),
        ):
            family = GaugeMetricFamily(name, text)
            family.add_metric([], value)
            yield family
