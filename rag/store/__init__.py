"""The store: SQLite docstore (truth) plus FAISS and BM25 (derived), persisted under one folder.
With a Qdrant target the dense vectors live in a Qdrant collection instead (rag.store.qdrant),
brought up to the docstore by the writer like the FAISS snapshots; BM25 stays here.

Layout of `index_dir`:
    docstore.sqlite          articles, chunks, sentences (with vectors); `generation` bumps per write
    derived/gen-<G>/         vectors.faiss (sentence vectors) with vectors.faiss.tombstones.npy
                             (ids deleted from an HNSW graph), bm25/ (chunks) — the derived
                             indexes for docstore generation G
    manifest.json            which derived folder is current, its generation, model, dimension,
                             vector store and the sha256 of every file; replaced atomically
                             (write, fsync, rename)
    writer.lock              flock held by the one writer (a thread of `rag serve` or `rag ingest`)

With `docstore_url` (PostgreSQL, rag.store.postgres) the docstore is a server database that replicas
on several hosts share, and `index_dir` is each replica's own: its derived files and its flock. The
writer then also holds the database's advisory lock, which excludes writers on every host; a
replica that finds the generation moved catches its FAISS and BM25 up from the database under its
local lock only (it writes nothing shared), or under both when it must write a Qdrant collection.

Readers use immutable `Indexes` snapshots; a writer builds the next snapshot beside the current one
and swaps it in, so a reader never sees a half-written index. Derived files that are missing,
corrupt, or for another generation are never used: the indexes are rebuilt from the docstore.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from rag.errors import BadSettings, RagError
from rag.files import fsync_file, sha256_of, write_durably
from rag.store.docstore import Docstore
from rag.store.keywords import KeywordIndex
from rag.store.qdrant import QdrantTarget, QdrantVectors
from rag.store.vectors import DenseIndex, IndexKind, VectorIndex
from rag.types import Filters

T = TypeVar("T")

__all__ = ["Docstore", "Indexes", "QdrantTarget", "Store", "StoreCheck", "WriterBusy", "open_docstore"]

log = logging.getLogger(__name__)


class WriterBusy(RagError):
    """Another writer (an ingest run, another request) holds the index; retry later (HTTP 503)."""


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


# Sentence hits read per chunk wanted: a chunk holds ~5 sentences and is scored by its best one,
# so 4x the chunks asked for in sentences yields at least as many distinct chunks in practice.
SENTENCE_HITS_PER_CHUNK = 4


@dataclass(frozen=True)
class Indexes:
    """One consistent, never-mutated view of the derived indexes at a docstore generation:
    FAISS over sentence vectors, BM25 over chunks, which chunks hold each sentence and which
    article each chunk is of."""

    generation: int
    vectors: DenseIndex  # a FAISS snapshot, or the Qdrant collection (changed in place by the writer)
    keywords: KeywordIndex
    sentence_chunks: dict[int, tuple[int, ...]]
    chunk_articles: dict[int, str]

    def dense(self, query: np.ndarray, k: int, allowed_sentences: np.ndarray | None = None,
              filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top-k (chunk rowid, cosine) where a chunk's cosine is its best sentence's. `filters`
        are the ones `allowed_sentences` came from (Qdrant applies them to its payload)."""
        best: dict[int, float] = {}
        for sentence, score in self.vectors.search(query, k * SENTENCE_HITS_PER_CHUNK, allowed_sentences, filters):
            for chunk in self.sentence_chunks.get(sentence, ()):
                best.setdefault(chunk, score)  # hits come best first
        return list(best.items())[:k]


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
    MANIFEST = "manifest.json"

    def __init__(self, index_dir: Path, model: str, dimension: int, vector_index: IndexKind = "flat",
                 qdrant: QdrantTarget | None = None, docstore_url: str | None = None) -> None:
        self.index_dir = index_dir
        self.docstore_url = docstore_url
        self.model = model
        self.dimension = dimension
        self.vector_index = vector_index  # the FAISS kind; a persisted file of another kind is rebuilt
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
        # With Qdrant, one client for the life of the store (embedded mode locks its folder).
        self._qdrant: QdrantVectors | None = None
        try:
            if qdrant is not None:
                self._qdrant = QdrantVectors.connect(qdrant, model, dimension)
            self._indexes = self._open()
        except BaseException:
            self.close()
            raise

    @property
    def vector_store(self) -> str:
        return "faiss" if self._qdrant is None else "qdrant"

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
        alone when it writes only its own files; the writer lock when it would write a shared
        Qdrant collection or (SQLite) the index folder every process reads."""
        if self._shared_lock is not None and self._qdrant is None:
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
        """Compare the docstore with the current FAISS (or Qdrant) and BM25 indexes, id by id."""
        indexes = self.indexes()
        articles, chunks = self.docstore.counts()
        problems = []
        dense = "FAISS" if self._qdrant is None else "Qdrant"
        for name, ids, truth, noun in (
            (dense, indexes.vectors.ids(), set(self.docstore.sentence_rowids().tolist()), "sentences"),
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

    # -- internals -----------------------------------------------------------------------------
    def _open(self) -> Indexes:
        vectors = self._qdrant if self._qdrant is not None else VectorIndex.empty(
            self.dimension, self.vector_index, self.docstore.sentence_vectors)
        empty = Indexes(-1, vectors, KeywordIndex.build(np.zeros(0), []), {}, {})
        try:
            with self._catch_up_lock():
                return self._caught_up(empty, persist=True)
        except WriterBusy:  # an ingest run is writing: catch up in memory, it will persist
            return self._caught_up(empty, persist=False)

    def _caught_up(self, base: Indexes, persist: bool) -> Indexes:
        """The persisted indexes if they match the docstore, else `base` (or the persisted
        indexes, if newer) brought up to the docstore."""
        try:
            persisted = self._load_persisted()
        except (OSError, ValueError, KeyError, RuntimeError) as error:
            self.load_problem = f"persisted index not used ({error}); rebuilt from the docstore"
            log.warning(self.load_problem)
            persisted = None
        if self._qdrant is not None:
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
            mismatch = _id_mismatch(persisted, self.docstore.sentence_rowids(), self.docstore.rowids())
            if mismatch is None:
                return persisted
            # Checksums matched, so the files are whole, but they are another index's (copied
            # in, or a manifest from elsewhere): never used.
            self.load_problem = f"persisted index not used ({mismatch}); rebuilt from the docstore"
            log.warning(self.load_problem)
            persisted = None
        if persisted is not None:
            self.load_problem = (
                f"persisted index was at generation {persisted.generation}, the docstore at "
                f"{generation}; caught up from the docstore"
            )
            log.warning(self.load_problem)
            if persisted.generation > base.generation:
                base = persisted
        indexes = self._synced(base)
        if persist:
            self._persist(indexes)
        return indexes

    def _load_persisted(self) -> Indexes | None:
        manifest_path = self.index_dir / self.MANIFEST
        if not manifest_path.exists():
            return None
        manifest = json.loads(manifest_path.read_text())
        if manifest["embedding_model"] != self.model or manifest["dimension"] != self.dimension:
            raise ValueError(f"manifest is for {manifest['embedding_model']} ({manifest['dimension']} dims)")
        if self._qdrant is None and manifest.get("vector_store", "faiss") != "faiss":
            raise ValueError(f"its vectors are in {manifest['vector_store']} collection {manifest.get('collection')!r}")
        folder = self.index_dir / manifest["folder"]
        for name, digest in manifest["files"].items():
            if sha256_of(folder / name) != digest:
                raise ValueError(f"{folder / name} does not match its checksum (corrupt or truncated)")
        return Indexes(
            generation=int(manifest["generation"]),
            vectors=self._qdrant if self._qdrant is not None
            else VectorIndex.load(folder / "vectors.faiss", self.dimension, self.vector_index,
                                  self.docstore.sentence_vectors),
            keywords=KeywordIndex.load(folder / "bm25"),
            sentence_chunks=self.docstore.sentence_chunks(),
            chunk_articles=self.docstore.chunk_articles(),
        )

    def _synced(self, base: Indexes, write_vectors: bool = True) -> Indexes:
        """`base` brought up to the docstore: sentence vectors by difference of ids (no
        re-embedding, the vectors are in the docstore), BM25 rebuilt. The generation is read first,
        so the content is at least that new and a later change is caught by the next check. A
        Qdrant collection is written only with `write_vectors` (by the writer); otherwise it is
        searched as it stands, and a snapshot over a collection behind the docstore says generation
        -1, so the next `indexes()` catches it up once the writer lock is free."""
        generation = self.docstore.generation()
        rowids, texts = self.docstore.rowids_and_texts()
        sentences = self.docstore.sentence_rowids()
        vectors: DenseIndex
        if self._qdrant is not None:
            vectors = self._qdrant
            if write_vectors:
                if problem := self._qdrant.sync(generation, sentences, self.docstore):
                    self.load_problem = problem
                    log.warning(problem)
            elif self._qdrant.recorded_generation() != generation:
                generation = -1
        else:
            have = base.vectors.ids()
            remove = np.setdiff1d(have, sentences, assume_unique=True)
            add = np.setdiff1d(sentences, have, assume_unique=True)
            vectors = base.vectors.synced(remove, add, self.docstore.vectors_for(add)) \
                if len(remove) or len(add) else base.vectors
        keywords = base.keywords if np.array_equal(base.keywords.rowids, rowids) else KeywordIndex.build(rowids, texts)
        return Indexes(generation, vectors, keywords,
                       _carried(base.sentence_chunks, sentences, self.docstore.sentence_chunks),
                       _carried(base.chunk_articles, rowids, self.docstore.chunk_articles))

    def _persist(self, indexes: Indexes) -> None:
        """Write the derived files into a new folder, then switch the manifest to it atomically."""
        name = f"derived/gen-{indexes.generation:09d}"
        folder = self.index_dir / name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if isinstance(indexes.vectors, VectorIndex):  # a Qdrant collection persists itself
            indexes.vectors.save(folder / "vectors.faiss")
        indexes.keywords.save(folder / "bm25")
        files = {str(p.relative_to(folder)): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}
        for path in files:
            fsync_file(folder / path)
        manifest = {
            "generation": indexes.generation,
            "embedding_model": self.model,
            "dimension": self.dimension,
            "vector_store": self.vector_store,
            "collection": self._qdrant.name if self._qdrant is not None else None,
            "sentences": len(indexes.vectors),
            "chunks": len(indexes.keywords),
            "folder": name,
            "files": files,
        }
        write_durably(self.index_dir / self.MANIFEST, json.dumps(manifest, indent=1).encode())
        # Keep the previous folder: a reader in another process may be loading it right now.
        for old in sorted((self.index_dir / "derived").glob("gen-*"))[:-2]:
            shutil.rmtree(old, ignore_errors=True)

    def close(self) -> None:
        if self._qdrant is not None:
            self._qdrant.close()
        self.docstore.close()


def _carried(previous: dict[int, T], live: np.ndarray, read: Callable[[np.ndarray], dict[int, T]]) -> dict[int, T]:
    """`previous` for the ids still live, `read` from the docstore for the others. A row's chunks
    and article never change while its rowid lives (a replaced article gets new rows), so only
    new rows are read: on BBC, rereading every sentence's chunks took 0.12-0.66 s per publish
    (warm or cold pages), carrying them over 0.01 s."""
    ids = live.tolist()
    carried = {i: previous[i] for i in ids if i in previous}
    new = [i for i in ids if i not in carried]
    return carried | read(np.asarray(new, dtype=np.int64)) if new else carried


def _id_mismatch(indexes: Indexes, sentences: np.ndarray, chunks: np.ndarray) -> str | None:
    """Why `indexes` do not hold exactly the docstore's sentence ids (FAISS) and chunk ids (BM25),
    or None if they do."""
    for name, ids, rowids, noun in (("FAISS", indexes.vectors.ids(), sentences, "sentence"),
                                    ("BM25", indexes.keywords.rowids, chunks, "chunk")):
        if len(ids) != len(rowids) or not np.array_equal(np.sort(ids), rowids):
            return f"its {name} ids are not the docstore's {noun} ids"
    return None
