"""What only the PostgreSQL docstore does: a schema of its own versions, writers excluded across
hosts by an advisory lock, replicas with their own index folders following the shared database,
and a server restart costing errors (DocstoreUnavailable) only while it is down. Real server."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import psycopg
import pytest

from rag.chunking import Chunker
from rag.errors import DocstoreUnavailable, IndexMismatch, WriterBusy
from rag.indexer import embedded, sentences_of
from rag.store import Store
from rag.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresDocstore, redacted
from rag.types import Article

DIM = 8


@pytest.fixture
def url(postgres) -> str:
    return postgres.create_database(f"pg_{uuid.uuid4().hex[:12]}")


def _article(i: int) -> Article:
    return Article(id=f"a{i}", title=f"Title {i}",
                   text=" ".join(f"Sentence {j} about topic{i} mentions item{j}." for j in range(10)))


def _embedded(article: Article):
    chunks = Chunker(budget=40, overlap=8).chunk(article)
    vectors = np.random.default_rng(0).normal(size=(len(sentences_of(chunks)), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return embedded(article, chunks, vectors)


def _put(store: Store, article: Article) -> None:
    with store.writer():
        store.docstore.put([_embedded(article)])
        store.publish()


def test_schema_is_created_versioned_and_a_newer_one_refused(url):
    docstore = PostgresDocstore(url)
    assert docstore.schema_version() == SCHEMA_VERSION and docstore.generation() == 0
    assert docstore.upgrade() == []  # nothing left to apply
    docstore.close()
    again = PostgresDocstore(url)  # opening an upgraded database changes nothing
    assert again.schema_version() == SCHEMA_VERSION
    again.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(IndexMismatch, match=f"schema version {SCHEMA_VERSION + 1}"):
        PostgresDocstore(url)


def test_the_password_never_appears_in_messages(url):
    assert "rag-test-password" not in redacted(url) and "***" in redacted(url)
    docstore = PostgresDocstore(url)
    docstore.bind_model("model-a", DIM)
    with pytest.raises(IndexMismatch) as refused:
        docstore.bind_model("model-b", DIM)
    assert "rag-test-password" not in str(refused.value) and "model-a" in str(refused.value)
    docstore.close()


def test_writers_on_two_hosts_exclude_each_other_and_readers_follow(url, tmp_path):
    """Two index folders (two hosts) over one database: the advisory lock, not the folders'
    flocks, keeps a second writer out; each catches its own FAISS and BM25 up from the database."""
    host_a = Store(tmp_path / "a", "m", DIM, docstore_url=url)
    host_b = Store(tmp_path / "b", "m", DIM, docstore_url=url)
    try:
        with host_a.writer(), pytest.raises(WriterBusy, match="docstore"), host_b.writer(timeout=0.2):
            pass
        _put(host_a, _article(1))
        _put(host_b, _article(2))
        for store in (host_a, host_b):
            indexes = store.indexes()
            assert indexes.generation == store.docstore.generation() == 2
            assert set(indexes.vectors.ids().tolist()) == set(store.docstore.sentence_rowids().tolist())
            assert {r for r, _ in indexes.keywords.search("topic1", 5)} and \
                {r for r, _ in indexes.keywords.search("topic2", 5)}
            assert store.check().ok
        assert (tmp_path / "b" / "manifest.json").exists()  # b persisted its own caught-up files
    finally:
        host_a.close()
        host_b.close()


def test_a_server_restart_costs_errors_only_while_it_is_down(postgres, url, tmp_path):
    store = Store(tmp_path, "m", DIM, docstore_url=url)
    try:
        _put(store, _article(1))
        generation = store.docstore.generation()
        postgres.stop()
        try:
            with pytest.raises(DocstoreUnavailable, match="cannot be reached") as down:
                store.docstore.get_article("a1")
            assert "rag-test-password" not in str(down.value)
            with pytest.raises(DocstoreUnavailable):
                store.indexes()
        finally:
            postgres.start()
        # The same store, no reopening: dead pooled connections are replaced; nothing was lost.
        assert store.docstore.generation() == generation
        assert store.docstore.get_article("a1").title == "Title 1"
        _put(store, _article(2))
        assert store.check().ok and store.docstore.counts()[0] == 2
    finally:
        store.close()


def test_a_writer_whose_lock_died_with_the_server_writes_nothing(postgres, url, tmp_path):
    """A restart ends the session holding the advisory lock, so another writer may hold it now:
    the old writer's next write fails rather than going on beside it."""
    store = Store(tmp_path, "m", DIM, docstore_url=url)
    try:
        with store.writer():
            postgres.restart()
            with pytest.raises(DocstoreUnavailable, match="writer lock"):
                store.docstore.put([_embedded(_article(1))])
        assert store.docstore.counts() == (0, 0)
        _put(store, _article(1))  # a fresh lock, and the write goes through
        assert store.docstore.counts()[0] == 1 and store.check().ok
    finally:
        store.close()


def test_vectors_in_qdrant_with_the_docstore_in_postgresql(url, tmp_path):
    """The Qdrant collection is filled from PostgreSQL (vectors, filter payloads) as from SQLite."""
    from datetime import UTC, date, datetime

    from rag.store import QdrantTarget
    from rag.types import Filters

    target = QdrantTarget("rag_pg_test", path=tmp_path / "qdrant")
    store = Store(tmp_path / "index", "m", DIM, qdrant=target, docstore_url=url)
    try:
        dated = Article(id="dated", title="Dated", category="news", published_at=datetime(2005, 3, 1, tzinfo=UTC),
                        text=" ".join(f"Sentence {j} about harbours mentions item{j}." for j in range(10)))
        _put(store, dated)
        _put(store, _article(2))
        assert store.check().ok and store.vector_store == "qdrant"
        query = store.docstore.vectors_for(store.docstore.sentence_rowids()[:1])[0]
        since = Filters(since=date(2005, 1, 1))
        allowed = store.docstore.sentence_rowids_matching(since)
        hits = store.indexes().dense(query, 5, allowed, since)
        assert hits and set(store.docstore.chunk_articles(np.array([c for c, _ in hits])).values()) == {"dated"}
        assert store.docstore.sentence_metadata(allowed[:1])[int(allowed[0])]["published_at"] == \
            "2005-03-01T00:00:00+00:00"  # as SQLite stores it: Qdrant compares these strings
    finally:
        store.close()


def test_rag_db_upgrade_creates_then_finds_nothing_to_do(url):
    import os
    import subprocess
    import sys
    from pathlib import Path

    rag = str(Path(sys.executable).parent / "rag")
    env = {**os.environ, "RAG_DOCSTORE_URL": url}
    first = subprocess.run([rag, "db", "upgrade"], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    every = ", ".join(str(version) for version, _ in MIGRATIONS)
    assert f"applied migration(s) {every}; schema version {SCHEMA_VERSION}" in first.stdout
    again = subprocess.run([rag, "db", "upgrade"], check=False, env=env, capture_output=True, text=True, timeout=120)
    assert "nothing to apply" in again.stdout
    assert "rag-test-password" not in first.stdout + first.stderr + again.stdout + again.stderr
    unset = subprocess.run([rag, "db", "upgrade"], check=False, env={k: v for k, v in env.items() if k != "RAG_DOCSTORE_URL"},
                           capture_output=True, text=True, timeout=120)
    assert unset.returncode == 1 and "RAG_DOCSTORE_URL is not set" in unset.stderr


def test_a_database_at_schema_1_is_migrated_keeping_its_articles(url, tmp_path):
    """A server left at the first schema (before authors, sources, feedback and text keys): opening
    it applies migrations 2 and 3, and every article, chunk and vector stays, with its text key."""
    docstore = PostgresDocstore(url)
    docstore.put([_embedded(_article(1))])
    before = (docstore.counts(), docstore.all_vectors()[0].tolist(), docstore.generation())
    docstore.close()
    with psycopg.connect(url, autocommit=True) as conn:  # back to what schema 1 created
        conn.execute("DROP TABLE feedback, source_items, sources")
        conn.execute("ALTER TABLE articles DROP COLUMN author, DROP COLUMN date_source, DROP COLUMN text_key")
        conn.execute("DELETE FROM schema_migrations WHERE version > 1")
    migrated = PostgresDocstore(url)
    try:
        assert migrated.applied == [2, 3] and migrated.schema_version() == SCHEMA_VERSION == 3
        assert migrated.holders([_article(1).text_key]) == {_article(1).text_key: "a1"}
        assert (migrated.counts(), migrated.all_vectors()[0].tolist(), migrated.generation()) == before
        article = migrated.get_article("a1")
        assert article.text == _article(1).text and article.author is None and article.date_source == "none"
        assert migrated.feedback() == [] and migrated.sources() == []
        migrated.put([_embedded(dataclasses.replace(_article(2), author="Ann Example", date_source="meta"))])
        assert migrated.get_article("a2").author == "Ann Example"
    finally:
        migrated.close()
