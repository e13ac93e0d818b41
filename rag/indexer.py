"""The write path: articles → chunks → vectors → docstore, then the derived indexes are published.

Articles are committed to the docstore in batches (each batch one transaction, so an interrupted
run keeps every batch it finished and a rerun skips them as unchanged); FAISS and BM25 are
brought up to date once at the end, under the single-writer lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np

from rag.chunking import Chunker
from rag.embedding import Embedder
from rag.store import Store
from rag.types import Article, IngestFailure, IngestReport


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Indexer:
    chunker: Chunker
    embedder: Embedder
    store: Store
    batch_size: int = 64  # articles per docstore transaction; also what one embedding call sees

    def add(self, items: Iterable[Article | IngestFailure], lock_timeout: float | None = None) -> IngestReport:
        """Ingest articles (failures from reading pass straight into the report). New and changed
        articles replace their stored chunks; unchanged ones (same content hash) are skipped."""
        report = IngestReport()
        origins: dict[str, str] = {}  # id → origin, to catch two items claiming one id
        with self.store.writer(lock_timeout):
            changed = False
            for batch in _batched(items, self.batch_size):
                articles = []
                for item in batch:
                    if isinstance(item, IngestFailure):
                        report.failed.append(item)
                    elif item.id in origins:
                        report.failed.append(IngestFailure(
                            item.origin, f"article id {item.id!r} is already used by {origins[item.id]}"))
                    else:
                        origins[item.id] = item.origin
                        articles.append(item)
                changed |= self._add_batch(articles, report)
            if changed or self.store.indexes().generation != self.store.docstore.generation():
                self.store.publish()
        return report

    def delete(self, article_id: str, lock_timeout: float | None = None) -> None:
        """Remove an article from the docstore and every index (ArticleNotFound if unknown)."""
        with self.store.writer(lock_timeout):
            self.store.docstore.delete(article_id)
            self.store.publish()

    def _add_batch(self, articles: list[Article], report: IngestReport) -> bool:
        stored = self.store.docstore.content_hashes([a.id for a in articles])
        todo: list[tuple[Article, list]] = []
        for article in articles:
            if stored.get(article.id) == article.content_hash:
                report.unchanged.append(article.id)
                continue
            chunks = self.chunker.chunk(article)
            if not chunks:
                report.failed.append(IngestFailure(article.origin, "no text to index"))
                continue
            todo.append((article, chunks))
        if not todo:
            return False
        hashes = [[text_hash(c.text) for c in chunks] for _, chunks in todo]
        vectors = self._vectors({h: c.text for (_, chunks), hs in zip(todo, hashes)
                                 for c, h in zip(chunks, hs)})
        self.store.docstore.put(
            (article, chunks, hs, np.vstack([vectors[h] for h in hs]))
            for (article, chunks), hs in zip(todo, hashes)
        )
        report.ingested.extend(article.id for article, _ in todo)
        return True

    def _vectors(self, texts_by_hash: dict[str, str]) -> dict[str, np.ndarray]:
        """Vectors for each chunk text, reusing those already in the docstore (same text, same
        vector: an edited article re-embeds only the chunks that changed)."""
        vectors = self.store.docstore.cached_vectors(list(texts_by_hash))
        missing = [h for h in texts_by_hash if h not in vectors]
        if missing:
            embedded = self.embedder.embed([texts_by_hash[h] for h in missing])
            vectors.update(zip(missing, embedded))
        return vectors


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
