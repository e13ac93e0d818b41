"""Request ids, access logs, /metrics and the health probes, through a real uvicorn server on
loopback (and FastAPI's TestClient where a non-loopback client is needed)."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from rag.api.app import create_app
from rag.api.metrics import fallback_kind
from rag.api.observe import JsonFormatter, TextFormatter, _RequestIdFilter
from tests.support.servers import live_server

ADMIN = "an-admin-key-of-some-length"
READER = "a-reader-key-of-some-length"
KEYS = json.dumps({ADMIN: ["admin"], READER: ["read"]})


@pytest.fixture
def access_lines():
    """What the `rag.access` logger writes, as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_RequestIdFilter())
    logger = logging.getLogger("rag.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def _value(text: str, name: str, **labels: str) -> float:
    """A sample's value from the Prometheus text format (0 if absent)."""
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_request_ids_logs_and_metrics_of_asking(bbc_service, access_lines):
    settings = bbc_service.settings.model_copy(update={"api_keys": KEYS})
    with live_server(create_app(settings, bbc_service)) as http:
        reader = {"Authorization": f"Bearer {READER}"}
        given = http.post("/ask", json={"question": "Which countries vetoed the UN cease-fire resolution?"},
                          headers={**reader, "X-Request-ID": "lb-1234.abc"})
        assert given.status_code == 200 and given.headers["x-request-id"] == "lb-1234.abc"
        made = http.post("/ask", json={"question": "What colour is the Moon's cheese?"}, headers=reader)
        assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
        hostile = http.get("/health", headers={"X-Request-ID": "x" * 200})  # too long: replaced, not echoed
        assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])
        assert http.get("/articles/nope", headers=reader).status_code == 404
        assert http.get("/articles/nope").status_code == 401  # no key: refused, still counted and logged
        metrics = http.get("/metrics")  # from loopback: no key needed
        assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
        text = metrics.text

    assert _value(text, "rag_http_requests_total", route="/ask", method="POST", status="200") == 2
    assert _value(text, "rag_http_requests_total", route="/articles/{article_id}", status="404") == 1
    assert _value(text, "rag_http_requests_total", route="/articles/{article_id}", status="401") == 1
    assert _value(text, "rag_http_request_duration_seconds_count", route="/ask", status="200") == 2
    for stage in ("retrieve", "answer"):
        assert _value(text, "rag_stage_duration_seconds_count", stage=stage) == 2
    assert _value(text, "rag_answers_total", backend="extractive", abstained="false") == 1
    assert _value(text, "rag_answers_total", backend="extractive", abstained="true") == 1
    assert _value(text, "rag_index_articles") == 61 and _value(text, "rag_index_chunks") > 61
    assert _value(text, "rag_index_sentences") > _value(text, "rag_index_chunks")
    assert _value(text, "rag_docstore_generation") == _value(text, "rag_index_generation") >= 1
    assert _value(text, "rag_docstore_up") == 1
    assert _value(text, "rag_http_requests_in_flight") == 1  # the scrape itself

    lines = access_lines()
    asks = [line for line in lines if line["route"] == "/ask"]
    assert asks[0]["request_id"] == "lb-1234.abc"
    assert [a["abstained"] for a in asks] == [False, True] and {a["backend"] for a in asks} == {"extractive"}
    assert all(a["key"].startswith("key-") and a["status"] == 200 and a["duration_ms"] > 0 for a in asks)
    assert all(READER not in json.dumps(line) and ADMIN not in json.dumps(line) for line in lines)
    refused = next(line for line in lines if line["status"] == 401)
    assert refused["route"] == "/articles/{article_id}" and "key" not in refused


def test_metrics_need_an_admin_key_off_loopback_unless_public(bbc_service):
    settings = bbc_service.settings.model_copy(update={"api_keys": KEYS})
    with TestClient(create_app(settings, bbc_service)) as client:  # its client is "testclient", not loopback
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {READER}"}).status_code == 403
        assert client.get("/metrics", headers={"X-API-Key": ADMIN}).status_code == 200
    public = settings.model_copy(update={"metrics_public": True})
    with TestClient(create_app(public, bbc_service)) as client:
        assert "rag_http_requests_total" in client.get("/metrics").text


def test_rate_limit_refusals_are_counted(bbc_service):
    # Budgets are per key: with no keys configured there is none to exhaust.
    settings = bbc_service.settings.model_copy(update={"rate_limit_per_min": 2, "api_keys": '{"k1-0123456789abcdef": ["read"]}'})
    key = {"Authorization": "Bearer k1-0123456789abcdef"}
    with live_server(create_app(settings, bbc_service)) as http:
        statuses = [http.post("/search", json={"query": "net cafes"}, headers=key).status_code for _ in range(3)]
        text = http.get("/metrics").text  # from loopback: no key needed
    assert statuses == [200, 200, 429]
    assert _value(text, "rag_rejections_total", reason="rate_limit") == 1
    assert _value(text, "rag_rejections_total", reason="concurrency") == 0


def test_concurrency_refusals_are_counted_and_spare_the_probes(bbc_service):
    """One slot, held by a write waiting for the writer lock (held here): the next request is
    refused (503) and counted as a concurrency refusal; the probes still answer."""
    settings = bbc_service.settings.model_copy(update={"max_concurrent_requests": 1})
    question = {"question": "Who vetoed the resolution?"}
    with live_server(create_app(settings, bbc_service)) as http, ThreadPoolExecutor(1) as pool:
        def write():
            return pool.submit(http.post, "/articles", json={"id": "slow", "title": "Slow", "text": "A bridge reopened."})

        with bbc_service.store.writer():
            pending = write()
            deadline = time.monotonic() + 120
            while (refused := http.post("/ask", json=question)).status_code != 503:
                assert refused.status_code == 200 and time.monotonic() < deadline
                if pending.done():  # an /ask had the slot when the write came: send it again
                    pending = write()
            assert http.get("/health/live").status_code == 200 and http.get("/health/ready").status_code == 200
        assert pending.result().status_code in (200, 503)
        text = http.get("/metrics").text
    assert _value(text, "rag_rejections_total", reason="concurrency") >= 1
    assert _value(text, "rag_http_requests_total", route="/ask", status="503") >= 1  # refused, yet named


def test_probes(bbc_service, settings):
    with live_server(create_app(bbc_service.settings, bbc_service)) as http:
        assert http.get("/health/live").json() == {"status": "live"}
        ready = http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        assert http.get("/health").json()["status"] == "ok"  # unchanged meaning
    # A service that cannot load (no model where it is told to look): never ready, and no longer
    # live once loading has failed, so that the orchestrator restarts it.
    app = create_app(settings.model_copy(update={"embedding_path": settings.index_dir / "no-model"}))
    with TestClient(app) as client:
        not_ready = client.get("/health/ready")
        assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "5"
        assert not_ready.json()["status"] == "not ready"
        deadline = time.monotonic() + 60
        while app.state.holder.error is None and time.monotonic() < deadline:
            time.sleep(0.1)
        failed = client.get("/health/live")
        assert failed.status_code == 503 and "failed to load" in failed.json()["detail"]


def test_ingest_is_counted(service):
    with live_server(create_app(service.settings, service)) as http:
        body = {"id": "one", "title": "Rain", "text": "It rained in Leeds on Monday. The river rose by a metre."}
        assert http.post("/articles", json=[body, {**body, "id": "two", "text": ""}]).status_code in (200, 207, 422)
        http.post("/articles", json=body)  # unchanged the second time
        text = http.get("/metrics").text
    assert _value(text, "rag_ingest_articles_total", outcome="ingested") == 1
    assert _value(text, "rag_ingest_articles_total", outcome="unchanged") == 1
    assert _value(text, "rag_ingest_chunks_total") >= 1
    assert _value(text, "rag_ingest_duration_seconds_count") >= 1


def test_text_logs_name_the_request_and_fallback_reasons_are_few():
    record = logging.LogRecord("rag.access", logging.INFO, __file__, 1, "POST /ask 200 3.0 ms", (), None)
    record.rag = {"request_id": "abc", "route": "/ask", "method": "POST", "status": 200, "key": "key-1"}
    line = TextFormatter().format(record)
    assert line.endswith("POST /ask 200 3.0 ms request_id=abc route=/ask key=key-1")
    assert fallback_kind("the openai backend did not answer within 30 s") == "timeout"
    assert fallback_kind("the openai backend is unreachable: refused") == "unreachable"
    assert fallback_kind("no sentence of the LLM answer is supported by the passages it cites") == "unsupported"
