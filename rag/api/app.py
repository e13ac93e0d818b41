"""FastAPI app factory: the service is loaded once (lifespan) and kept on `app.state`."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from rag.api.access_log import redact_access_log
from rag.api.auth import Authenticate, KeyRing
from rag.api.errors import add_error_handlers
from rag.api.limits import ConcurrencyLimit, RateLimiter, ReadBody, RequestTimeout
from rag.api.metrics import Metrics
from rag.api.observe import HEALTH_PATHS, Admitted, Observe, RequestTelemetry
from rag.api.routes import (
    articles,
    ask,
    briefings,
    feedback,
    health,
    metrics,
    openai_compat,
    page,
    slack,
    sources,
)
from rag.config import Settings
from rag.errors import IndexNotReady
from rag.ingest.fetch.poller import Poller
from rag.service import Service, build_service

log = logging.getLogger(__name__)


class ServiceHolder:
    """The service, or why it is not there yet: loading in the background, or failed to load;
    and the poller of its sources once it is there (when polling is on)."""

    def __init__(self, poll: bool = False) -> None:
        self.service: Service | None = None
        self.error: str | None = None
        self.poll = poll
        self.poller: Poller | None = None
        self.telemetry: RequestTelemetry | None = None  # handed to the service once it is there

    def get(self) -> Service:
        if self.service is not None:
            return self.service
        raise IndexNotReady(self.error or "the index is still loading; retry in a few seconds")

    def load(self, settings: Settings) -> None:
        try:
            service = build_service(settings)
            service.warm_up()  # before /health says ready: the first requests are not the slow ones
            self.serve(service)
        except Exception as error:  # reported by /health and every route, never swallowed
            log.exception("loading the service failed")
            self.error = f"the service failed to load: {error}"

    def serve(self, service: Service) -> None:
        if self.telemetry is not None:
            service.observe(self.telemetry)
        self.service = service
        if self.poll:
            self.poller = service.poller().start()

    def stop_polling(self) -> None:
        if self.poller is not None:
            self.poller.stop()


def create_app(settings: Settings | None = None, service: Service | None = None) -> FastAPI:
    """With `service` given (the CLI, tests) it is used as is; otherwise it is built from
    `settings` in a background thread, so the port answers /health at once (503 until ready).
    Raises BadSettings for unusable API keys, before anything is served."""
    settings = settings or Settings.from_environment()
    keyring = KeyRing.from_settings(settings)
    holder = ServiceHolder(poll=settings.poll_sources)
    app_metrics = Metrics(lambda: holder.service)
    holder.telemetry = RequestTelemetry(app_metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redact_access_log()
        if service is not None:
            holder.serve(service)
        else:
            threading.Thread(target=holder.load, args=(settings,), name="rag-load", daemon=True).start()
        yield
        holder.stop_polling()
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
    app.state.metrics = app_metrics
    for routes in (health, ask, articles, sources, briefings, openai_compat, slack, feedback, page, metrics):
        app.include_router(routes.router)
    app.mount("/static", StaticFiles(directory=page.STATIC), name="static")
    _document_limits(app, settings)
    docs = frozenset(p for p in (app.openapi_url, app.docs_url, app.redoc_url,
                                 app.swagger_ui_oauth2_redirect_url) if p)
    public_docs = settings.public_docs if settings.public_docs is not None else not keyring.enabled
    # The last added runs first. Observe sees every answer, refusals too; authentication comes
    # before everything else, from the headers alone; the body is read before a concurrency slot
    # is taken (slots are for work, not for waiting on a client's network); the timeout wraps the
    # concurrency limit, so that work it abandons keeps its slot until it really ends; health
    # probes pass both, so a busy replica still answers its load balancer.
    app.add_middleware(Admitted)
    app.add_middleware(ConcurrencyLimit, max_requests=settings.max_concurrent_requests, exempt=HEALTH_PATHS)
    app.add_middleware(RequestTimeout, seconds=settings.request_timeout_s, exempt=HEALTH_PATHS)
    app.add_middleware(ReadBody, max_bytes=settings.max_request_bytes, timeout_s=settings.body_timeout_s)
    # Budgets are per API key: with no keys there is no identity to key them on (every client of
    # a loopback-only server comes from 127.0.0.1), so there are none; the concurrency limit
    # still protects the server.
    app.add_middleware(Authenticate, router=app.router, keyring=keyring,
                       rate_limiter=RateLimiter(settings.rate_limit_per_min),
                       failures=RateLimiter(settings.auth_failures_per_min),
                       private_paths=frozenset() if public_docs else docs)
    app.add_middleware(Observe, metrics=app_metrics)
    add_error_handlers(app)

    return app


# Request fields whose length the service bounds by `max_question_chars` (the schemas hold a hard
# cap, 10,000, that the setting cannot exceed): the OpenAPI document states the setting.
_QUESTION_FIELDS = (("AskRequest", "question"), ("SearchRequest", "query"), ("BriefRequest", "topic"))


def _document_limits(app: FastAPI, settings: Settings) -> None:
    """Make the OpenAPI document say the limits this server enforces, as set."""
    generate = app.openapi

    def openapi() -> dict:
        schema = generate()  # built once and cached by FastAPI; the edit below is idempotent
        components = schema.get("components", {}).get("schemas", {})
        for model, field in _QUESTION_FIELDS:
            prop = components.get(model, {}).get("properties", {}).get(field)
            if prop is not None:
                prop["maxLength"] = settings.max_question_chars
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

