"""The staff web page (`GET /`; its files under `/static`, all from this origin: the machines have
no internet) and the small routes it needs beyond the API's, which any client may use as well:

    GET  /me              the key's label and scopes, or that no keys are configured   (any key)
    GET  /facets          categories and sources with article counts, the span of dates (read)
    GET  /articles        articles without their text: search in titles, filters, pages (read)
    POST /articles/files  one file as `rag ingest` reads it (.txt .html .json .jsonl)  (ingest)
    POST /feedback        a verdict on an answer, with an optional comment             (read)
    GET  /feedback        every verdict stored, or those since a time                  (admin)

The page itself calls only public routes: /ask (server-sent events), /v1/chat/completions for
follow-ups, /briefings, /articles/{id}, and these.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from rag.api.auth import ADMIN, ANY_KEY, ERROR_RESPONSES, INGEST, READ, SCOPES
from rag.api.routes import WRITE_LOCK_TIMEOUT_S, ServiceDep
from rag.api.schemas import (
    ArticleListResponse,
    FacetsResponse,
    FeedbackList,
    FeedbackModel,
    FeedbackRequest,
    IngestResponse,
    MeResponse,
)
from rag.errors import InvalidInput
from rag.ingest import read_upload
from rag.types import Filters, IngestReport

STATIC = Path(__file__).parent / "static"

# The page loads nothing from elsewhere, and nothing may be injected into it from elsewhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["page"], responses=ERROR_RESPONSES)


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


@router.get("/me", response_model=MeResponse, dependencies=ANY_KEY)
def me(request: Request) -> MeResponse:
    """Who the key is and what it may do: the page shows upload and delete only to `ingest`."""
    key = request.state.api_key
    if key is None:
        return MeResponse(keys_required=False, key=None, scopes=list(SCOPES))
    scopes = list(SCOPES) if "admin" in key.scopes else [s for s in SCOPES if s in key.scopes]
    return MeResponse(keys_required=True, key=key.label, scopes=scopes)


@router.get("/facets", response_model=FacetsResponse, dependencies=READ)
def facets(service: ServiceDep) -> FacetsResponse:
    return FacetsResponse.of(service.facets())


@router.get("/articles", response_model=ArticleListResponse, dependencies=READ)
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
    """Articles newest first (undated last), without their text."""
    if since and until and since > until:
        raise InvalidInput(f"since ({since}) is after until ({until})")
    page = service.articles(Filters(category, source, since, until), q, limit, offset)
    return ArticleListResponse.of(page)


@router.post("/articles/files", response_model=IngestResponse, dependencies=INGEST,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_file(
    request: Request, service: ServiceDep,
    name: Annotated[str, Query(min_length=1, max_length=255,
                               description="The file's name; its suffix says how to read it")],
) -> IngestResponse:
    """Ingest one file, sent as the body, exactly as `rag ingest` reads it from disk. Its articles'
    ids derive from the base name, so the same file sent again replaces them. A file of which
    nothing could be stored answers 422 with the reasons; otherwise failures are listed."""
    data = await request.body()  # after the key check: no keyless client makes us read a body

    def ingest() -> IngestReport:  # parsing a large page takes a while: off the event loop too
        items = read_upload(name, data, max_bytes=service.settings.max_article_bytes)
        return service.ingest(items, lock_timeout=WRITE_LOCK_TIMEOUT_S)

    report = await run_in_threadpool(ingest)
    if report.failed and not (report.ingested or report.unchanged):
        raise InvalidInput("; ".join(str(f) for f in report.failed))
    return IngestResponse.of(report)


@router.post("/feedback", response_model=FeedbackModel, status_code=201, dependencies=READ)
def add_feedback(body: FeedbackRequest, request: Request, service: ServiceDep) -> FeedbackModel:
    """Store a reader's verdict on an answer (with the question, answer, citations and backend as
    shown), labelled with the key that sent it: a newsroom's own evaluation set grows from these."""
    key = request.state.api_key
    return FeedbackModel.of(service.add_feedback(body.to_feedback(key.label if key else None)))


@router.get("/feedback", response_model=FeedbackList, dependencies=ADMIN)
def list_feedback(
    service: ServiceDep,
    since: Annotated[datetime | None, Query(description="Only feedback given at or after (ISO 8601)")] = None,
) -> FeedbackList:
    return FeedbackList(feedback=[FeedbackModel.of(f) for f in service.feedback(since)])
