"""The HTTP API through a real uvicorn server on loopback, over the real model, FAISS and SQLite."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rag.api.app import create_app
from rag.config import Settings
from rag.service import build_service
from rag.store import Store
from tests.support.servers import live_server

KNOWN = [  # question, words the answer must hold, the article it must cite (id prefix)
    ("Which countries vetoed the UN cease-fire resolution?", "Russia and China", "seeds-000"),
    ("How much has TimeWarner offered to pay to settle charges?", "$300m", "business-001"),
    ("Where will Labour hold its 2006 autumn conference?", "Manchester", "politics-004"),
    ("How much did the Mary Poppins production cost to bring to the stage?", "£9m", "entertainment-005"),
]


def _check_citations(client, body: dict) -> None:
    """Every [n] in the answer names a citation and every quote is the article's text verbatim."""
    numbers = {c["n"] for c in body["citations"]}
    assert numbers == set(range(1, len(numbers) + 1))
    for n in numbers:
        assert f"[{n}]" in body["answer"]
    for citation in body["citations"]:
        article = client.get(f"/articles/{citation['article_id']}").json()
        assert article["text"][citation["start"] : citation["end"]] == citation["quote"]
        assert citation["title"] == article["title"]
        assert citation["chunk_id"].startswith(citation["article_id"] + ":")


@pytest.fixture
def client(bbc_service):
    with live_server(create_app(bbc_service.settings, bbc_service)) as http:
        yield http


def test_health_reports_the_index(client):
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["articles"] == 61 and body["chunks"] > 61
    assert body["model"] == "sentence-transformers/all-MiniLM-L6-v2" and body["dimension"] == 384
    assert body["index_generation"] >= 1


@pytest.mark.parametrize(("question", "expected", "article"), KNOWN)
def test_known_answers_cite_the_right_article_verbatim(client, question, expected, article):
    body = client.post("/ask", json={"question": question}).json()
    assert body["abstained"] is False and body["backend"] == "extractive"
    assert expected in body["answer"]
    assert body["citations"][0]["article_id"].startswith(article)
    _check_citations(client, body)


@pytest.mark.parametrize("question", [
    "Who won the 2010 World Cup final in Madrid?",
    "What is the capital of Australia?",
])
def test_questions_the_articles_cannot_answer_abstain(client, question):
    body = client.post("/ask", json={"question": question}).json()
    assert body["abstained"] is True
    assert body["citations"] == []
    assert "articles" in body["answer"]  # says why, in words


def test_search_and_filters(client):
    results = client.post("/search", json={"query": "net cafes closed in China", "top_k": 3}).json()["results"]
    assert len(results) == 3 and results[0]["article_id"].startswith("tech-002")
    assert {"article_id", "chunk_id", "title", "text", "score"} <= set(results[0])
    sport = client.post("/search", json={"query": "net cafes closed in China",
                                         "filters": {"category": "sport"}}).json()["results"]
    assert sport and all(r["category"] == "sport" for r in sport)
    none = client.post("/ask", json={"question": "How many net cafes were closed?",
                                     "filters": {"source": "no such source"}}).json()
    assert none["abstained"] is True


@pytest.mark.parametrize(("body", "needle"), [
    ({"question": ""}, "question"),
    ({"question": "   "}, "empty"),
    ({"question": "why?", "top_k": 0}, "top_k"),
    ({"question": "why?", "top_k": 1000}, "top_k"),
    ({"question": "why?", "colour": "red"}, "colour"),
    ({"question": "why?", "filters": {"since": "2005-02-01", "until": "2005-01-01"}}, "after"),
    ({"question": "why?", "filters": {"since": "last tuesday"}}, "since"),
    ({"question": 42}, "question"),
])
def test_invalid_requests_get_422_naming_the_problem(client, body, needle):
    response = client.post("/ask", json=body)
    assert response.status_code == 422
    assert needle in response.text


def test_unknown_article_is_404(client):
    assert client.get("/articles/no-such-id").status_code == 404
    response = client.delete("/articles/no-such-id")
    assert response.status_code == 404 and "no-such-id" in response.json()["detail"]


def test_oversized_body_is_413(bbc_service):
    settings = bbc_service.settings.model_copy(update={"max_request_bytes": 5_000})
    with live_server(create_app(settings, bbc_service)) as http:
        response = http.post("/articles", json={"title": "Big", "text": "word " * 5_000})
        assert response.status_code == 413
        assert "limit" in response.json()["detail"]
        # chunked upload without Content-Length is counted as it streams
        response = http.post("/articles", content=iter([b'{"title": "Big", "text": "', b"x" * 6_000, b'"}']),
                             headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert http.get("/health").json()["articles"] == 61  # nothing stored


def test_ingest_update_delete_leave_nothing_stale(service):
    original = {"id": "wire-1", "title": "Zorblat mine reopens",
                "text": "The Zorblat copper mine in Quellan reopened on Monday after a strike. "
                        "The mine employs 4,200 workers, the owner Vantrex said.",
                "source": "Wire", "published_at": "2005-03-01", "category": "business"}
    with live_server(create_app(service.settings, service)) as http:
        first = http.post("/articles", json=original).json()
        assert first["ingested"] == ["wire-1"] and first["failed"] == []
        assert http.post("/articles", json=original).json()["unchanged"] == ["wire-1"]

        body = http.post("/ask", json={"question": "How many workers does the Zorblat mine employ?"}).json()
        assert "4,200" in body["answer"] and body["citations"][0]["article_id"] == "wire-1"
        _check_citations(http, body)

        changed = dict(original, text="The Zorblat copper mine in Quellan closed for good on Friday. "
                                      "Its 900 remaining workers were laid off, the owner Vantrex said.")
        assert http.post("/articles", json=changed).json()["ingested"] == ["wire-1"]
        stale = http.post("/search", json={"query": "4,200 workers strike reopened", "top_k": 10}).json()
        assert all("4,200" not in r["text"] and "reopened" not in r["text"] for r in stale["results"])
        body = http.post("/ask", json={"question": "How many workers were laid off at the Zorblat mine?"}).json()
        assert "900" in body["answer"]
        _check_citations(http, body)

        assert http.delete("/articles/wire-1").json() == {"deleted": "wire-1"}
        assert http.get("/articles/wire-1").status_code == 404
        results = http.post("/search", json={"query": "Zorblat mine Vantrex"}).json()["results"]
        assert all(r["article_id"] != "wire-1" for r in results)
        body = http.post("/ask", json={"question": "How many workers were laid off at the Zorblat mine?"}).json()
        assert body["abstained"] is True
        assert http.get("/health").json()["articles"] == 0
    # the derived indexes hold no vector of the deleted article either
    indexes = service.store.indexes()
    assert len(indexes.vectors) == 0 and len(indexes.keywords) == 0


def test_a_batch_with_bad_items_stores_the_good_ones(service):
    batch = [
        {"title": "Good one", "text": "The Quellan festival drew 12,000 visitors this year, organisers said."},
        {"title": "No text after cleaning", "html": "<script>var x = 1;</script>"},
        {"title": "Bad date", "text": "Some text here that is fine.", "published_at": "yesterday-ish"},
        {"id": "bad id/with slash", "title": "Bad id", "text": "Some more fine text here."},
    ]
    with live_server(create_app(service.settings, service)) as http:
        response = http.post("/articles", json=batch)
        assert response.status_code == 200
        body = response.json()
        assert len(body["ingested"]) == 1
        failed = {f["origin"]: f["reason"] for f in body["failed"]}
        assert set(failed) == {"request item 1", "request item 2", "request item 3"}
        assert "text" in failed["request item 1"]
        assert "published_at" in failed["request item 2"]
        assert "id" in failed["request item 3"]
        single = http.post("/articles", json={"title": "Only a title"})
        assert single.status_code == 422 and "text" in str(single.json()["detail"])
        # an item the schema refuses (neither text nor html) refuses the whole list, as a wrong type does
        schemaless = http.post("/articles", json=[batch[0], {"title": "No text at all"}])
        assert schemaless.status_code == 422 and "exactly one of" in schemaless.text
        wrong_types = http.post("/articles", json={"title": 7, "text": ["not", "a", "string"]})
        assert wrong_types.status_code == 422
        assert http.get("/health").json()["articles"] == 1


def test_date_and_source_filters(service):
    articles = [
        {"id": f"d{i}", "title": f"Harbour report {i}", "source": src, "published_at": day, "category": "local",
         "text": f"The Quellan harbour handled {n} ships in the week, the port authority said."}
        for i, (src, day, n) in enumerate([("Wire", "2005-01-10", "310"), ("Wire", "2005-02-10", "420"),
                                           ("Gazette", "2005-03-10", "530")])
    ]
    with live_server(create_app(service.settings, service)) as http:
        assert len(http.post("/articles", json=articles).json()["ingested"]) == 3

        def ids(filters):
            body = http.post("/search", json={"query": "ships harbour", "top_k": 10, "filters": filters})
            return {r["article_id"] for r in body.json()["results"]}

        assert ids({}) == {"d0", "d1", "d2"}
        assert ids({"since": "2005-02-01"}) == {"d1", "d2"}
        assert ids({"until": "2005-02-10"}) == {"d0", "d1"}  # inclusive
        assert ids({"since": "2005-02-01", "until": "2005-02-28"}) == {"d1"}
        assert ids({"source": "Gazette"}) == {"d2"}
        body = http.post("/ask", json={"question": "How many ships did the Quellan harbour handle?",
                                       "filters": {"since": "2005-03-01"}}).json()
        assert "530" in body["answer"] and body["citations"][0]["article_id"] == "d2"


def test_restart_reloads_the_same_index_and_answers_the_same(bbc_service, embedder):
    question = {"question": KNOWN[2][0], "as_of": "2024-01-01"}  # "now" moves: the asking date is fixed
    with live_server(create_app(bbc_service.settings, bbc_service)) as http:
        before = http.post("/ask", json=question).json()
        generation = http.get("/health").json()["index_generation"]
    settings = bbc_service.settings
    bbc_service.close()
    again = build_service(settings, embedder)
    try:
        assert again.store.load_problem is None  # loaded from disk, not rebuilt
        with live_server(create_app(settings, again)) as http:
            assert http.post("/ask", json=question).json() == before
            assert http.get("/health").json()["index_generation"] == generation
    finally:
        again.close()


def test_an_index_from_before_sentence_vectors_is_migrated_and_answers_the_same(bbc_service, embedder):
    """Schema 1 stored sentences as bare spans: opening it keeps every span, embeds them once,
    and the service answers as an index built today does."""
    question = {"question": KNOWN[1][0], "as_of": "2024-01-01"}  # "now" moves: the asking date is fixed
    with live_server(create_app(bbc_service.settings, bbc_service)) as http:
        before = http.post("/ask", json=question).json()
    settings = bbc_service.settings
    spans = bbc_service.store.docstore._db().execute(
        "SELECT article_id, start, end FROM sentences ORDER BY article_id, start").fetchall()
    bbc_service.close()
    db = sqlite3.connect(settings.index_dir / "docstore.sqlite")
    db.executescript("""
        CREATE TABLE old (article_id TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
                          PRIMARY KEY (article_id, start)) WITHOUT ROWID;
        INSERT INTO old SELECT article_id, start, end FROM sentences;
        DROP TABLE sentences;
        ALTER TABLE old RENAME TO sentences;
        UPDATE meta SET value = '1' WHERE key = 'schema_version';
    """)
    db.close()
    again = build_service(settings, embedder)
    try:
        docstore = again.store.docstore
        assert docstore._db().execute(
            "SELECT article_id, start, end FROM sentences ORDER BY article_id, start").fetchall() == spans
        assert docstore.sentences_without_vectors(limit=1) == []
        assert again.store.check().ok
        with live_server(create_app(settings, again)) as http:
            assert http.post("/ask", json=question).json() == before
    finally:
        again.close()


def test_an_index_of_another_model_is_refused_and_reported(tmp_path):
    """The app loads in the background: /health says loading, then why it failed; routes 503."""
    Store(tmp_path / "index", "some-other-model", 384).close()
    settings = Settings(index_dir=tmp_path / "index")
    with live_server(create_app(settings)) as http:
        deadline = time.monotonic() + 60
        while (health := http.get("/health")).json()["status"] == "loading":
            assert health.status_code == 503
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert health.status_code == 503
        assert health.json()["status"] == "failed" and "some-other-model" in health.json()["error"]
        response = http.post("/ask", json={"question": "Anything?"})
        assert response.status_code == 503 and "some-other-model" in response.json()["detail"]


def test_server_keeps_answering_while_another_process_ingests(bbc_service, tmp_path):
    """`rag ingest` writing the index the server reads: every request succeeds meanwhile, and
    the server answers from the new articles once the writer is done."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(20):
        (docs / f"{i:03d}.jsonl").write_text(
            f'{{"id": "late-{i}", "title": "Quellan dispatch {i}", '
            f'"text": "The Quellan observatory recorded {1000 + i} comets in survey {i}, its director said."}}\n')
    (docs / "000.jsonl").write_text(
        '{"id": "late-0", "title": "Quellan observatory head named", '
        '"text": "Mira Oskarsdottir was named director of the Quellan observatory on Tuesday."}\n')
    rag = str(Path(sys.executable).parent / "rag")
    statuses: list[int] = []
    # No rate limit here: answers come in milliseconds, and this test asks as fast as it can.
    settings = bbc_service.settings.model_copy(update={"rate_limit_per_min": 0})
    with live_server(create_app(settings, bbc_service)) as http:
        writer = subprocess.Popen([rag, "--index-dir", str(bbc_service.settings.index_dir), "ingest", str(docs)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL)
        stop = threading.Event()

        def ask_repeatedly() -> None:
            while not stop.is_set():
                statuses.append(http.post("/ask", json={"question": KNOWN[0][0]}).status_code)

        asker = threading.Thread(target=ask_repeatedly)
        asker.start()
        out, err = writer.communicate(timeout=300)
        stop.set()
        asker.join()
        assert writer.returncode == 0, err
        assert "ingested 20" in out
        assert statuses and set(statuses) == {200}
        assert http.get("/health").json()["articles"] == 81
        body = http.post("/ask", json={"question": "Who was named director of the Quellan observatory?"}).json()
        assert "Mira Oskarsdottir" in body["answer"] and body["citations"][0]["article_id"] == "late-0"


def test_warm_up_reads_only_and_works_on_an_empty_index(bbc_service, embedder, tmp_path):
    """`rag serve` warms the service before the first request: it searches, and changes nothing."""
    generation, counts = bbc_service.store.docstore.generation(), bbc_service.store.docstore.counts()
    bbc_service.warm_up()
    assert bbc_service.store.docstore.generation() == generation
    assert bbc_service.store.docstore.counts() == counts
    assert bbc_service.search("Where will Labour hold its 2006 autumn conference?", 3)  # still answers
    empty = build_service(Settings(index_dir=tmp_path / "empty"), embedder)
    try:
        empty.warm_up()  # an index with no article yet: nothing to find, nothing raised
        assert empty.store.docstore.counts() == (0, 0)
    finally:
        empty.close()
