"""Hybrid retrieval: BM25 and dense hits, fused by reciprocal rank, filtered by metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from rag.embedding import Embedder
from rag.errors import InvalidInput
from rag.store import Store
from rag.types import NO_FILTERS, Filters, Passage


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked id lists: score(d) = Σ 1 / (k + rank(d)), ranks from 1 (Cormack, Clarke and
    Büttcher, SIGIR 2009; k=60 as there). Rank-based, so BM25's unbounded scores and cosines need
    no calibration against each other; ties keep first-seen order."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


@dataclass
class Retriever:
    store: Store
    embedder: Embedder
    candidates: int = 50
    rrf_k: int = 60

    def search(self, query: str, top_k: int = 5, filters: Filters = NO_FILTERS) -> list[Passage]:
        if not query.strip():
            raise InvalidInput("query must not be empty")
        if top_k < 1:
            raise InvalidInput(f"top_k must be >= 1, got {top_k}")
        indexes = self.store.indexes()
        allowed = None if filters.empty else self.store.docstore.rowids_matching(filters)
        if allowed is not None and len(allowed) == 0:
            return []
        dense = indexes.vectors.search(self.embedder.embed([query])[0], self.candidates, allowed)
        keyword = indexes.keywords.search(query, self.candidates, allowed)
        fused = reciprocal_rank_fusion([[i for i, _ in dense], [i for i, _ in keyword]], self.rrf_k)
        cosine, bm25 = dict(dense), dict(keyword)
        # Rows deleted or replaced since the snapshot was built are absent here, hence dropped.
        rows = self.store.docstore.hydrate([rowid for rowid, _ in fused])
        passages = []
        for rowid, score in fused:
            passage = rows.get(rowid)
            if passage is None:
                continue
            scores = {"rrf": score}
            if rowid in cosine:
                scores["dense"] = cosine[rowid]
            if rowid in bm25:
                scores["bm25"] = bm25[rowid]
            passages.append(replace(passage, score=score, scores=scores))
            if len(passages) == top_k:
                break
        return passages
