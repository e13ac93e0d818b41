"""GET /metrics in Prometheus' text format (`rag.api.metrics`). Readable without a key only from
loopback, unless `RAG_METRICS_PUBLIC=1`; otherwise it needs an `admin` key, as the service's
internals (sizes, error rates) are not every reader's business."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST

from rag.api.auth import require_scope

router = APIRouter(tags=["operations"])


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_admin = require_scope("admin")


@router.get("/metrics", include_in_schema=True, response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def metrics(request: Request) -> Response:
    if not (request.app.state.settings.metrics_public or _is_loopback(request.client and request.client.host)):
        await _admin(request, _bearer(request), request.headers.get("x-api-key"))
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _bearer(request: Request) -> HTTPAuthorizationCredentials | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if scheme.lower() == "bearer" and token \
        else None
