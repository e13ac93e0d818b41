"""FastAPI app factory: the service is loaded once (lifespan) and kept on `app.state`."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rag.api.auth import KeyRing
from rag.api.errors import add_error_handlers
from rag.api.limits import BodySizeLimit, ConcurrencyLimit, RateLimiter, RequestTimeout
from rag.api.routes import articles, ask, briefings, health, openai_compat, slack
from rag.config import Settings
from rag.errors import IndexNotReady
from rag.service import Service, build_service

log = logging.getLogger(__name__)


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
            self.service = build_service(settings)
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
    for routes in (health, ask, articles, briefings, openai_compat, slack):
        app.include_router(routes.router)
    # The last added runs first: the timeout must wrap the concurrency limit, so that work it
    # abandons keeps its slot until it really ends.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(ConcurrencyLimit, max_requests=settings.max_concurrent_requests)
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_s)
    add_error_handlers(app)

    return app

