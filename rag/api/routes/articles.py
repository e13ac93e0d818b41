"""Articles: POST /articles (ingest one or a list), POST /articles/files (one file, read as
`rag ingest` reads it), GET /articles (list: search titles, filters, pages), GET /facets (what the
filters can choose from), GET and DELETE /articles/{id}."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from rag.api.auth import ERROR_RESPONSES, INGEST, NOT_FOUND, READ, UPSTREAM
from rag.api.deps import ServiceDep
from rag.api.schemas import (
    ArticleIn,
    ArticleListResponse,
    ArticleOut,
    DeleteResponse,
    FacetsResponse,
    IngestResponse,
)
from rag.errors import InvalidInput, RagError
from rag.ingest import article_from_record, read_upload
from rag.service import Service
from rag.types import Article, Filters, IngestFailure, IngestReport

# Writes wait this long for another writer (an ingest run) before answering 503 + Retry-After.
WRITE_LOCK_TIMEOUT_S = 30.0

router = APIRouter(tags=["articles"])
ArticleId = Annotated[str, Path(min_length=1, max_length=128)]


@router.post("/articles", response_model=IngestResponse, dependencies=INGEST,
             responses=ERROR_RESPONSES | UPSTREAM)
def add_articles(
    body: Annotated[ArticleIn | list[ArticleIn], Body(description="One article or a list of them")],
    service: ServiceDep,
) -> IngestResponse:
    """Ingest articles. A list may partly fail (each failure is listed, the rest is stored);
    a single article, or a list in which every item failed, answers 422. An article given as a
    `url` alone is fetched (SSRF-safe) and extracted; its server failing answers 502."""
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
            items.append(_fetched(record, service) if record.to_fetch else
                         article_from_record(record.record(), origin=origin))
        except RagError as error:
            if single and record.to_fetch:
                raise  # refused (422) or the page's server failed (502): the status says which
            items.append(IngestFailure(origin, str(error)))
    report = service.ingest(items, lock_timeout=WRITE_LOCK_TIMEOUT_S)
    if report.failed and not (report.ingested or report.unchanged or report.duplicates):
        raise InvalidInput("; ".join(str(f) for f in report.failed))
    return IngestResponse.of(report)


def _fetched(record: ArticleIn, service: Service) -> Article:
    conflicts = record.fetch_conflicts()
    if conflicts:
        raise InvalidInput(f"{', '.join(conflicts)}: given with a url alone the page is fetched and its own "
                           "metadata is used; send text or html to set them")
    return service.fetch_page(record.url, record.category)


@router.get("/articles/{article_id}", response_model=ArticleOut, dependencies=READ,
            responses=ERROR_RESPONSES | NOT_FOUND)
def get_article(article_id: ArticleId, service: ServiceDep) -> ArticleOut:
    return ArticleOut.of(service.article(article_id))


@router.delete("/articles/{article_id}", response_model=DeleteResponse, dependencies=INGEST,
               responses=ERROR_RESPONSES | NOT_FOUND)
def delete_article(article_id: ArticleId, service: ServiceDep) -> DeleteResponse:
    service.delete(article_id, lock_timeout=WRITE_LOCK_TIMEOUT_S)
    return DeleteResponse(deleted=article_id)


@router.post("/articles/files", response_model=IngestResponse, dependencies=INGEST, responses=ERROR_RESPONSES,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_file(
    request: Request, service: ServiceDep,
    name: Annotated[str, Query(min_length=1, max_length=255,
                               description="The file's name; its suffix says how to read it")],
) -> IngestResponse:
    """Ingest one file, sent as the body, exactly as `rag ingest` reads it from disk (.txt .html
    .json .jsonl). Its articles' ids derive from the base name, so the same file sent again
    replaces them. A file of which nothing could be stored answers 422 with the reasons;
    otherwise failures are listed."""
    data = await request.body()  # after the key check: no keyless client makes us read a body

    def ingest() -> IngestReport:  # parsing a large page takes a while: off the event loop too
        items = read_upload(name, data, max_bytes=service.settings.max_article_bytes)
        return service.ingest(items, lock_timeout=WRITE_LOCK_TIMEOUT_S)

    report = await run_in_threadpool(ingest)
    if report.failed and not (report.ingested or report.unchanged):
        raise InvalidInput("; ".join(str(f) for f in report.failed))
    return IngestResponse.of(report)


@router.get("/articles", response_model=ArticleListResponse, dependencies=READ, responses=ERROR_RESPONSES)
def list_articles(
    service: ServiceDep,
    q: Annotated[str | None, Query(max_length=200, description="Words in the title or id, any case")] = None,
    category: Annotated[str | None, Query(max_length=200)] = None,
    source: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[date | None, Query(description="Published on or after, YYYY-MM-DD")] = None,
    until: Annotated[date | None, Query(description="Published on or before, YYYY-MM-DD")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> ArticleListResponse:
    """Articles newest first (undated last, then by title), without their text, with the total."""
    if since and until and since > until:
        raise InvalidInput(f"since ({since}) is after until ({until})")
    return ArticleListResponse.of(service.articles(Filters(category, source, since, until), q, limit, offset))


@router.get("/facets", response_model=FacetsResponse, dependencies=READ, responses=ERROR_RESPONSES)
def facets(service: ServiceDep) -> FacetsResponse:
    """Categories and sources with their article counts, the first and last date, and how many
    articles have none: what a filter can choose from."""
    return FacetsResponse.of(service.facets())
