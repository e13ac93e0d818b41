"""Dense vectors: our own small FAISS wrapper, of one of three kinds (`RAG_FAISS_INDEX`):

- flat:  `IndexIDMap2` over `IndexFlatIP`; exact, 4 bytes per dimension.
- hnsw:  `IndexIDMap2` over `IndexHNSWFlat` (inner product); fast approximate search, but HNSW
         cannot remove vectors, so a sync that removes any rebuilds the graph from the exact
         vectors it holds (deletes cost a rebuild; adds are incremental).
- ivfpq: `IndexIVFPQ` (inner product) holding our ids itself (an `IndexIDMap` over IVF breaks on
         remove: IVF does not renumber). It must be trained, so below `IVFPQ_MIN_VECTORS` it is a
         flat index, trained on the vectors at hand once that many exist.

The ids are docstore chunk rowids, so deletes and updates work and filters can select ids
(the llama-index FAISS store offers neither). Instances are never changed after publication:
`synced` returns a new index, so a search never runs beside an add (faiss#367, #2204).
The saved file records the kind (its FAISS type); loading one of another kind raises ValueError,
which the store treats like any unusable file: rebuilt from the docstore.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Literal, Protocol

import faiss
import numpy as np

from rag.types import Filters

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "ivfpq"]

HNSW_M = 32  # graph degree: recall vs memory (M * 2 * 4 bytes of links per vector at level 0)
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128  # recall@10 ~0.96 against flat on clustered 384-d data (bench/faiss_scale.py)
# PQ's 256 centroids per sub-quantizer want ~39 training points each (FAISS warns below 9,984).
IVFPQ_MIN_VECTORS = 10_000
IVFPQ_TRAIN_SAMPLE = 100_000  # k-means on more costs minutes and gains little
IVFPQ_BITS = 8


def _ivfpq_shape(n: int, dimension: int) -> tuple[int, int, int]:
    """(nlist, sub-quantizers, nprobe) for n vectors: ~sqrt(n) lists, 8 dimensions per code byte,
    and about 1/16 of the lists probed (recall@10 against flat ~0.9 on clustered data)."""
    nlist = int(min(4096, max(16, math.sqrt(n))))
    m = next(m for m in range(max(1, dimension // 8), 0, -1) if dimension % m == 0)
    nprobe = int(min(nlist, max(8, nlist // 16)))
    return nlist, m, nprobe


class DenseIndex(Protocol):
    """What the retriever and the store's checks use of a dense index: `VectorIndex` (FAISS, a
    snapshot) or `rag.store.qdrant.QdrantVectors` (a collection, kept in step by the writer)."""

    @property
    def dimension(self) -> int: ...

    def __len__(self) -> int: ...

    def ids(self) -> np.ndarray: ...

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top-k (id, cosine) for a normalised query, among the `allowed` ids if given; `filters`
        are the metadata filters those ids were selected by, for an index that can apply them
        itself."""
        ...


class VectorIndex:
    def __init__(self, index: faiss.Index, requested: IndexKind = "flat") -> None:
        self._index = index
        self.requested = requested
        self.kind: IndexKind = _kind_of(index)

    @classmethod
    def empty(cls, dimension: int, kind: IndexKind = "flat") -> VectorIndex:
        return cls.built(np.zeros(0, dtype=np.int64), np.zeros((0, dimension), dtype=np.float32), kind)

    @classmethod
    def built(cls, ids: np.ndarray, vectors: np.ndarray, kind: IndexKind) -> VectorIndex:
        """A new index of `kind` holding `vectors` under `ids` (ivfpq is trained on them)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        n, dimension = vectors.shape
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
            index = faiss.IndexIDMap2(inner)
        elif kind == "ivfpq" and n >= IVFPQ_MIN_VECTORS:
            nlist, m, nprobe = _ivfpq_shape(n, dimension)
            index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dimension), dimension, nlist, m, IVFPQ_BITS,
                                     faiss.METRIC_INNER_PRODUCT)
            sample = vectors
            if n > IVFPQ_TRAIN_SAMPLE:  # a fixed seed: the same vectors give the same index
                sample = vectors[np.sort(np.random.default_rng(0).choice(n, IVFPQ_TRAIN_SAMPLE, replace=False))]
            index.train(sample)
            index.nprobe = nprobe
        elif kind in ("flat", "ivfpq"):
            if kind == "ivfpq" and n:
                log.warning("RAG_FAISS_INDEX=ivfpq: %d vectors are too few to train IVF-PQ (it needs %d); "
                            "a flat index until then", n, IVFPQ_MIN_VECTORS)
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r}; expected flat, hnsw or ivfpq")
        if n:
            index.add_with_ids(vectors, ids)
        return cls(index, kind)

    @classmethod
    def load(cls, path: Path, dimension: int, kind: IndexKind = "flat") -> VectorIndex:
        index = faiss.read_index(str(path))
        if index.d != dimension:
            raise ValueError(f"{path} holds {index.d}-dimensional vectors, not {dimension}")
        found = _kind_of(index)
        # An ivfpq setting keeps a flat index until there are enough vectors to train on.
        untrained = kind == "ivfpq" and found == "flat" and index.ntotal < IVFPQ_MIN_VECTORS
        if found != kind and not untrained:
            raise ValueError(f"{path} holds a {found} index, RAG_FAISS_INDEX asks for {kind}")
        return cls(index, kind)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @property
    def dimension(self) -> int:
        return self._index.d

    def __len__(self) -> int:
        return self._index.ntotal

    def nbytes(self) -> int:
        """Size of the saved index."""
        return int(faiss.serialize_index(self._index).nbytes)

    def ids(self) -> np.ndarray:
        if self.kind == "ivfpq":
            lists = faiss.extract_index_ivf(self._index).invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                     for i in range(lists.nlist) if lists.list_size(i)]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def synced(self, remove: np.ndarray, add_ids: np.ndarray, add_vectors: np.ndarray) -> VectorIndex:
        """A copy with `remove` ids dropped and the given vectors added."""
        remove = np.asarray(remove, dtype=np.int64)
        add_ids = np.asarray(add_ids, dtype=np.int64)
        needs_training = self.requested == "ivfpq" and self.kind == "flat" \
            and len(self) - len(remove) + len(add_ids) >= IVFPQ_MIN_VECTORS
        if (self.kind == "hnsw" and len(remove)) or needs_training:
            # HNSW cannot remove; IVF-PQ trains on everything at hand. Both start again from the
            # exact vectors this index holds (flat and HNSW keep them), so nothing is re-read.
            ids, vectors = self._exact()
            keep = ~np.isin(ids, remove)
            ids = np.concatenate([ids[keep], add_ids])
            vectors = np.vstack([vectors[keep], np.asarray(add_vectors, dtype=np.float32).reshape(-1, self.dimension)])
            return VectorIndex.built(ids, vectors, self.requested)
        if self.requested == "ivfpq" and self.kind == "flat":
            log.warning("RAG_FAISS_INDEX=ivfpq: %d vectors are too few to train IVF-PQ (it needs %d); "
                        "a flat index until then", len(self) - len(remove) + len(add_ids), IVFPQ_MIN_VECTORS)
        index = faiss.clone_index(self._index)
        if len(remove):
            index.remove_ids(faiss.IDSelectorBatch(remove))
        if len(add_ids):
            index.add_with_ids(np.ascontiguousarray(add_vectors, dtype=np.float32), add_ids)
        return VectorIndex(index, self.requested)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top-k (id, cosine) for a normalised query; `allowed` restricts the ids searched
        (`filters` are not needed: FAISS selects by id)."""
        if len(self) == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        k = min(k, len(self))
        selector = None if allowed is None else faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        hits = self._search(query, k, selector)
        if allowed is not None and self.kind != "flat" and len(hits) < min(k, len(allowed)):
            # Approximate search under a narrow filter can miss allowed ids (HNSW walks a graph
            # mostly of excluded nodes; IVF probes lists that hold none): search them exactly.
            hits = self._search(query, k, selector, exhaustive=True, allowed=allowed)
        return hits

    # -- internals -----------------------------------------------------------------------------
    def _search(self, query: np.ndarray, k: int, selector: faiss.IDSelector | None,
                exhaustive: bool = False, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        if self.kind == "hnsw" and exhaustive:
            ids, vectors = self._exact()
            mask = np.isin(ids, allowed)
            ids, scores = ids[mask], vectors[mask] @ query[0]
            top = np.argsort(-scores, kind="stable")[:k]
            return [(int(ids[i]), float(scores[i])) for i in top]
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k), sel=selector)
        elif self.kind == "ivfpq":
            ivf = faiss.extract_index_ivf(self._index)
            params = faiss.SearchParametersIVF(nprobe=ivf.nlist if exhaustive else ivf.nprobe, sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        scores, ids = self._index.search(query, k, params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def _exact(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) as held by a flat or HNSW index (a view, not a copy)."""
        storage = faiss.downcast_index(self._index.index)
        if self.kind == "hnsw":
            storage = faiss.downcast_index(storage.storage)
        n = len(self)
        vectors = faiss.rev_swig_ptr(storage.get_xb(), n * self.dimension).reshape(n, self.dimension) if n \
            else np.zeros((0, self.dimension), dtype=np.float32)
        return self.ids(), vectors


def _kind_of(index: faiss.Index) -> IndexKind:
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivfpq"
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            return "hnsw"
        if isinstance(inner, faiss.IndexFlat) and inner.metric_type == faiss.METRIC_INNER_PRODUCT:
            return "flat"
    raise ValueError(f"a {type(index).__name__} is not one of our FAISS index kinds")
