"""GET /metrics in Prometheus' text format (`rag.api.metrics`). Readable without a key only from
loopback, unless `RAG_METRICS_PUBLIC=1`; otherwise it needs an `admin` key, as the service's
internals (sizes, error rates) are not every reader's business."""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from rag.api.auth import key_from_headers

router = APIRouter(tags=["operations"])


def _is_loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@router.get("/metrics", include_in_schema=True, response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def metrics(request: Request) -> Response:
    if not (request.app.state.settings.metrics_public or _is_loopback(request.client and request.client.host)):
        _require_admin(request)
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _require_admin(request: Request) -> None:
    """The route is open to `Authenticate` (loopback may read it keyless), so the key is checked
    here, from the same headers, when the client is elsewhere."""
    keyring = request.app.state.keyring
    if not keyring.enabled:
        return
    token = key_from_headers(request.headers)
    key = keyring.identify(token) if token else None
    if key is None:
        raise HTTPException(401, "missing or unknown API key", headers={"WWW-Authenticate": "Bearer"})
    if not key.allows("admin"):
        raise HTTPException(403, "this API key lacks the 'admin' scope")
