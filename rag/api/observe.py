"""Request ids, one log line per request, and request metrics.

Every response carries `X-Request-ID`: the caller's own when it sent a sane one (up to 128
characters of letters, digits and `-_.:`), else a new one. Each request is logged once when it
ends, on the `rag.access` logger: request id, method, route, status, duration, the API key's label
(never the key) and, for answers, the backend and whether it abstained. Every other log line
written while a request is served carries its id too. `RAG_LOG_FORMAT=json` writes one JSON object
per line (for a log shipper); the default is plain text for a terminal.

The probes (`rag.api.routes.health`) are never refused by the concurrency limit or the timeout.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.api.metrics import Metrics
from rag.types import Answer, IngestReport

HEALTH_PATHS = ("/health", "/health/live", "/health/ready")
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# What the current request's log line will say beyond the basics (the answer's backend, ...).
# A dict shared by reference: route code runs in worker threads with a copy of this context.
_request: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rag_request", default=None)

access_log = logging.getLogger("rag.access")


def note(**fields: object) -> None:
    """Add fields to the current request's log line (no-op outside a request)."""
    current = _request.get()
    if current is not None:
        current.update(fields)


def note_answer(answer: Answer) -> None:
    note(backend=answer.backend, abstained=answer.abstained,
         **({"fallback_reason": answer.fallback_reason} if answer.fallback_reason else {}))


class RequestTelemetry:
    """The service's telemetry: into the metrics, and into the current request's log line."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def stage(self, name: str, seconds: float) -> None:
        self.metrics.stage(name, seconds)

    def answered(self, answer: Answer) -> None:
        self.metrics.answered(answer)
        note_answer(answer)

    def ingested(self, report: IngestReport, seconds: float) -> None:
        self.metrics.ingested(report, seconds)
        note(ingested=len(report.ingested), unchanged=len(report.unchanged), failed=len(report.failed))


class Observe:
    """Outermost middleware: request id, in-flight gauge, per-route metrics, the access log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._templates: list[tuple[re.Pattern, str]] | None = None  # the API's paths, read once

    def _route_of(self, scope: Scope) -> str:
        """The route's template (`/articles/{article_id}`), so the metric's labels stay few; for a
        request refused before routing (a limit), the template its path would have reached."""
        path = getattr(scope.get("route"), "path", None)
        if isinstance(path, str):
            return path
        app = scope.get("app")
        if app is None or not hasattr(app, "openapi"):
            return "unmatched"
        if self._templates is None:
            self._templates = [(compile_path(template)[0], template) for template in app.openapi()["paths"]]
        return next((template for regex, template in self._templates if regex.match(scope["path"])), "unmatched")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or {}).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        fields: dict = {"request_id": request_id}
        token = _request.set(fields)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # if the app dies before answering, uvicorn answers 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            seconds = time.perf_counter() - started
            route = self._route_of(scope)
            self.metrics.request_done(route, scope["method"], status, seconds)
            if status == 429:
                self.metrics.rejections.labels("rate_limit").inc()
            elif status == 503 and not scope.get("rag.admitted"):
                self.metrics.rejections.labels("concurrency").inc()
            key = scope.get("state", {}).get("api_key")
            fields.update(method=scope["method"], route=route, path=scope["path"], status=status,
                          duration_ms=round(seconds * 1000, 1))
            if key is not None:
                fields["key"] = getattr(key, "label", "?")
            client = scope.get("client")
            if client:
                fields["client"] = client[0]
            access_log.info("%s %s %s %.1f ms", scope["method"], scope["path"], status, seconds * 1000,
                            extra={"rag": dict(fields)})
            _request.reset(token)


class Admitted:
    """Innermost middleware: marks that a request got past the limits, so that a 503 without the
    mark is known to be the concurrency limit's refusal."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["rag.admitted"] = True
        await self.app(scope, receive, send)


# -- logs ----------------------------------------------------------------------------------------
class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        current = _request.get()
        if current is not None and not hasattr(record, "request_id"):
            record.request_id = current["request_id"]
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                     "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        if hasattr(record, "request_id"):
            out["request_id"] = record.request_id
        out.update(getattr(record, "rag", {}))
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "rag", None)
        if fields:  # the access line: what the message does not say already
            extra = {k: v for k, v in fields.items() if k not in ("method", "path", "status", "duration_ms")}
            line += " " + " ".join(f"{k}={v}" for k, v in extra.items())
        elif hasattr(record, "request_id"):
            line += f" request_id={record.request_id}"
        return line


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Root logging to stderr in `log_format` ('json' or 'text'); uvicorn's loggers go through it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
