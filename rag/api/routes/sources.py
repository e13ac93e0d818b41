"""Polled sources: GET /sources (read), POST /sources and DELETE /sources/{id} (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from rag.api.auth import ADMIN, ERROR_RESPONSES, READ
from rag.api.deps import ServiceDep
from rag.api.schemas import ErrorResponse, SourceDeleted, SourceIn, SourceOut, SourcesResponse

router = APIRouter(tags=["sources"], responses=ERROR_RESPONSES)
SourceId = Annotated[str, Path(min_length=1, max_length=200)]
NO_SOURCE = {404: {"model": ErrorResponse, "description": "No source with that id"}}


@router.get("/sources", response_model=SourcesResponse, dependencies=READ)
def list_sources(service: ServiceDep) -> SourcesResponse:
    """Every source with how its last polls went."""
    return SourcesResponse(sources=[SourceOut.of(s) for s in service.sources()])


@router.post("/sources", response_model=SourceOut, status_code=201, dependencies=ADMIN)
def add_source(body: SourceIn, service: ServiceDep) -> SourceOut:
    """Poll a feed, sitemap or page; posting a URL again changes its interval and category."""
    return SourceOut.of(service.add_source(body.url, body.every_s(), body.category))


@router.delete("/sources/{source_id}", response_model=SourceDeleted, dependencies=ADMIN, responses=NO_SOURCE)
def remove_source(source_id: SourceId, service: ServiceDep) -> SourceDeleted:
    """Stop polling a source; the articles it brought stay."""
    service.remove_source(source_id)
    return SourceDeleted(deleted=source_id)
