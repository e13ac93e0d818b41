"""Limits on what one request, or one client, may take (OWASP LLM10, unbounded consumption):
body size and time to send it (413, 408; Starlette has no body limit by default, starlette#2155),
requests per minute per API key and failed authentications per client address (429, in
`rag.api.auth.Authenticate`), requests served at once (503), time to the start of a response (504).

Every refusal carries `Retry-After` where waiting helps, and a JSON `{"detail": ...}` body.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections import deque

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ReadBody:
    """Reads the whole request body before the request goes further in, so that concurrency slots
    are taken by work, never by a client still sending: the body must arrive within `timeout_s`
    (408 beyond) and hold at most `max_bytes` (413, at once when Content-Length says so). Either
    refusal closes the connection. The app then reads the body from memory.

    Memory: at most `max_bytes` per request being received; with keys configured only clients
    with a valid key get here (`Authenticate` runs first)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or {}).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        chunks: list[bytes] = []
        received = 0
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left: nobody to answer
                    chunk = message.get("body", b"")
                    received += len(chunk)
                    if received > self.max_bytes:
                        await self._too_large(send)
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await send_error(send, 408, f"the request body did not arrive within the {self.timeout_s:g} s "
                                        "body timeout", close=True)
            return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, for streaming responses

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await send_error(send, 413, f"request body is over the {self.max_bytes} byte limit", close=True)


async def send_error(send: Send, status: int, detail: str, retry_after: int | None = None, *,
                     close: bool = False, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A JSON `{"detail": ...}` response. `close` ends the connection after it: for a refusal sent
    before the body was read, so that the client cannot hold the socket by sending it slowly."""
    body = json.dumps({"detail": detail}).encode()
    all_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        all_headers.append((b"retry-after", str(retry_after).encode()))
    if close:
        all_headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": all_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """At most `per_minute` hits per bucket (an API key's label, or a client address for failed
    authentications) in any sliding 60 s window; 0 turns it off. Thread-safe. Buckets idle for a
    whole window are dropped now and then, so many one-off clients do not grow it for ever."""

    WINDOW_S = 60.0
    _SWEEP_EVERY = 1024  # hits between sweeps of idle buckets

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._until_sweep = self._SWEEP_EVERY

    def hit(self, bucket: str) -> int:
        """Count a hit; 0 if it is allowed, else the whole seconds to wait (not counted)."""
        if self.per_minute <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            self._until_sweep -= 1
            if self._until_sweep <= 0:
                self._sweep(now)
            hits = self._recent(bucket, now)
            if len(hits) >= self.per_minute:
                return self._wait(hits, now)
            hits.append(now)
            return 0

    def wait(self, bucket: str) -> int:
        """The whole seconds until `bucket` may hit again (0: now), without counting anything."""
        if self.per_minute <= 0:
            return 0
        now = time.monotonic()
        with self._lock:
            hits = self._recent(bucket, now)
            return self._wait(hits, now) if len(hits) >= self.per_minute else 0

    def count(self, bucket: str) -> int:
        """Hits counted in the current window."""
        with self._lock:
            return len(self._recent(bucket, time.monotonic()))

    def _recent(self, bucket: str, now: float) -> deque[float]:
        hits = self._hits.setdefault(bucket, deque())
        while hits and hits[0] <= now - self.WINDOW_S:
            hits.popleft()
        return hits

    def _wait(self, hits: deque[float], now: float) -> int:
        return max(1, math.ceil(hits[0] + self.WINDOW_S - now))

    def _sweep(self, now: float) -> None:
        self._until_sweep = self._SWEEP_EVERY
        for bucket in [b for b, hits in self._hits.items() if not hits or hits[-1] <= now - self.WINDOW_S]:
            del self._hits[bucket]


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
