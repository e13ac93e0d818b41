"""Articles: POST /articles (ingest one or a list), GET and DELETE /articles/{id}."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path

from rag.api.auth import ERROR_RESPONSES, INGEST, NOT_FOUND, READ
from rag.api.deps import ServiceDep
from rag.api.schemas import ArticleIn, ArticleOut, DeleteResponse, IngestResponse
from rag.errors import InvalidInput, RagError
from rag.ingest import article_from_record
from rag.types import Article, IngestFailure

# Writes wait this long for another writer (an ingest run) before answering 503 + Retry-After.
WRITE_LOCK_TIMEOUT_S = 30.0

router = APIRouter(tags=["articles"])
ArticleId = Annotated[str, Path(min_length=1, max_length=128)]


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
