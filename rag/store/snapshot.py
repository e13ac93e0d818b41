"""The derived indexes as one immutable snapshot (`Indexes`), and how a snapshot is persisted:
its files in a folder of their own, named by docstore generation, and a manifest that says which
folder is current, replaced atomically (write, fsync, rename)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import numpy as np

from rag.files import fsync_file, sha256_of, write_durably
from rag.store.docstore import Docstore
from rag.store.keywords import KeywordIndex
from rag.store.vectors import DenseIndex, VectorStore
from rag.types import Filters

T = TypeVar("T")

MANIFEST = "manifest.json"
# Sentence hits read per chunk wanted: a chunk holds ~5 sentences and is scored by its best one,
# so 4x the chunks asked for in sentences yields at least as many distinct chunks in practice.
SENTENCE_HITS_PER_CHUNK = 4


@dataclass(frozen=True)
class Indexes:
    """One consistent, never-mutated view of the derived indexes at a docstore generation:
    dense vectors over sentences, BM25 over chunks, which chunks hold each sentence and which
    article each chunk is of."""

    generation: int
    vectors: DenseIndex  # a FAISS snapshot, or the Qdrant collection (changed in place by the writer)
    keywords: KeywordIndex
    sentence_chunks: dict[int, tuple[int, ...]]
    chunk_articles: dict[int, str]

    def rowids_of(self, article_ids: Iterable[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(chunk rowids, sentence rowids) of these articles in this snapshot: what a filtered search
        may return; None where that is every row (a search needs no id filter then). Read from
        memory: listing most of BBC's 40k sentences from SQLite took 17 ms, more than the unfiltered
        search itself, and filtering FAISS by 40k ids that are all of it cost 2 ms more."""
        by = self._by_article
        codes = np.fromiter((by.codes[a] for a in article_ids if a in by.codes), dtype=np.int64)
        if len(codes) == len(by.codes):
            return None, None
        return by.chunks[np.isin(by.chunk_codes, codes)], by.sentences[np.isin(by.sentence_codes, codes)]

    @cached_property
    def _by_article(self) -> _RowsByArticle:
        return _RowsByArticle.of(self.chunk_articles, self.sentence_chunks)

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
class _RowsByArticle:
    """Chunk and sentence rowids beside a code for the article of each, so that the rows of some
    articles are one vectorised membership test."""

    codes: dict[str, int]  # article id → code
    chunks: np.ndarray
    chunk_codes: np.ndarray
    sentences: np.ndarray
    sentence_codes: np.ndarray

    @staticmethod
    def of(chunk_articles: dict[int, str], sentence_chunks: dict[int, tuple[int, ...]]) -> _RowsByArticle:
        codes = {article: n for n, article in enumerate(dict.fromkeys(chunk_articles.values()))}
        chunk_code = {chunk: codes[article] for chunk, article in chunk_articles.items()}
        # A sentence's chunks are all of its article; one that lost its chunks (deleted since) has none.
        held = [(sentence, chunk_code[chunks[0]]) for sentence, chunks in sentence_chunks.items()
                if chunks and chunks[0] in chunk_code]
        return _RowsByArticle(
            codes,
            np.fromiter(chunk_code.keys(), dtype=np.int64, count=len(chunk_code)),
            np.fromiter(chunk_code.values(), dtype=np.int64, count=len(chunk_code)),
            np.array([sentence for sentence, _ in held], dtype=np.int64),
            np.array([code for _, code in held], dtype=np.int64),
        )


def load(index_dir: Path, model: str, dimension: int, vectors: VectorStore,
         docstore: Docstore) -> Indexes | None:
    """The persisted snapshot, None if there is none; ValueError (or OSError) when it is for
    another model or dimension, another vector store, or a file fails its checksum."""
    manifest_path = index_dir / MANIFEST
    if not manifest_path.exists():
        return None
    manifest = json.loads(manifest_path.read_text())
    if manifest["embedding_model"] != model or manifest["dimension"] != dimension:
        raise ValueError(f"manifest is for {manifest['embedding_model']} ({manifest['dimension']} dims)")
    if vectors.snapshots and manifest.get("vector_store", "faiss") != vectors.kind:
        raise ValueError(f"its vectors are in {manifest['vector_store']} collection {manifest.get('collection')!r}")
    folder = index_dir / manifest["folder"]
    for name, digest in manifest["files"].items():
        if sha256_of(folder / name) != digest:
            raise ValueError(f"{folder / name} does not match its checksum (corrupt or truncated)")
    return Indexes(
        generation=int(manifest["generation"]),
        vectors=vectors.load(folder),
        keywords=KeywordIndex.load(folder / "bm25"),
        sentence_chunks=docstore.sentence_chunks(),
        chunk_articles=docstore.chunk_articles(),
    )


def persist(index_dir: Path, indexes: Indexes, model: str, dimension: int, vectors: VectorStore) -> None:
    """Write the derived files into a new folder, then switch the manifest to it atomically."""
    name = f"derived/gen-{indexes.generation:09d}"
    folder = index_dir / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    vectors.save(indexes.vectors, folder)
    indexes.keywords.save(folder / "bm25")
    files = {str(p.relative_to(folder)): sha256_of(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    for path in files:
        fsync_file(folder / path)
    manifest = {
        "generation": indexes.generation,
        "embedding_model": model,
        "dimension": dimension,
        "vector_store": vectors.kind,
        "collection": vectors.collection,
        "sentences": len(indexes.vectors),
        "chunks": len(indexes.keywords),
        "folder": name,
        "files": files,
    }
    write_durably(index_dir / MANIFEST, json.dumps(manifest, indent=1).encode())
    # Keep the previous folder: a reader in another process may be loading it right now.
    for old in sorted((index_dir / "derived").glob("gen-*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)


def carried(previous: dict[int, T], live: np.ndarray, read: Callable[[np.ndarray], dict[int, T]]) -> dict[int, T]:
    """`previous` for the ids still live, `read` from the docstore for the others. A row's chunks
    and article never change while its rowid lives (a replaced article gets new rows), so only
    new rows are read: on BBC, rereading every sentence's chunks took 0.12-0.66 s per publish
    (warm or cold pages), carrying them over 0.01 s."""
    ids = live.tolist()
    kept = {i: previous[i] for i in ids if i in previous}
    new = [i for i in ids if i not in kept]
    return kept | read(np.asarray(new, dtype=np.int64)) if new else kept


def id_mismatch(indexes: Indexes, sentences: np.ndarray, chunks: np.ndarray) -> str | None:
    """Why `indexes` do not hold exactly the docstore's sentence ids (dense) and chunk ids (BM25),
    or None if they do."""
    for name, ids, rowids, noun in (("FAISS", indexes.vectors.ids(), sentences, "sentence"),
                                    ("BM25", indexes.keywords.rowids, chunks, "chunk")):
        if len(ids) != len(rowids) or not np.array_equal(np.sort(ids), rowids):
            return f"its {name} ids are not the docstore's {noun} ids"
    return None
