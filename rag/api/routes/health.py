"""GET /health: whether the service is loading, failed, or serving, with the index's size."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rag.api.schemas import HealthResponse

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def health(request: Request) -> HealthResponse | JSONResponse:
    holder = request.app.state.holder
    if holder.service is None:
        status = "failed" if holder.error else "loading"
        body = HealthResponse(status=status, error=holder.error)
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthResponse(**holder.service.health())
