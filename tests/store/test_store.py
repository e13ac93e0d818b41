"""The store on its own: real SQLite or a real PostgreSQL server (each test runs on both), real
FAISS and BM25 files, vectors made up (no model needed)."""

from __future__ import annotations

import dataclasses
import sqlite3
import uuid

import numpy as np
import pytest

from rag.chunking import Chunker
from rag.errors import ArticleNotFound, IndexMismatch, WriterBusy
from rag.indexer import embedded, sentences_of
from rag.store import Store
from rag.types import Article

DIM = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def docstore_url(request) -> str | None:
    """None for the SQLite file in the index folder, or a fresh database on the session's server."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres").create_database(f"store_{uuid.uuid4().hex[:12]}")


def _query(store: Store, sql: str) -> list[tuple]:
    """Rows of `sql` read straight from the docstore's database, past the code under test."""
    if store.docstore_url is None:
        with sqlite3.connect(store.index_dir / "docstore.sqlite") as db:
            return db.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(store.docstore_url) as db:
        return db.execute(sql).fetchall()


def _put(store: Store, article: Article, seed: int = 0) -> list:
    chunks = Chunker(budget=40, overlap=8).chunk(article)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(sentences_of(chunks)), DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with store.writer():
        store.docstore.put([embedded(article, chunks, vectors)])
        store.publish()
    return chunks


def _article(i: int, words: str = "") -> Article:
    body = " ".join(f"Sentence {j} about topic{i} {words} mentions item{j}." for j in range(12))
    return Article(id=f"a{i}", title=f"Title {i}", text=body, category="news" if i % 2 else "sport")


def _ids(store: Store) -> set[int]:
    return set(store.indexes().vectors.ids().tolist())


def _docstore_ids(store: Store) -> set[int]:
    return set(store.docstore.all_vectors()[0].tolist())


def _maps_agree(store: Store) -> bool:
    """The snapshot's sentence → chunks and chunk → article maps (carried over from the last one
    for rows that stayed) equal a fresh read of the docstore."""
    indexes = store.indexes()
    return (indexes.sentence_chunks == store.docstore.sentence_chunks()
            and indexes.chunk_articles == store.docstore.chunk_articles())


def test_put_replace_delete_leave_no_stale_ids(tmp_path, docstore_url):
    store = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    _put(store, _article(1))
    _put(store, _article(2))
    before = _ids(store)
    assert before == _docstore_ids(store) and len(before) > 4
    assert _maps_agree(store)
    chunks_before = set(store.docstore.rowids().tolist())
    assert set(store.indexes().keywords.rowids.tolist()) == chunks_before

    _put(store, _article(1, words="changed"), seed=1)  # an edit replaces every chunk of a1
    after = _ids(store)
    assert after == _docstore_ids(store) and _maps_agree(store)
    assert not set(store.indexes().sentence_chunks) & (before - after)
    old_a1 = before - after
    assert old_a1 and not (old_a1 & after)
    hits = {r for r, _ in store.indexes().keywords.search("changed", 50)}
    assert hits and hits <= set(store.docstore.rowids().tolist())
    assert not hits & chunks_before  # the edit gave a1 new chunk rowids

    with store.writer():
        store.docstore.delete("a2")
        store.publish()
    assert _ids(store) == _docstore_ids(store) and _maps_agree(store)
    assert set(store.indexes().chunk_articles.values()) == {"a1"}
    assert store.docstore.hydrate(sorted(chunks_before)).keys() <= set(store.docstore.rowids().tolist())
    assert not store.docstore.hydrate(sorted(chunks_before))  # every old chunk is gone
    with pytest.raises(ArticleNotFound):
        store.docstore.get_article("a2")
    assert store.indexes().keywords.search("topic2", 10) == []


def test_check_agrees_after_writes_and_names_a_disagreement(tmp_path, docstore_url):
    store = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    _put(store, _article(1))
    _put(store, _article(2))
    report = store.check()
    assert report.ok and report.articles == 2 and report.chunks == report.keyword_docs > 2
    assert report.vectors == len(store.docstore.sentence_rowids()) >= report.chunks
    # A derived index that lost a vector (as a torn write could leave it) is named, not hidden.
    indexes = store.indexes()
    dropped = indexes.vectors.ids()[:1]
    store._indexes = dataclasses.replace(indexes, vectors=indexes.vectors.synced(dropped, dropped[:0], None))
    report = store.check()
    assert not report.ok and report.problems == ("FAISS lacks 1 sentences of the docstore",)
    store._indexes = dataclasses.replace(indexes, sentence_chunks={})
    assert store.check().problems == ("the map of sentences to chunks disagrees with the docstore",)
    wrong_article = {chunk: "elsewhere" for chunk in indexes.chunk_articles}
    store._indexes = dataclasses.replace(indexes, chunk_articles=wrong_article)
    assert store.check().problems == ("the map of chunks to articles disagrees with the docstore",)


def test_restart_loads_the_persisted_index(tmp_path, docstore_url):
    store = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    _put(store, _article(1))
    generation, ids = store.indexes().generation, _ids(store)
    store.close()
    again = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    assert again.load_problem is None
    assert again.indexes().generation == generation
    assert _ids(again) == ids


def test_each_sentence_maps_to_every_chunk_that_holds_it(tmp_path, docstore_url):
    store = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    for i in range(3):
        _put(store, _article(i, words="and a longer tail of words " * i))
    _put(store, Article(id="short", title="Short", text=" ".join(f"Rain {j}." for j in range(60))))
    sentences = _query(store, 'SELECT rowid, article_id, start, "end" FROM sentences WHERE vector IS NOT NULL')
    chunks = _query(store, 'SELECT rowid, article_id, start, "end" FROM chunks')
    expected = {s: tuple(sorted(c for c, ca, cs, ce in chunks if ca == a and cs <= start and end <= ce))
                for s, a, start, end in sentences}
    assert any(len(held) == 2 for held in expected.values())  # the chunks overlap
    assert store.docstore.sentence_chunks() == expected
    some = np.array(sorted(expected)[::3])
    assert store.docstore.sentence_chunks(some) == {s: expected[s] for s in some}


def test_an_article_without_a_keyword_is_stored_searched_and_deleted(tmp_path, docstore_url):
    """"A. B. C." leaves BM25 no word to index: the index publishes without one, rather than
    failing every later publish (and so every read) with the article already committed."""
    store = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    _put(store, Article(id="bare", title="", text="A. B. C."))
    assert store.check().problems == () and store.indexes().keywords.search("anything", 5) == []
    store.close()
    again = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    assert again.load_problem is None and len(again.indexes().keywords) == 1  # its one chunk
    _put(again, _article(1))
    assert again.indexes().keywords.search("topic1", 5)
    with again.writer():
        again.docstore.delete("bare")
        again.publish()
    assert again.check().problems == ()


def test_corrupt_index_file_is_detected_and_rebuilt(tmp_path, docstore_url):
    store = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    _put(store, _article(1))
    ids = _ids(store)
    store.close()
    faiss_file = max(tmp_path.glob("derived/gen-*/vectors.faiss"))  # the current one
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])  # truncated
    again = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    assert "checksum" in again.load_problem
    assert _ids(again) == ids


def test_index_behind_the_docstore_is_caught_up(tmp_path, docstore_url):
    """A writer that died after committing articles but before publishing the indexes."""
    store = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    _put(store, _article(1))
    chunks = Chunker(budget=40, overlap=8).chunk(_article(2))
    with store.writer():
        store.docstore.put([embedded(_article(2), chunks,
                                     np.ones((len(sentences_of(chunks)), DIM), dtype=np.float32) / np.sqrt(DIM))])
    store.close()
    again = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    assert "generation" in again.load_problem
    assert _ids(again) == _docstore_ids(again)
    assert again.indexes().generation == again.docstore.generation()


def test_another_model_is_refused_with_a_clear_error(tmp_path, docstore_url):
    Store(tmp_path, "model-a", DIM, docstore_url=docstore_url).close()
    with pytest.raises(IndexMismatch, match="model-a"):
        Store(tmp_path, "model-b", DIM, docstore_url=docstore_url)
    with pytest.raises(IndexMismatch, match="dimensions"):
        Store(tmp_path, "model-a", DIM * 2, docstore_url=docstore_url)


def test_one_writer_at_a_time_and_readers_follow_other_writers(tmp_path, docstore_url):
    writer = Store(tmp_path, "m", DIM, docstore_url=docstore_url)
    reader = Store(tmp_path, "m", DIM, docstore_url=docstore_url)  # as a server would, in another process
    with writer.writer(), pytest.raises(WriterBusy), reader.writer(timeout=0.2):
        pass
    _put(writer, _article(3))
    assert _ids(reader) == _ids(writer) != set()
    assert reader.load_problem is None  # followed the writer's published files, no rebuild needed
