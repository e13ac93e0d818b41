"""FastAPI app factory: the service is loaded once (lifespan) and kept on `app.state`."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rag.api import briefings, openai_compat, slack
from rag.api.auth import KeyRing
from rag.api.limits import BodySizeLimit, ConcurrencyLimit, RateLimiter, RequestTimeout
from rag.api.routes import router
from rag.config import Settings
from rag.errors import (
    ArticleNotFound,
    IndexMismatch,
    IndexNotReady,
    InvalidInput,
    RagError,
    TooLarge,
)
from rag.service import Service, build_service
from rag.store import WriterBusy

log = logging.getLogger(__name__)

STATUS = {
    InvalidInput: 422,
    ArticleNotFound: 404,
    TooLarge: 413,
    IndexMismatch: 503,
    IndexNotReady: 503,
    WriterBusy: 503,
}


class ServiceHolder:
    """The service, or why it is not there yet: loading in the background, or failed to load."""

    def __init__(self) -> None:
        self.service: Service | None = None
        self.error: str | None = None

    def get(self) -> Service:
        if self.service is not None:
            return self.service
        raise IndexNotReady(self.error or "the index is still loading; retry in a few seconds")

    def load(self, settings: Settings) -> None:
        try:
            service = build_service(settings)
            service.warm_up()  # before /health says ready: the first requests are not the slow ones
            self.service = service
        except Exception as error:  # reported by /health and every route, never swallowed
            log.exception("loading the service failed")
            self.error = f"the service failed to load: {error}"


def create_app(settings: Settings | None = None, service: Service | None = None) -> FastAPI:
    """With `service` given (the CLI, tests) it is used as is; otherwise it is built from
    `settings` in a background thread, so the port answers /health at once (503 until ready).
    Raises BadSettings for unusable API keys, before anything is served."""
    settings = settings or Settings.from_environment()
    keyring = KeyRing.from_settings(settings)
    holder = ServiceHolder()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            holder.service = service
        else:
            threading.Thread(target=holder.load, args=(settings,), name="rag-load", daemon=True).start()
        yield
        if holder.service is not None and service is None:
            holder.service.close()

    app = FastAPI(
        title="rag",
        summary="Questions about news articles, answered with citations checked against the article text.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.state.settings = settings
    app.state.keyring = keyring
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_min)
    app.include_router(router)
    app.include_router(briefings.router)
    app.include_router(openai_compat.router)
    app.include_router(slack.router)
    # The last added runs first: the timeout must wrap the concurrency limit, so that work it
    # abandons keeps its slot until it really ends.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(ConcurrencyLimit, max_requests=settings.max_concurrent_requests)
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_s)

    @app.exception_handler(RagError)
    async def rag_error(request: Request, error: RagError) -> JSONResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(error, kind)), 500)
        headers = {"Retry-After": "5"} if status == 503 else None
        return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # Malformed JSON is a 400 (the body cannot be read at all), as the API documents; a body
        # that parses but breaks the schema stays FastAPI's 422 with its list of field errors.
        broken = next((e for e in error.errors() if e.get("type") == "json_invalid"), None)
        if broken is None:
            try:
                return await request_validation_exception_handler(request, error)
            except (ValueError, UnicodeEncodeError):
                # The rejected value cannot be echoed in JSON (NaN, 1e400, a lone "\ud800"): name
                # the field and the reason without it.
                detail = [{"type": e["type"], "loc": [_printable(part) for part in e["loc"]],
                           "msg": _printable(e["msg"])} for e in error.errors()]
                return JSONResponse({"detail": detail}, status_code=422)
        where = f" at character {broken['loc'][-1]}" if isinstance(broken["loc"][-1], int) else ""
        reason = broken.get("ctx", {}).get("error", "")
        return JSONResponse({"detail": f"the body is not valid JSON{where}: {reason}".rstrip(": ")},
                            status_code=400)

    return app


def _printable(value: str | int) -> str | int:
    """A string that UTF-8 can encode: a lone surrogate is written as its escape."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value
