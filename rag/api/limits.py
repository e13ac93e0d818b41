"""Limits on what one request, or one client, may take (OWASP LLM10, unbounded consumption):
body size (413; Starlette has none by default, starlette#2155), requests per minute per API key
(429), requests served at once (503), time to the start of a response (504).

Every refusal carries `Retry-After` where waiting helps, and a JSON `{"detail": ...}` body.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's body parsing passes it on as a 413 (not a 400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is over the {max_bytes} byte limit")


class BodySizeLimit:
    """Answers 413 when Content-Length, or the bytes actually streamed, exceed `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or {}).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        await send_error(send, 413, f"request body is over the {self.max_bytes} byte limit")


async def send_error(send: Send, status: int, detail: str, retry_after: int | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """At most `per_minute` requests per bucket (an API key's label) in any sliding 60 s window;
    0 turns it off. Thread-safe: FastAPI runs dependencies in threads and on the event loop."""

    WINDOW_S = 60.0

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, bucket: str) -> int:
        """Count a request; 0 if it is allowed, else the whole seconds to wait (not counted)."""
        if self.per_minute <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(bucket, deque())
            while hits and hits[0] <= now - self.WINDOW_S:
                hits.popleft()
            if len(hits) >= self.per_minute:
                return max(1, math.ceil(hits[0] + self.WINDOW_S - now))
            hits.append(now)
            return 0


class ConcurrencyLimit:
    """Answers 503 + Retry-After at once, rather than queueing, when `max_requests` are already
    being served; paths in `exempt` (the health check) are never refused. Runs on the event loop
    only, so a plain counter is safe."""

    def __init__(self, app: ASGIApp, max_requests: int, exempt: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.max_requests = max_requests
        self.exempt = exempt
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:
            await send_error(send, 503, f"the server is serving its limit of {self.max_requests} requests "
                                        "at once; retry shortly", retry_after=1)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


class RequestTimeout:
    """Answers 504 when no response has started within `seconds`. A streamed response that has
    started runs on (its producer has its own timeouts). The abandoned handler is cancelled; one
    running in a worker thread cannot be stopped and finishes unseen, so a timed-out write may
    still complete (re-sending it is safe: article ids are stable). Place this middleware outside
    `ConcurrencyLimit`, so abandoned work keeps its slot until it really ends."""

    def __init__(self, app: ASGIApp, seconds: float, exempt: tuple[str, ...] = ("/health",)) -> None:
        self.app = app
        self.seconds = seconds
        self.exempt = exempt
        self._abandoned: set[asyncio.Task] = set()  # referenced until done, so not collected

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        started = asyncio.Event()
        timed_out = False

        async def guarded_send(message: Message) -> None:
            if timed_out:
                return  # the client has had its 504
            if message["type"] == "http.response.start":
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait({task, waiter}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if task.done() or started.is_set():
            await task
            return
        timed_out = True
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._forget)
        await send_error(send, 504, f"no response within the {self.seconds:g} s request timeout")

    def _forget(self, task: asyncio.Task) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it as never retrieved
