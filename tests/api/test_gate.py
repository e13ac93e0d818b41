"""What the server lets in, through a real uvicorn server: budgets of failed authentications per
client address, no shared budget without keys, and an OpenAPI document that says what the server
enforces (lengths, `text` or `html`, strict types, methods, who may read the docs)."""

from __future__ import annotations

import json
import logging

import httpx
import jsonschema_rs
import pytest

from rag.api.app import create_app
from tests.support.servers import live_server

READER = "gate-reader-key-0123456789abcdef"
WRITER = "gate-writer-key-0123456789abcdef"
KEYS = json.dumps({READER: ["read"], WRITER: ["ingest"]})
ARTICLE = {"id": "gate-1", "title": "Orrin flag", "text": "The Orrin council adopted a new flag on Monday."}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def serve(service, **update):
    return live_server(create_app(service.settings.model_copy(update=update), service))


@pytest.fixture
def stored(service):
    from rag.ingest import article_from_record

    assert service.ingest([article_from_record(ARTICLE, origin="test")]).ingested == ["gate-1"]
    return service


def test_failed_authentications_are_limited_per_address_and_logged_sparingly(stored, caplog):
    """Five failures a minute from one address: then 429 + Retry-After, the key not even looked
    at; two warning lines in all, not one per failure. Another address keeps its own budget."""
    caplog.set_level(logging.WARNING, logger="rag.api.auth")
    with serve(stored, api_keys=KEYS, auth_failures_per_min=5) as http:
        statuses = [http.post("/search", json={"query": "flag"}, headers=bearer(f"wrong-key-{n:020d}")).status_code
                    for n in range(20)]
        assert statuses == [401] * 5 + [429] * 15, statuses
        refused = http.post("/search", json={"query": "flag"}, headers=bearer(READER))
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert "failed authentications" in refused.json()["detail"]
        # 127.0.0.2 is loopback too, and another client address with a budget of its own
        transport = httpx.HTTPTransport(local_address="127.0.0.2")
        with httpx.Client(base_url=http.base_url, transport=transport, timeout=30) as other:
            assert other.post("/search", json={"query": "flag"}, headers=bearer(READER)).status_code == 200
    warnings = [r.getMessage() for r in caplog.records if r.name == "rag.api.auth"]
    assert len(warnings) == 2, warnings
    assert "unknown API key" in warnings[0] and "5 times" in warnings[1]
    assert not any("wrong-key" in w for w in warnings)


def test_without_keys_local_clients_share_no_request_budget(stored):
    """With no keys every client of the loopback-only server comes from 127.0.0.1, so a budget
    per address would be one budget for all (a load test would lock out the web page): none."""
    with serve(stored, rate_limit_per_min=3) as http:
        statuses = [http.post("/search", json={"query": "flag"}).status_code for _ in range(10)]
    assert statuses == [200] * 10, statuses


def test_with_keys_the_request_budget_stays_per_key(stored):
    with serve(stored, api_keys=KEYS, rate_limit_per_min=3) as http:
        statuses = [http.post("/search", json={"query": "flag"}, headers=bearer(READER)).status_code
                    for _ in range(5)]
        assert statuses == [200] * 3 + [429] * 2
        assert http.post("/articles", json={**ARTICLE, "id": "gate-2"}, headers=bearer(WRITER)).status_code == 200


def test_openapi_lengths_and_article_fields_say_what_is_enforced(stored):
    with serve(stored) as http:
        spec = http.get("/openapi.json").json()
        schemas = spec["components"]["schemas"]
        limit = stored.settings.max_question_chars
        for model, field in (("AskRequest", "question"), ("SearchRequest", "query"), ("BriefRequest", "topic")):
            assert schemas[model]["properties"][field]["maxLength"] == limit, (model, field)
        assert http.post("/search", json={"query": "flag " * (limit // 5) + "x"}).status_code == 422
        assert http.post("/search", json={"query": "f" * limit}).status_code == 200

        article = jsonschema_rs.validator_for(schemas["ArticleIn"])
        for body in ({"title": "No body"}, {"title": "Both null", "text": None, "html": None},
                     {"text": "Both.", "html": "<p>Both.</p>"}):
            assert not article.is_valid(body), body
            response = http.post("/articles", json=body)
            assert response.status_code == 422, (body, response.text)
            assert "exactly one" in response.text
        for body in ({"id": "gate-3", "text": "The Orrin mill closed."},
                     {"id": "gate-4", "html": "<p>The Orrin mill reopened on Friday.</p>", "text": None}):
            assert article.is_valid(body), body
            assert http.post("/articles", json=body).status_code == 200, body


@pytest.mark.parametrize("body", [
    {"question": "Which flag?", "stream": 0},
    {"question": "Which flag?", "stream": "false"},
    {"question": "Which flag?", "top_k": True},
    {"question": "Which flag?", "top_k": "5"},
    {"question": "Which flag?", "filters": {"since": 0}},
    {"question": "Which flag?", "filters": {"until": "1104537600"}},
    {"question": "Which flag?", "filters": {"since": "20050101"}},
])
def test_values_of_another_type_are_refused_not_coerced(stored, body):
    with serve(stored) as http:
        response = http.post("/ask", json=body)
        assert response.status_code == 422, response.text
        ok = http.post("/ask", json={"question": "Which flag?", "stream": False, "top_k": 5,
                                     "filters": {"since": "2005-01-01", "until": "2099-12-31"}})
        assert ok.status_code == 200, ok.text


def test_a_wrong_method_names_every_method_of_the_path(stored):
    with serve(stored, api_keys=KEYS) as http:
        response = http.options("/articles/gate-1", headers=bearer(READER))
        assert response.status_code == 405
        assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "DELETE"}
        assert http.put("/articles/gate-1", headers=bearer(READER)).headers["allow"] == "DELETE, GET"
        assert http.options("/articles/gate-1").status_code == 401  # who asks comes first


def test_docs_follow_the_keys_unless_set_public(stored):
    with serve(stored, api_keys=KEYS) as http:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers=bearer(WRITER)).status_code == 200, path  # any valid key
        assert http.get("/health").status_code == 200
    with serve(stored, api_keys=KEYS, public_docs=True) as http:
        assert http.get("/openapi.json").status_code == 200 and http.get("/docs").status_code == 200
        assert http.post("/search", json={"query": "flag"}).status_code == 401
    with serve(stored) as http:  # no keys: everything is open, the docs too
        assert http.get("/openapi.json").status_code == 200
