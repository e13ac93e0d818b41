"""Thin routes: validate at the edge, call the service, shape the response."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse

from rag.api.auth import ERROR_RESPONSES, INGEST, NOT_FOUND, READ
from rag.api.schemas import (
    ArticleIn,
    ArticleOut,
    AskRequest,
    AskResponse,
    DeleteResponse,
    HealthResponse,
    IngestResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
    TimeWindowModel,
)
from rag.errors import InvalidInput, RagError
from rag.ingest import article_from_record
from rag.service import Service
from rag.types import Answer, Article, IngestFailure

# Writes wait this long for another writer (an ingest run) before answering 503 + Retry-After.
WRITE_LOCK_TIMEOUT_S = 30.0

router = APIRouter()


def get_service(request: Request) -> Service:
    return request.app.state.holder.get()


ServiceDep = Annotated[Service, Depends(get_service)]
ArticleId = Annotated[str, Path(min_length=1, max_length=128)]


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def health(request: Request) -> HealthResponse | JSONResponse:
    holder = request.app.state.holder
    if holder.service is None:
        status = "failed" if holder.error else "loading"
        body = HealthResponse(status=status, error=holder.error)
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthResponse(**holder.service.health())


@router.post("/ask", response_model=AskResponse, dependencies=READ,
             responses={**ERROR_RESPONSES,
                        200: {"content": {"text/event-stream": {}},
                              "description": "With `stream`: `token` events, then one `answer` event"}})
def ask(body: AskRequest, service: ServiceDep) -> AskResponse | StreamingResponse:
    # A sync route runs in the thread pool, as does a sync stream's iteration: a slow LLM never
    # blocks the event loop.
    if not body.stream:
        return AskResponse.of(service.ask(body.question, body.top_k, body.to_filters(), body.as_of))
    events = service.ask_stream(body.question, body.top_k, body.to_filters(), body.as_of)
    return StreamingResponse(_sse(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(events: Iterator[str | Answer]) -> Iterator[str]:
    """Server-sent events: `token` ({"text"}) as the answer is written, `answer` (AskResponse) last."""
    for event in events:
        if isinstance(event, Answer):
            yield f"event: answer\ndata: {AskResponse.of(event).model_dump_json()}\n\n"
        else:
            yield f"event: token\ndata: {json.dumps({'text': event})}\n\n"


@router.post("/search", response_model=SearchResponse, dependencies=READ, responses=ERROR_RESPONSES)
def search(body: SearchRequest, service: ServiceDep) -> SearchResponse:
    passages, timed = service.search_when(body.query, body.top_k, body.to_filters(), body.as_of)
    return SearchResponse(results=[SearchResult.of(p) for p in passages], as_of=timed.as_of,
                          time_window=TimeWindowModel.of(timed.window))


@router.post("/articles", response_model=IngestResponse, dependencies=INGEST, responses=ERROR_RESPONSES)
def add_articles(
    body: Annotated[ArticleIn | list[ArticleIn], Body(description="One article or a list of them")],
    service: ServiceDep,
) -> IngestResponse:
    """Ingest articles. A list may partly fail (each failure is listed, the rest is stored);
    a single article, or a list in which every item failed, answers 422."""
    single = not isinstance(body, list)
    records = [body] if single else body
    if not records:
        raise InvalidInput("the list of articles is empty")
    items: list[Article | IngestFailure] = []
    for i, record in enumerate(records):
        origin = "request" if single else f"request item {i}"
        size = len((record.text or record.html or "").encode("utf-8", "surrogatepass"))
        if size > service.settings.max_article_bytes:  # the same limit as for files
            items.append(IngestFailure(origin, f"article is {size} bytes, over the "
                                               f"{service.settings.max_article_bytes} byte limit"))
            continue
        try:
            items.append(article_from_record(record.record(), origin=origin))
        except RagError as error:
            items.append(IngestFailure(origin, str(error)))
    report = service.ingest(items, lock_timeout=WRITE_LOCK_TIMEOUT_S)
    if report.failed and not (report.ingested or report.unchanged):
        raise InvalidInput("; ".join(str(f) for f in report.failed))
    return IngestResponse.of(report)


@router.get("/articles/{article_id}", response_model=ArticleOut, dependencies=READ,
            responses=ERROR_RESPONSES | NOT_FOUND)
def get_article(article_id: ArticleId, service: ServiceDep) -> ArticleOut:
    return ArticleOut.of(service.article(article_id))


@router.delete("/articles/{article_id}", response_model=DeleteResponse, dependencies=INGEST,
               responses=ERROR_RESPONSES | NOT_FOUND)
def delete_article(article_id: ArticleId, service: ServiceDep) -> DeleteResponse:
    service.delete(article_id, lock_timeout=WRITE_LOCK_TIMEOUT_S)
    return DeleteResponse(deleted=article_id)
