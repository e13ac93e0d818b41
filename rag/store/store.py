"""The store: the docstore (truth) plus the derived keyword and dense indexes, kept in step.

Layout of `index_dir`:
    docstore.sqlite          articles, chunks, sentences (with vectors); `generation` bumps per write
    derived/gen-<G>/         vectors.faiss (sentence vectors) with vectors.faiss.tombstones.npy
                             (ids deleted from an HNSW graph), bm25/ (chunks) — the derived
                             indexes for docstore generation G
    manifest.json            which derived folder is current, its generation, model, dimension,
                             vector store and the sha256 of every file (`rag.store.snapshot`)
    writer.lock              flock held by the one writer (a thread of `rag serve` or `rag ingest`)

With `docstore_url` (PostgreSQL, `rag.store.postgres`) the docstore is a server database that
replicas on several hosts share, and `index_dir` is each replica's own: its derived files and its
flock. The writer then also holds the database's advisory lock, which excludes writers on every
host; a replica that finds the generation moved catches its FAISS and BM25 up from the database
under its local lock only (it writes nothing shared), or under both when it must write a Qdrant
collection.

With a Qdrant target the dense vectors live in a Qdrant collection instead (`rag.store.qdrant`),
brought up to the docstore by the writer like the FAISS snapshots; BM25 stays here.

Readers use immutable `Indexes` snapshots; a writer builds the next snapshot beside the current one
and swaps it in, so a reader never sees a half-written index. Derived files that are missing,
corrupt, or for another generation are never used: the indexes are rebuilt from the docstore.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import BadSettings, WriterBusy
from rag.store import snapshot
from rag.store.docstore import Docstore
from rag.store.keywords import KeywordIndex
from rag.store.qdrant import QdrantTarget, QdrantVectors
from rag.store.snapshot import Indexes
from rag.store.vectors import FaissVectors, IndexKind, VectorStore

log = logging.getLogger(__name__)


def open_docstore(index_dir: Path, url: str | None = None):
    """The SQLite file in `index_dir`, or the PostgreSQL database at `url` (`postgresql://…`)."""
    if url is None:
        return Docstore(index_dir / "docstore.sqlite")
    if not url.startswith(("postgresql://", "postgres://")):
        raise BadSettings("RAG_DOCSTORE_URL must be a postgresql:// URL (leave it unset for SQLite in RAG_INDEX_DIR)")
    try:
        from rag.store.postgres import PostgresDocstore
    except ImportError as error:
        raise BadSettings(f"RAG_DOCSTORE_URL needs psycopg: pip install 'rag[postgres]' ({error})") from None
    return PostgresDocstore(url)


@dataclass(frozen=True)
class StoreCheck:
    articles: int
    chunks: int
    vectors: int
    keyword_docs: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class Store:
    def __init__(self, index_dir: Path, model: str, dimension: int, vector_index: IndexKind = "flat",
                 qdrant: QdrantTarget | None = None, docstore_url: str | None = None) -> None:
        """`vector_index`: the FAISS kind (a persisted file of another kind is rebuilt); with a
        `qdrant` target the vectors are in that collection instead; with a `docstore_url` the
        docstore is that PostgreSQL database instead of the SQLite file in `index_dir`."""
        self.index_dir = index_dir
        self.docstore_url = docstore_url
        self.model = model
        self.dimension = dimension
        index_dir.mkdir(parents=True, exist_ok=True)
        self.docstore = open_docstore(index_dir, docstore_url)
        try:
            self.docstore.bind_model(model, dimension)
        except BaseException:
            self.docstore.close()
            raise
        # A PostgreSQL docstore is shared between hosts: writers exclude each other through it.
        self._shared_lock = getattr(self.docstore, "writer_lock", None)
        self._thread_lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self.load_problem: str | None = None  # why the persisted indexes were not used, for /health
        # FAISS unless a Qdrant target is named; that one is connected inside the `try`, so that a
        # refused connection still closes the docstore.
        self.vectors: VectorStore = FaissVectors(dimension, vector_index, self.docstore.sentence_vectors)
        try:
            if qdrant is not None:  # one client for the life of the store (embedded mode locks its folder)
                self.vectors = QdrantVectors.connect(qdrant, model, dimension)
            self._indexes = self._open()
        except BaseException:
            self.close()
            raise

    @property
    def vector_store(self) -> str:
        return self.vectors.kind

    @classmethod
    def open_existing(cls, index_dir: Path, model: str, vector_index: IndexKind = "flat",
                      qdrant: QdrantTarget | None = None, docstore_url: str | None = None) -> Store:
        """Open an index with the dimension its docstore was built with (no embedding model is
        loaded); the model name must still match. For `rag check` and other maintenance."""
        docstore = open_docstore(index_dir, docstore_url)
        try:
            bound = docstore.model()
        finally:
            docstore.close()
        return cls(index_dir, model, 0 if bound is None else bound[1], vector_index, qdrant, docstore_url)

    # -- reading -------------------------------------------------------------------------------
    def indexes(self) -> Indexes:
        """The current snapshot, caught up first if the docstore has moved on and no writer is
        busy (a busy writer publishes its own snapshot when it finishes; until then the old one
        stays consistent, as rows deleted since are dropped when passages are hydrated)."""
        current = self._indexes
        if self.docstore.generation() == current.generation:
            return current
        try:
            with self._catch_up_lock(), self._refresh_lock:
                if self.docstore.generation() != self._indexes.generation:
                    self._indexes = self._caught_up(self._indexes, persist=True)
        except WriterBusy:
            pass
        return self._indexes

    # -- writing -------------------------------------------------------------------------------
    @contextmanager
    def writer(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the single-writer lock (threads of this process, other processes, and with a
        PostgreSQL docstore other hosts). Raises WriterBusy if it is not free within `timeout`
        seconds (None waits for ever)."""
        started = time.monotonic()
        with self._local_writer(timeout):
            if self._shared_lock is None:
                yield
                return
            left = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
            with self._shared_lock(left):
                yield

    def _catch_up_lock(self) -> contextlib.AbstractContextManager[None]:
        """What a reader holds to catch its indexes up (WriterBusy if taken): the local lock
        alone when it writes only its own files (a PostgreSQL docstore, vectors in FAISS); the
        writer lock when it would write a shared Qdrant collection or (SQLite) the index folder
        every process reads."""
        if self._shared_lock is not None and self.vectors.snapshots:
            return self._local_writer(timeout=0)
        return self.writer(timeout=0)

    @contextmanager
    def _local_writer(self, timeout: float | None = None) -> Iterator[None]:
        """The lock on `index_dir`: threads of this process (a thread lock) and other processes
        on this host (flock on writer.lock)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._thread_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise WriterBusy("another write to this index is in progress; retry shortly")
        try:
            with open(self.index_dir / "writer.lock", "a") as handle:
                while True:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if deadline is not None and time.monotonic() > deadline:
                            raise WriterBusy(
                                "another process (an ingest run?) is writing to this index; retry shortly"
                            ) from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()

    def publish(self) -> Indexes:
        """Bring the derived indexes up to the docstore, persist them, and make them current.
        Call while holding `writer()`."""
        with self._refresh_lock:
            self._indexes = self._synced(self._indexes)
            self._persist(self._indexes)
            return self._indexes

    def check(self) -> StoreCheck:
        """Compare the docstore with the current dense and BM25 indexes, id by id."""
        indexes = self.indexes()
        articles, chunks = self.docstore.counts()
        problems = []
        for name, ids, truth, noun in (
            (self.vectors.label, indexes.vectors.ids(), set(self.docstore.sentence_rowids().tolist()), "sentences"),
            ("BM25", indexes.keywords.rowids, set(self.docstore.rowids().tolist()), "chunks"),
        ):
            have = set(ids.tolist())
            if len(have) != len(ids):
                problems.append(f"{name} holds duplicate ids")
            if missing := truth - have:
                problems.append(f"{name} lacks {len(missing)} {noun} of the docstore")
            if stale := have - truth:
                problems.append(f"{name} holds {len(stale)} {noun} the docstore no longer has")
        if indexes.sentence_chunks != self.docstore.sentence_chunks():
            problems.append("the map of sentences to chunks disagrees with the docstore")
        if indexes.chunk_articles != self.docstore.chunk_articles():  # what the article boost reads
            problems.append("the map of chunks to articles disagrees with the docstore")
        if indexes.generation != self.docstore.generation():
            problems.append(f"indexes at generation {indexes.generation}, docstore at {self.docstore.generation()}")
        problems.extend(self.docstore.integrity_problems())
        return StoreCheck(articles, chunks, len(indexes.vectors), len(indexes.keywords), tuple(problems))

    def close(self) -> None:
        self.vectors.close()
        self.docstore.close()

    # -- internals -----------------------------------------------------------------------------
    def _open(self) -> Indexes:
        empty = Indexes(-1, self.vectors.empty(), KeywordIndex.build(np.zeros(0), []), {}, {})
        try:
            with self._catch_up_lock():
                return self._caught_up(empty, persist=True)
        except WriterBusy:  # an ingest run is writing: catch up in memory, it will persist
            return self._caught_up(empty, persist=False)

    def _caught_up(self, base: Indexes, persist: bool) -> Indexes:
        """The persisted indexes if they match the docstore, else `base` (or the persisted
        indexes, if newer) brought up to the docstore."""
        try:
            persisted = snapshot.load(self.index_dir, self.model, self.dimension, self.vectors, self.docstore)
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            self._problem(f"persisted index not used ({error}); rebuilt from the docstore")
            persisted = None
        if not self.vectors.snapshots:
            # The collection is synced in place, by id difference (or left to the writer when we
            # are not it); only the persisted BM25 can spare work, if it is for these chunks.
            if persisted is not None and persisted.generation > base.generation:
                base = persisted
            indexes = self._synced(base, write_vectors=persist)
            unchanged = persisted is not None and indexes.keywords is persisted.keywords \
                and indexes.generation == persisted.generation
            if persist and not unchanged:  # rewriting the current files would trip a reader loading them
                self._persist(indexes)
            return indexes
        generation = self.docstore.generation()
        if persisted is not None and persisted.generation == generation:
            mismatch = snapshot.id_mismatch(persisted, self.docstore.sentence_rowids(), self.docstore.rowids())
            if mismatch is None:
                return persisted
            # Checksums matched, so the files are whole, but they are another index's (copied
            # in, or a manifest from elsewhere): never used.
            self._problem(f"persisted index not used ({mismatch}); rebuilt from the docstore")
            persisted = None
        if persisted is not None:
            self._problem(f"persisted index was at generation {persisted.generation}, the docstore at "
                          f"{generation}; caught up from the docstore")
            if persisted.generation > base.generation:
                base = persisted
        indexes = self._synced(base)
        if persist:
            self._persist(indexes)
        return indexes

    def _synced(self, base: Indexes, write_vectors: bool = True) -> Indexes:
        """`base` brought up to the docstore: dense vectors by the vector store (only the writer
        writes to a shared collection), BM25 rebuilt if its chunks changed. The generation is read
        first, so the content is at least that new and a later change is caught by the next check."""
        generation = self.docstore.generation()
        rowids, texts = self.docstore.rowids_and_texts()
        sentences = self.docstore.sentence_rowids()
        vectors, generation, problem = self.vectors.synced(base.vectors, generation, sentences, self.docstore,
                                                           write_vectors)
        if problem:
            self._problem(problem)
        keywords = base.keywords if np.array_equal(base.keywords.rowids, rowids) else KeywordIndex.build(rowids, texts)
        return Indexes(generation, vectors, keywords,
                       snapshot.carried(base.sentence_chunks, sentences, self.docstore.sentence_chunks),
                       snapshot.carried(base.chunk_articles, rowids, self.docstore.chunk_articles))

    def _persist(self, indexes: Indexes) -> None:
        snapshot.persist(self.index_dir, indexes, self.model, self.dimension, self.vectors)

    def _problem(self, problem: str) -> None:
        self.load_problem = problem
        log.warning(problem)
