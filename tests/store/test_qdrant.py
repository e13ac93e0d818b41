"""Qdrant as the vector store (RAG_VECTOR_STORE=qdrant), in qdrant-client's embedded local mode,
through the real Store, Service, model and HTTP server; flat FAISS over the same docstore is the
reference."""

from __future__ import annotations

import dataclasses
import fcntl
import shutil
import subprocess
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from rag.api.app import create_app
from rag.config import Settings
from rag.errors import BadSettings, IndexMismatch
from rag.ingest import read_file
from rag.service import Service, build_service
from rag.store import QdrantTarget
from rag.store.qdrant import default_collection
from rag.types import NO_FILTERS, Article, Filters
from tests.support.paths import BBC_SUBSET, RAG, SEED_ARTICLE
from tests.support.servers import live_server

QUERIES = ["net cafes and broadband in Europe", "TimeWarner settles charges", "football match injury",
           "Labour party conference", "film box office takings", "who vetoed the UN resolution"]


def _dated(n: int, article: Article) -> Article:
    """Made-up dates (every fifth article undated) and two sources, for the filters."""
    published = None if n % 5 == 0 else datetime(2005, 1 + n % 3, 1 + n % 27, 12, tzinfo=UTC)
    return dataclasses.replace(article, published_at=published, source="Wire" if n % 2 else "Desk")


@pytest.fixture(scope="module")
def dated_dir(bbc_index_dir: Path, tmp_path_factory, embedder) -> Path:
    """The session's BBC index (FAISS) with dates and sources given to its articles: a re-ingest
    whose chunk texts are all cached, so nothing is embedded again."""
    folder = tmp_path_factory.mktemp("dated") / "index"
    shutil.copytree(bbc_index_dir, folder)
    svc = build_service(Settings(index_dir=folder), embedder)
    articles = [a for p in [SEED_ARTICLE, *BBC_SUBSET] for a in read_file(p, max_bytes=5_000_000)]
    report = svc.ingest(_dated(n, a) for n, a in enumerate(articles))
    assert len(report.ingested) == len(articles) and not report.failed
    svc.close()
    return folder


def _qdrant_settings(index_dir: Path, qdrant_dir: Path, **more) -> Settings:
    return Settings(index_dir=index_dir, vector_store="qdrant", qdrant_path=qdrant_dir, **more)


@pytest.fixture
def pair(dated_dir: Path, tmp_path: Path, embedder):
    """(qdrant service, flat FAISS service) over copies of the same docstore."""
    for name in ("q", "f"):
        shutil.copytree(dated_dir, tmp_path / name)
    qdrant = build_service(_qdrant_settings(tmp_path / "q", tmp_path / "qdrant"), embedder)
    faiss = build_service(Settings(index_dir=tmp_path / "f", faiss_index="flat"), embedder)  # exact, as Qdrant
    yield qdrant, faiss
    qdrant.close()
    faiss.close()


def _dense(service: Service, query: str, k: int, filters: Filters = NO_FILTERS) -> list[tuple[int, float]]:
    allowed = None if filters.empty else service.store.docstore.sentence_rowids_matching(filters)
    vector = service.embedder.embed([query])[0]
    return service.store.indexes().vectors.search(vector, k, allowed, None if filters.empty else filters)


def _same_hits(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in want]
    assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_built_from_the_docstore_with_the_same_neighbours_as_flat_faiss(pair):
    qdrant, faiss = pair
    store = qdrant.store
    sentences = len(store.docstore.sentence_rowids())
    assert store.vector_store == "qdrant" and store.load_problem is None
    # Filled from the vectors in SQLite on open: every sentence, nothing else.
    assert store.indexes().vectors.last_sync == (0, sentences)
    assert store.check().ok and store.check().vectors == sentences
    for query in QUERIES:
        _same_hits(_dense(qdrant, query, 20), _dense(faiss, query, 20))
        # The whole hybrid pipeline agrees too.
        assert [p.chunk_id for p in qdrant.search(query, 10)] == [p.chunk_id for p in faiss.search(query, 10)]


@pytest.mark.parametrize("filters", [
    Filters(category="tech"),
    Filters(source="Wire"),
    Filters(since=date(2005, 2, 1)),
    Filters(since=date(2005, 1, 5), until=date(2005, 1, 20)),
    Filters(category="sport", source="Desk", until=date(2005, 2, 10)),
    Filters(as_of=datetime(2005, 2, 10, tzinfo=UTC)),  # undated articles pass
    Filters(window_start=datetime(2005, 1, 5, tzinfo=UTC), window_end=datetime(2005, 1, 20, tzinfo=UTC)),
])
def test_filters_return_only_allowed_ids_and_enough_of_them(pair, filters):
    qdrant, faiss = pair
    allowed = set(qdrant.store.docstore.sentence_rowids_matching(filters).tolist())
    assert 0 < len(allowed) < len(qdrant.store.docstore.sentence_rowids())
    for query in QUERIES[:3]:
        for k in (5, 100):  # 100 is more than any of these filters allows
            got = _dense(qdrant, query, k, filters)
            assert {i for i, _ in got} <= allowed
            assert len(got) == min(k, len(allowed))
            _same_hits(got, _dense(faiss, query, k, filters))
        passages = qdrant.search(query, 5, filters)
        assert passages and all(p.category == filters.category for p in passages if filters.category)
        assert [p.chunk_id for p in passages] == [p.chunk_id for p in faiss.search(query, 5, filters)]
    # Undated articles fail every date filter, as in the docstore.
    if filters.since or filters.until:
        assert all(p.published_at is not None for p in qdrant.search("the", 50, filters))


def test_an_allowed_id_set_without_filters_selects_exactly_those(pair):
    """The id-list path (HasIdCondition): one article's sentences."""
    qdrant, _ = pair
    store = qdrant.store
    sentences = store.docstore.sentence_metadata(store.docstore.sentence_rowids().tolist())
    article = next(m["article_id"] for m in sentences.values() if m["article_id"].startswith("tech-003"))
    ids = np.array(sorted(r for r, m in sentences.items() if m["article_id"] == article), dtype=np.int64)
    vector = qdrant.embedder.embed(["broadband"])[0]
    got = store.indexes().vectors.search(vector, 50, ids)
    assert sorted(i for i, _ in got) == ids.tolist()


def test_update_and_delete_leave_no_stale_points(pair):
    qdrant, _ = pair
    original = Article(id="wire-1", title="Zorblat mine reopens", category="business", source="Wire",
                       text="The Zorblat copper mine in Quellan reopened on Monday after a strike. "
                            "The mine employs 4,200 workers, the owner Vantrex said.")
    assert qdrant.ingest([original]).ingested == ["wire-1"]
    assert "Zorblat" in qdrant.search("Zorblat copper mine workers", 1)[0].text

    changed = dataclasses.replace(original, text="The Zorblat copper mine in Quellan closed for good on "
                                                  "Friday. Its 900 remaining workers were laid off.")
    assert qdrant.ingest([changed]).ingested == ["wire-1"]
    hits = qdrant.search("Zorblat copper mine workers strike reopened", 10)
    assert "laid off" in hits[0].text
    assert all("4,200" not in p.text for p in hits)
    assert qdrant.store.check().ok  # the old chunks' points are gone, not merely unreachable

    qdrant.delete("wire-1")
    rowids = qdrant.store.docstore.sentence_rowids()
    assert np.array_equal(qdrant.store.indexes().vectors.ids(), rowids)
    assert all(p.article_id != "wire-1" for p in qdrant.search("Zorblat copper mine laid off", 20))
    vector = qdrant.embedder.embed(["Zorblat copper mine laid off"])[0]
    assert {i for i, _ in qdrant.store.indexes().vectors.search(vector, 5)} <= set(rowids.tolist())


def test_reingest_and_reopen_change_nothing(dated_dir, tmp_path, embedder):
    shutil.copytree(dated_dir, tmp_path / "index")
    settings = _qdrant_settings(tmp_path / "index", tmp_path / "qdrant")
    svc = build_service(settings, embedder)
    vectors = svc.store.indexes().vectors
    before = (svc.store.docstore.generation(), vectors.recorded_generation(), vectors.ids())
    results = [[(p.chunk_id, p.score) for p in svc.search(q, 10)] for q in QUERIES]
    articles = [a for p in [SEED_ARTICLE, *BBC_SUBSET] for a in read_file(p, max_bytes=5_000_000)]
    report = svc.ingest(_dated(n, a) for n, a in enumerate(articles))
    assert report.ingested == [] and len(report.unchanged) == len(articles)
    after = (svc.store.docstore.generation(), vectors.recorded_generation(), vectors.ids())
    assert after[:2] == before[:2] and np.array_equal(after[2], before[2])
    svc.close()

    again = build_service(settings, embedder)
    try:
        vectors = again.store.indexes().vectors
        assert vectors.last_sync == (0, 0) and again.store.load_problem is None  # no point written
        assert vectors.recorded_generation() == before[0]
        reopened = [[(p.chunk_id, p.score) for p in again.search(q, 10)] for q in QUERIES]
        assert [[c for c, _ in r] for r in reopened] == [[c for c, _ in r] for r in results]
        assert np.allclose([s for r in reopened for _, s in r], [s for r in results for _, s in r], atol=1e-6)
    finally:
        again.close()


def test_a_collection_behind_or_ahead_is_caught_up_from_the_docstore(dated_dir, tmp_path, embedder):
    shutil.copytree(dated_dir, tmp_path / "index")
    settings = _qdrant_settings(tmp_path / "index", tmp_path / "qdrant")
    build_service(settings, embedder).close()
    name = default_collection(tmp_path / "index")

    # Ahead and behind at once: points lost, a point for a chunk the docstore never had, and a
    # sync that was cut short.
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    lost = [int(p.id) for p in client.scroll(name, limit=5, with_payload=False)[0]]
    client.delete(name, points_selector=models.PointIdsList(points=lost), wait=True)
    client.upsert(name, points=[models.PointStruct(id=10**9, vector=[1.0] * 384,
                                                   payload={"article_id": "ghost"})], wait=True)
    client.update_collection(name, metadata={"generation": -1})
    client.close()
    svc = build_service(settings, embedder)
    try:
        assert name in svc.store.load_problem and "cut short" in svc.store.load_problem
        assert svc.store.indexes().vectors.last_sync == (1, 5)
        assert svc.store.check().ok
        assert np.array_equal(svc.store.indexes().vectors.ids(), svc.store.docstore.sentence_rowids())
    finally:
        svc.close()

    # Behind: articles ingested while the vectors were in FAISS reach the collection on open.
    faiss = build_service(Settings(index_dir=tmp_path / "index"), embedder)
    faiss.ingest([Article(id="late-1", title="Quellan elects a mayor", category="politics",
                          text="Voters in Quellan elected Mara Vintner as mayor on Sunday by 300 votes.")])
    faiss.close()
    svc = build_service(settings, embedder)
    try:
        assert svc.search("Who was elected mayor of Quellan?", 1)[0].article_id == "late-1"
        assert svc.store.check().ok
    finally:
        svc.close()


def test_a_process_without_the_writer_lock_never_writes_the_collection(dated_dir, tmp_path, embedder):
    """While another process writes (it holds writer.lock), the collection is searched as it
    stands; once the lock is free the next search brings it up to the docstore."""
    shutil.copytree(dated_dir, tmp_path / "index")
    settings = _qdrant_settings(tmp_path / "index", tmp_path / "qdrant")
    build_service(settings, embedder).close()
    faiss = build_service(Settings(index_dir=tmp_path / "index"), embedder)
    faiss.ingest([Article(id="late-1", title="Quellan elects a mayor", category="politics",
                          text="Voters in Quellan elected Mara Vintner as mayor on Sunday by 300 votes.")])
    late = {int(faiss.store.docstore.sentence_rowids()[-1])}  # its one sentence: rowids only grow
    generation = faiss.store.docstore.generation()
    faiss.close()
    with open(tmp_path / "index" / "writer.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        svc = build_service(settings, embedder)
        try:
            vectors = svc.store.indexes().vectors
            assert vectors.recorded_generation() == generation - 1 and svc.store.indexes().generation == -1
            assert not late & {i for i, _ in _dense(svc, "Who was elected mayor of Quellan?", 5)}
            fcntl.flock(handle, fcntl.LOCK_UN)
            assert late <= {i for i, _ in _dense(svc, "Who was elected mayor of Quellan?", 5)}
            assert vectors.recorded_generation() == generation == svc.store.indexes().generation
            assert svc.store.check().ok
        finally:
            svc.close()


def test_a_collection_of_another_model_dimension_or_index_is_refused(dated_dir, tmp_path, embedder):
    shutil.copytree(dated_dir, tmp_path / "index")
    settings = _qdrant_settings(tmp_path / "index", tmp_path / "qdrant", qdrant_collection="news")
    for size, model in ((8, embedder.name), (384, "another-model")):
        client = QdrantClient(path=str(tmp_path / "qdrant"))
        client.delete_collection("news")
        client.create_collection("news", vectors_config=models.VectorParams(size=size, distance=models.Distance.COSINE),
                                 metadata={"embedding_model": model})
        client.close()
        with pytest.raises(IndexMismatch, match=r"collection 'news'.*delete that collection") as error:
            build_service(settings, embedder)
        assert f"{size}-dimensional" in str(error.value) and model in str(error.value)

    # Our model, but filled from another docstore: the same sentence id (the next rowid of two copies
    # of one docstore) holds another text's vector there.
    client = QdrantClient(path=str(tmp_path / "qdrant"))  # the refusals released the folder's lock
    client.delete_collection("news")
    client.close()
    shutil.copytree(dated_dir, tmp_path / "other")
    other = build_service(_qdrant_settings(tmp_path / "other", tmp_path / "qdrant", qdrant_collection="news"),
                          embedder)
    other.ingest([Article(id="y", title="Tea", text="The price of tea in London doubled in 1900.")])
    other.close()
    svc = build_service(Settings(index_dir=tmp_path / "index"), embedder)
    svc.ingest([Article(id="z", title="Kites", text="Kites fly over the hills of Quellan every spring.")])
    svc.close()
    with pytest.raises(IndexMismatch, match="another index"):
        build_service(settings, embedder)


def test_qdrant_settings_are_checked(tmp_path, embedder):
    with pytest.raises(BadSettings, match="RAG_QDRANT_URL.*RAG_QDRANT_PATH"):
        build_service(Settings(index_dir=tmp_path / "i", vector_store="qdrant"), embedder)
    with pytest.raises(BadSettings, match="exactly one"):
        QdrantTarget.from_settings(Settings(vector_store="qdrant", qdrant_url="http://q:6333",
                                            qdrant_path=tmp_path))
    with pytest.raises(BadSettings, match="RAG_QDRANT_COLLECTION"):
        QdrantTarget.from_settings(Settings(vector_store="qdrant", qdrant_url="http://q:6333",
                                            qdrant_collection="a/b"))
    target = QdrantTarget.from_settings(Settings(vector_store="qdrant", qdrant_url="http://q:6333",
                                                 qdrant_api_key="s3cret", index_dir=tmp_path / "news"))
    assert target.collection == "rag_news" and "s3cret" not in repr(target)
    # Embedded mode: one client per folder, so a second store on it is refused by name.
    settings = _qdrant_settings(tmp_path / "i", tmp_path / "qdrant")
    svc = build_service(settings, embedder)
    try:
        with pytest.raises(BadSettings, match="RAG_QDRANT_PATH .* in use"):
            build_service(_qdrant_settings(tmp_path / "j", tmp_path / "qdrant"), embedder)
    finally:
        svc.close()


def test_ask_and_search_over_http_and_rag_check(dated_dir, tmp_path, embedder, monkeypatch):
    shutil.copytree(dated_dir, tmp_path / "index")
    env = {"RAG_VECTOR_STORE": "qdrant", "RAG_QDRANT_PATH": str(tmp_path / "qdrant")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(index_dir=tmp_path / "index")
    svc = build_service(settings, embedder)
    try:
        assert svc.store.vector_store == "qdrant"
        with live_server(create_app(settings, svc)) as http:
            assert http.get("/health").json()["status"] == "ok"
            body = http.post("/ask", json={"question": "How much has TimeWarner offered to pay to settle "
                                                       "charges?"}).json()
            assert "$300m" in body["answer"] and body["citations"][0]["article_id"].startswith("business-001")
            found = http.post("/search", json={"query": "broadband", "top_k": 5,
                                               "filters": {"category": "tech", "since": "2005-02-01"}}).json()
            assert found["results"] and all(r["category"] == "tech" for r in found["results"])
            assert all(r["published_at"] >= "2005-02-01" for r in found["results"])
            assert http.delete("/articles/" + body["citations"][0]["article_id"]).status_code in (200, 204)
            again = http.post("/search", json={"query": "TimeWarner settle charges", "top_k": 10}).json()
            assert all(not r["article_id"].startswith("business-001") for r in again["results"])
    finally:
        svc.close()
    # `rag check` (no model loaded) compares the collection with the docstore, id by id.
    check = subprocess.run([RAG, "--index-dir", str(tmp_path / "index"), "check"], check=False,
                           capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert check.returncode == 0, check.stderr
    assert "Qdrant vectors" in check.stdout and "ok: the docstore and every index agree" in check.stdout
