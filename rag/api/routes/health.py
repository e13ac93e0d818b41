"""GET /health: whether the service is loading, failed, or serving, with the index's size; and the
probes load balancers and Kubernetes use: `/health/live` answers 200 while the process serves and
can still become ready (503 once loading the service failed: only a restart helps, which is what a
liveness probe does); `/health/ready` answers 200 only when the index is
loaded, the docstore answers and the model has embedded once (a readiness probe takes the replica
out of the pool otherwise: 503 with the reason)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rag.api.schemas import HealthResponse
from rag.errors import RagError

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def health(request: Request) -> HealthResponse | JSONResponse:
    holder = request.app.state.holder
    if holder.service is None:
        status = "failed" if holder.error else "loading"
        body = HealthResponse(status=status, error=holder.error)
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthResponse(**holder.service.health())


@router.get("/health/live", responses={503: {"description": "Loading failed: restart the process"}})
def live(request: Request) -> JSONResponse:
    error = request.app.state.holder.error
    if error is not None:
        return JSONResponse({"status": "failed", "detail": error}, status_code=503)
    return JSONResponse({"status": "live"})


@router.get("/health/ready", responses={503: {"description": "Not ready: the reason is in `detail`"}})
def ready(request: Request) -> JSONResponse:
    holder = request.app.state.holder
    if holder.service is None:
        return _not_ready(holder.error or "the index is still loading")
    service = holder.service
    try:
        service.store.docstore.generation()
    except RagError as error:
        return _not_ready(str(error))
    state = request.app.state
    if not getattr(state, "model_warm", False):  # the first probe runs the model once (twice is harmless)
        service.embedder.embed(["warm up"])
        state.model_warm = True
    return JSONResponse({"status": "ready", "index_generation": service.store.indexes().generation})


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse({"status": "not ready", "detail": reason}, status_code=503, headers={"Retry-After": "5"})
