"""API keys and scopes through a real uvicorn server, and `rag serve`'s refusal to expose an
unauthenticated index."""

from __future__ import annotations

import json
import os
import subprocess
import time

import httpx
import pytest

from rag.api.app import create_app
from rag.api.auth import KeyRing
from rag.errors import BadSettings
from tests.support.paths import RAG
from tests.support.servers import free_port, live_server

READER = "reader-key-0123456789abcdef"
WRITER = "writer-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef0"
KEYS = {READER: ["read"], WRITER: ["ingest"], ADMIN: ["admin"]}
QUESTION = {"question": "Where will Labour hold its 2006 autumn conference?"}
ARTICLE = {"id": "auth-1", "title": "Keys", "text": "The Orrin council adopted a new flag on Monday."}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(bbc_service):
    settings = bbc_service.settings.model_copy(update={"api_keys": json.dumps(KEYS)})
    with live_server(create_app(settings, bbc_service)) as http:
        yield http


def test_health_stays_open_and_reports_the_article_count(keyed):
    response = keyed.get("/health")
    assert response.status_code == 200 and response.json()["articles"] == 61


@pytest.mark.parametrize("headers", [{}, bearer("not-a-key-of-ours-at-all"), {"X-API-Key": "wrong"},
                                     {"Authorization": "Basic " + READER}, {"Authorization": "Bearer"}])
def test_missing_or_unknown_key_is_401(keyed, headers):
    for method, path, body in (("POST", "/ask", QUESTION), ("POST", "/search", {"query": "Labour"}),
                               ("GET", "/articles/x", None), ("POST", "/articles", ARTICLE),
                               ("DELETE", "/articles/x", None)):
        response = keyed.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in response.json()["detail"]


def test_each_scope_opens_its_routes_only(keyed):
    # read: ask, search, article reads; not writes
    assert keyed.post("/ask", json=QUESTION, headers=bearer(READER)).status_code == 200
    assert keyed.post("/ask", json=QUESTION, headers={"X-API-Key": READER}).status_code == 200
    assert keyed.post("/search", json={"query": "Labour"}, headers=bearer(READER)).status_code == 200
    refused = keyed.post("/articles", json=ARTICLE, headers=bearer(READER))
    assert refused.status_code == 403 and "'ingest'" in refused.json()["detail"]
    assert keyed.delete("/articles/politics-004", headers=bearer(READER)).status_code == 403
    # ingest: writes, not reads
    assert keyed.post("/articles", json=ARTICLE, headers={"X-API-Key": WRITER}).status_code == 200
    assert keyed.post("/ask", json=QUESTION, headers=bearer(WRITER)).status_code == 403
    assert keyed.get("/articles/auth-1", headers=bearer(WRITER)).status_code == 403
    # admin: everything
    assert keyed.get("/articles/auth-1", headers=bearer(ADMIN)).json()["title"] == "Keys"
    assert keyed.delete("/articles/auth-1", headers=bearer(ADMIN)).status_code == 200
    assert keyed.get("/health").json()["articles"] == 61  # the refused writes changed nothing


def test_openapi_declares_both_ways_to_send_a_key(keyed):
    spec = keyed.get("/openapi.json", headers=bearer(READER)).json()  # the docs follow the keys
    schemes = spec["components"]["securitySchemes"]
    assert {s["type"] for s in schemes.values()} == {"http", "apiKey"}
    assert {"400", "401", "403", "422", "429"} <= set(spec["paths"]["/ask"]["post"]["responses"])
    assert "security" not in spec["paths"]["/health"]["get"]


def test_keys_file_and_configuration_errors(tmp_path, bbc_service):
    file = tmp_path / "keys.json"
    file.write_text(json.dumps({READER: ["read"]}))
    settings = bbc_service.settings.model_copy(update={"api_keys_file": file})
    with live_server(create_app(settings, bbc_service)) as http:
        assert http.post("/ask", json=QUESTION, headers=bearer(READER)).status_code == 200
        assert http.post("/ask", json=QUESTION, headers=bearer(WRITER)).status_code == 401

    def error(**update) -> str:
        with pytest.raises(BadSettings) as caught:
            KeyRing.from_settings(bbc_service.settings.model_copy(update=update))
        return str(caught.value)

    message = error(api_keys='{"' + READER + '": ["read"')
    assert "not valid JSON" in message and READER not in message
    assert "unknown scope" in error(api_keys=json.dumps({READER: ["write"]}))
    assert "shorter than 16" in error(api_keys=json.dumps({"short": ["read"]}))
    assert "list" in error(api_keys=json.dumps({READER: "read"}))
    assert "not both" in error(api_keys=json.dumps(KEYS), api_keys_file=file)
    assert "cannot read" in error(api_keys_file=tmp_path / "missing.json")
    assert not KeyRing.from_settings(bbc_service.settings).enabled


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} | extra


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.1", "example.org"])
def test_serve_without_keys_refuses_other_than_loopback(tmp_path, host):
    result = subprocess.run([RAG, "--index-dir", str(tmp_path / "index"), "serve", "--host", host, "--port", "0"],
                            check=False, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=_env())
    assert result.returncode == 1
    assert f"refusing to listen on {host}" in result.stderr and "RAG_API_KEYS" in result.stderr


def test_serve_with_bad_keys_says_why_and_does_not_start(tmp_path):
    result = subprocess.run([RAG, "--index-dir", str(tmp_path / "index"), "serve"], check=False, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL, env=_env(RAG_API_KEYS="[1, 2]"))
    assert result.returncode == 1 and "RAG_API_KEYS must be a JSON object" in result.stderr


@pytest.mark.slow
def test_served_with_keys_the_logs_never_show_one(bbc_index_dir, tmp_path):
    """`rag serve` with keys (access log on): good, bad and refused requests; no key in the output."""
    import shutil

    index = tmp_path / "index"
    shutil.copytree(bbc_index_dir, index)
    port = free_port()
    wrong = "wrong-key-fedcba9876543210"
    server = subprocess.Popen([RAG, "--index-dir", str(index), "serve", "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL, env=_env(RAG_API_KEYS=json.dumps(KEYS)))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline and server.poll() is None, "server did not start"
                time.sleep(0.2)
            assert http.post("/ask", json=QUESTION, headers=bearer(READER)).status_code == 200
            assert http.post("/ask", json=QUESTION, headers=bearer(wrong)).status_code == 401
            assert http.post("/articles", json=ARTICLE, headers={"X-API-Key": READER}).status_code == 403
            assert http.post("/articles", json=ARTICLE, headers={"X-API-Key": WRITER}).status_code == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "API keys: 3 configured" in output
    assert "POST /ask" in output and "401" in output  # the access log was on
    assert "unknown API key" in output  # refusals are logged ...
    for key in (*KEYS, wrong):
        assert key not in output  # ... but never a key
