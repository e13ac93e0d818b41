"""The staff web page: `GET /`, its files under `/static` (all from this origin: the machines have
no internet), and `GET /me`, which tells the page (or any client) what its key may do.

The page calls only public routes, as any client would: /ask (server-sent events),
/v1/chat/completions for follow-ups, /briefings, /articles (list, read, upload, delete), /facets,
/sources (list; add and remove with an admin key), /feedback and /me.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from rag.api.auth import ANY_KEY, ERROR_RESPONSES, SCOPES, request_key
from rag.api.schemas import MeResponse

STATIC = Path(__file__).parent.parent / "static"

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
    """The key's label and scopes (any known key may ask), or that no keys are configured; the
    page shows upload and delete only to `ingest`."""
    key = request_key(request)
    if key is None:
        return MeResponse(keys_required=False, key=None, scopes=list(SCOPES))
    scopes = list(SCOPES) if "admin" in key.scopes else [s for s in SCOPES if s in key.scopes]
    return MeResponse(keys_required=True, key=key.label, scopes=scopes)
