"""Slow clients through a real uvicorn server, with raw sockets: a client that sends its headers
and then trickles its body one byte at a time must not hold what authorised clients need."""

from __future__ import annotations

import json
import select
import socket
import threading
import time

import pytest

from rag.api.app import create_app
from tests.support.servers import live_server

KEY = "slow-client-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
ARTICLE = {"id": "slow-1", "title": "Pellam bridge", "text": "The Pellam bridge reopened on Monday after repairs."}
BODY_BYTES = 200  # what each trickler declares; at one byte per INTERVAL_S it would take 50 s
INTERVAL_S = 0.25


class Trickler(threading.Thread):
    """Sends a request's headers, then its body one byte every INTERVAL_S, reading whatever the
    server answers, until the server closes the connection or the body is sent."""

    def __init__(self, port: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.headers = headers or {}
        self.started_body = threading.Event()  # or the server has already answered and closed
        self.response = b""
        self.closed_after: float | None = None  # seconds from the headers to the server's close

    def run(self) -> None:
        head = "".join(f"{name}: {value}\r\n" for name, value in {
            "Host": "127.0.0.1", "Content-Type": "application/json", "Content-Length": str(BODY_BYTES),
            **self.headers}.items())
        try:
            self._trickle(head)
        finally:  # cut off before its first byte, it must not keep `_start` waiting
            self.started_body.set()

    def _trickle(self, head: str) -> None:
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.sendall(f"POST /ask HTTP/1.1\r\n{head}\r\n".encode())
            start = time.monotonic()
            sent = 0
            while sent < BODY_BYTES:
                readable, _, _ = select.select([sock], [], [], INTERVAL_S)
                try:
                    if readable:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        self.response += chunk
                        continue
                    sock.sendall(b" ")
                except OSError:  # reset by the server
                    break
                sent += 1
                self.started_body.set()
            else:
                return  # the whole body went out: never cut off
            self.closed_after = time.monotonic() - start

    @property
    def status(self) -> int | None:
        line = self.response.split(b"\r\n", 1)[0].split()
        return int(line[1]) if len(line) > 1 else None


def _start(tricklers: list[Trickler]) -> None:
    for trickler in tricklers:
        trickler.start()
    for trickler in tricklers:
        assert trickler.started_body.wait(10) or trickler.closed_after is not None


@pytest.fixture
def stored(service):
    """An index with one article, and the settings to serve it with."""
    from rag.ingest import article_from_record

    report = service.ingest([article_from_record(ARTICLE, origin="test")])
    assert report.ingested == ["slow-1"]
    return service


def test_keyless_tricklers_are_refused_at_the_headers_and_hold_no_slot(stored):
    """Four slots, eight keyless tricklers: each gets 401 as soon as its headers are in, and its
    connection is closed; an authorised client is served meanwhile, never 503."""
    settings = stored.settings.model_copy(update={"api_keys": json.dumps({KEY: ["read"]}),
                                                  "max_concurrent_requests": 4, "rate_limit_per_min": 0})
    with live_server(create_app(settings, stored)) as http:
        port = http.base_url.port
        tricklers = [Trickler(port) for _ in range(8)]
        _start(tricklers)
        statuses = [http.post("/search", json={"query": "Pellam bridge"}, headers=AUTH).status_code
                    for _ in range(10)]
        assert statuses == [200] * 10, statuses
        for trickler in tricklers:
            trickler.join(timeout=60)
            assert trickler.status == 401, trickler.response[:200]
            assert trickler.closed_after is not None and trickler.closed_after < 10, "the trickler was not cut off"


def test_keyed_or_open_tricklers_wait_outside_the_slots_and_get_408(stored):
    """No keys configured (loopback serving): eight tricklers on a server of four slots. The body
    is read before a slot is taken, so an ordinary client is served meanwhile; each trickler gets
    408 when the body timeout passes, and its connection is closed."""
    settings = stored.settings.model_copy(update={"max_concurrent_requests": 4, "body_timeout_s": 3.0})
    with live_server(create_app(settings, stored)) as http:
        port = http.base_url.port
        tricklers = [Trickler(port) for _ in range(8)]
        _start(tricklers)
        statuses = [http.post("/search", json={"query": "Pellam bridge"}).status_code for _ in range(10)]
        assert statuses == [200] * 10, statuses
        for trickler in tricklers:
            trickler.join(timeout=60)
            assert trickler.status == 408, trickler.response[:200]
            assert b"body timeout" in trickler.response
            assert trickler.closed_after is not None and trickler.closed_after < 10
        assert http.post("/search", json={"query": "Pellam bridge"}).json()["results"][0]["article_id"] == "slow-1"
