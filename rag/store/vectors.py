"""Dense vectors: our own small FAISS wrapper, of one of four kinds (`RAG_FAISS_INDEX`):

- flat:  `IndexIDMap2` over `IndexFlatIP`; exact, 4 bytes per dimension.
- flat16: `IndexIDMap2` over an fp16 `IndexScalarQuantizer` (inner product), the default: every
         vector compared, as flat, at 2 bytes per dimension. One search reads every stored vector,
         so it is bound by memory bandwidth: over BBC's 42k sentence vectors 1.0 ms against flat's
         2.3 ms, with 0.9998 of flat's top 20 (fp16 moves a cosine by ~1e-4: only near-ties swap).
- hnsw:  `IndexIDMap2` over `IndexHNSWFlat` (inner product); fast approximate search. HNSW cannot
         remove vectors, so a delete leaves a tombstone: the id is excluded at search time (an
         IDSelector) and from `ids()`, `len()` and the exact vectors, and the graph is rebuilt from
         the live vectors only once tombstones pass `HNSW_MAX_TOMBSTONES` of it.
- ivfpq: `IndexIVFPQ` (inner product) holding our ids itself (an `IndexIDMap` over IVF breaks on
         remove: IVF does not renumber). PQ codes (48 bytes) find candidates; their exact vectors,
         read from the docstore through `exact`, re-score them. Not `IndexRefineFlat` (it keeps
         every full vector in RAM, ~1,600 bytes each, and PQ's point is lost) nor IVF-SQ8 (recall
         0.996 unaided, but 395 bytes each): the docstore holds the exact vectors already, RAM stays
         at ~60 bytes per vector, and the scores returned are true cosines, which fusion with BM25
         reads. The cost is reading 4k+64 rows per search (k=400: ~6 ms at 42k, ~25 ms at 1M).
         It must be trained, so below `IVFPQ_MIN_VECTORS` it is a flat index, trained on the
         vectors at hand once that many exist.

The ids are docstore sentence rowids, so deletes and updates work and filters can select ids
(the llama-index FAISS store offers neither). Instances are never changed after publication:
`synced` returns a new index, so a search never runs beside an add (faiss#367, #2204).
The saved file records the kind (its FAISS type), and a sidecar beside it (`<file>.tombstones.npy`)
the tombstones; the store lists both in one manifest, switched atomically, so a crash leaves the
old pair or the new one. Loading a file of another kind raises ValueError, which the store treats
like any unusable file: rebuilt from the docstore.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

import faiss
import numpy as np

from rag.types import Filters

if TYPE_CHECKING:
    from rag.store.docstore import Docstore

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "flat16", "hnsw", "ivfpq"]

# (ids found, their exact vectors) for some ids: the docstore's sentence vectors. Ids it no longer
# holds (deleted since this snapshot) are left out.
ExactVectors = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

HNSW_M = 32  # graph degree: recall vs memory (M * 2 * 4 bytes of links per vector at level 0)
HNSW_EF_CONSTRUCTION = 80
HNSW_MAX_TOMBSTONES = 0.2  # past this share of deleted vectors the graph is rebuilt without them
# PQ's 256 centroids per sub-quantizer want ~39 training points each (FAISS warns below 9,984).
IVFPQ_MIN_VECTORS = 10_000
IVFPQ_TRAIN_SAMPLE = 100_000  # k-means on more costs minutes and gains little
IVFPQ_BITS = 8


def hnsw_ef_search(n: int, k: int) -> int:
    """HNSW's candidate list (efSearch) for a top-k among n vectors: max(k, 32) * log2(n / 10k),
    at least twice max(k, 32). Both factors are measured (bench/faiss_scale.py, M=32,
    efConstruction=80, recall against flat, ties counted): the list a given recall needs grows
    with n, and at retrieval's k=400 (100 chunks x 4 sentence hits) efSearch=k is not enough.
    k=10:  BBC 42k real: ef 32 -> 0.967, 64 -> 0.988. Synthetic 200k: 32 -> 0.988, 64 -> 0.995;
           1M: 32 -> 0.946, 64 -> 0.993, 128 -> 0.998. The rule: 66, 139, 213.
    k=400: BBC 42k: 400 -> 0.967, 800 -> 0.991. 200k: 400 -> 0.980, 800 -> 0.988, 1200 -> 0.994;
           1M: 400 -> 0.925, 800 -> 0.943. The rule: 825, 1729, 2657."""
    return math.ceil(max(k, 32) * max(2.0, math.log2(n / 10_000)))


def ivfpq_candidates(k: int) -> int:
    """PQ candidates re-scored with exact vectors for a top-k. 48-byte PQ codes alone ranked badly
    (recall@10 0.73 at 200k synthetic); re-scoring 4k took it to 0.97, 10k to 0.995. On BBC 4k+64
    matched 10k (0.958 vs 0.957 at k=10), and at k=400 4k beat 2k (0.91 vs 0.86)."""
    return 4 * k + 64


def _ivfpq_shape(n: int, dimension: int) -> tuple[int, int, int]:
    """(nlist, sub-quantizers, nprobe) for n vectors: ~sqrt(n) lists, 8 dimensions per code byte,
    and a quarter of the lists probed. Real sentence embeddings need that many: a question's
    nearest sentences lie in many cells (BBC, 204 lists, k=10: nprobe 12 -> 0.86, 25 -> 0.93,
    51 -> 0.96, 102 -> 0.97, even re-scored); our synthetic clusters were kinder (1/16 was enough)."""
    nlist = int(min(4096, max(16, math.sqrt(n))))
    m = next(m for m in range(max(1, dimension // 8), 0, -1) if dimension % m == 0)
    nprobe = int(min(nlist, max(16, nlist // 4)))
    return nlist, m, nprobe


def _outgrown(index: faiss.Index, n: int) -> bool:
    """Whether an IVF index has fewer than half the lists `_ivfpq_shape` gives n vectors, i.e.
    holds about four times the vectors it was trained for: one k-means per fourfold growth keeps
    the lists at ~sqrt(n) vectors and the codebooks fitted to what is stored. (Test set, 10.5k
    trained, 52k held: recall@10 0.77 as it stood, 0.82 retrained.)"""
    return faiss.extract_index_ivf(index).nlist < _ivfpq_shape(n, index.d)[0] / 2


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


class VectorStore(Protocol):
    """Where the dense vectors live, as the `Store` keeps them in step with the docstore:
    `FaissVectors` (a snapshot per docstore generation, saved with the derived files) or
    `rag.store.qdrant.QdrantVectors` (one collection, synced in place by the writer)."""

    label: str  # in messages: "FAISS", "Qdrant"
    kind: str  # recorded in the manifest: "faiss", "qdrant"
    collection: str | None  # recorded in the manifest
    # True: each generation's vectors are a new immutable index saved beside the BM25 files; a
    # persisted one is used only if it holds exactly the docstore's sentences. False: the vectors
    # live elsewhere and are brought up to the docstore by id difference.
    snapshots: bool

    def empty(self) -> DenseIndex:
        """The vectors to start from when nothing is persisted."""
        ...

    def load(self, folder: Path) -> DenseIndex:
        """The vectors saved in a derived folder (ValueError or OSError when unusable)."""
        ...

    def synced(self, base: DenseIndex, generation: int, sentences: np.ndarray, docstore: Docstore,
               write: bool) -> tuple[DenseIndex, int, str | None]:
        """`base` brought up to the docstore's `sentences` at `generation`: (the vectors, the
        generation they hold, what was found wrong). Only the writer may `write` to shared vectors;
        vectors left behind say generation -1, so the next reader catches them up."""
        ...

    def save(self, vectors: DenseIndex, folder: Path) -> None: ...

    def close(self) -> None: ...


class FaissVectors:
    """Vectors in process, in FAISS snapshots of the `kind` asked for (`VectorIndex`)."""

    label = "FAISS"
    kind = "faiss"
    collection = None
    snapshots = True
    FILE = "vectors.faiss"

    def __init__(self, dimension: int, index_kind: IndexKind = "flat", exact: ExactVectors | None = None) -> None:
        self.dimension = dimension
        self.index_kind = index_kind
        self._exact = exact

    def empty(self) -> VectorIndex:
        return VectorIndex.empty(self.dimension, self.index_kind, self._exact)

    def load(self, folder: Path) -> VectorIndex:
        return VectorIndex.load(folder / self.FILE, self.dimension, self.index_kind, self._exact)

    def synced(self, base: DenseIndex, generation: int, sentences: np.ndarray, docstore: Docstore,
               write: bool) -> tuple[DenseIndex, int, str | None]:
        """By difference of ids: no re-embedding, the vectors are in the docstore."""
        assert isinstance(base, VectorIndex)
        have = base.ids()
        remove = np.setdiff1d(have, sentences, assume_unique=True)
        add = np.setdiff1d(sentences, have, assume_unique=True)
        if not len(remove) and not len(add):
            return base, generation, None
        return base.synced(remove, add, docstore.vectors_for(add)), generation, None

    def save(self, vectors: DenseIndex, folder: Path) -> None:
        assert isinstance(vectors, VectorIndex)
        vectors.save(folder / self.FILE)

    def close(self) -> None:
        pass


class VectorIndex:
    def __init__(self, index: faiss.Index, requested: IndexKind = "flat", tombstones: np.ndarray | None = None,
                 exact: ExactVectors | None = None) -> None:
        """`tombstones`: ids deleted from an HNSW graph but still in it. `exact`: where ivfpq
        re-scores its candidates (without it, results carry PQ's approximate scores)."""
        self._index = index
        self.requested = requested
        self.kind: IndexKind = _kind_of(index)
        self._dead = np.unique(np.asarray(tombstones if tombstones is not None else [], dtype=np.int64))
        if len(self._dead) and self.kind != "hnsw":
            raise ValueError(f"only an hnsw index keeps tombstones, not {self.kind}")
        # Built once (hashing 200k tombstones per query would cost milliseconds); read-only in
        # searches, so threads share it. The batch must outlive the Not that points to it.
        self._dead_batch = faiss.IDSelectorBatch(self._dead) if len(self._dead) else None
        self._live = faiss.IDSelectorNot(self._dead_batch) if self._dead_batch is not None else None
        self._fetch = exact

    @classmethod
    def empty(cls, dimension: int, kind: IndexKind = "flat", exact: ExactVectors | None = None) -> VectorIndex:
        return cls.built(np.zeros(0, dtype=np.int64), np.zeros((0, dimension), dtype=np.float32), kind, exact)

    @classmethod
    def built(cls, ids: np.ndarray, vectors: np.ndarray, kind: IndexKind,
              exact: ExactVectors | None = None) -> VectorIndex:
        """A new index of `kind` holding `vectors` under `ids` (ivfpq is trained on them)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids = np.asarray(ids, dtype=np.int64)
        n, dimension = vectors.shape
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
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
        elif kind == "flat16":
            index = faiss.IndexIDMap2(faiss.IndexScalarQuantizer(
                dimension, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT))
        elif kind in ("flat", "ivfpq"):
            if kind == "ivfpq" and n:
                log.warning("RAG_FAISS_INDEX=ivfpq: %d vectors are too few to train IVF-PQ (it needs %d); "
                            "a flat index until then", n, IVFPQ_MIN_VECTORS)
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        else:
            raise ValueError(f"unknown FAISS index kind {kind!r}; expected flat, flat16, hnsw or ivfpq")
        if n:
            index.add_with_ids(vectors, ids)
        return cls(index, kind, exact=exact)

    @classmethod
    def load(cls, path: Path, dimension: int, kind: IndexKind = "flat",
             exact: ExactVectors | None = None) -> VectorIndex:
        index = faiss.read_index(str(path))
        if index.d != dimension:
            raise ValueError(f"{path} holds {index.d}-dimensional vectors, not {dimension}")
        found = _kind_of(index)
        # An ivfpq setting keeps a flat index until there are enough vectors to train on.
        untrained = kind == "ivfpq" and found == "flat" and index.ntotal < IVFPQ_MIN_VECTORS
        if found != kind and not untrained:
            raise ValueError(f"{path} holds a {found} index, RAG_FAISS_INDEX asks for {kind}")
        sidecar = _tombstones_path(path)
        # No sidecar: a file saved before tombstones existed (none then). A sidecar the manifest
        # lists but that is missing fails its checksum in the store before we get here.
        dead = np.load(sidecar, allow_pickle=False) if sidecar.exists() else np.zeros(0, dtype=np.int64)
        loaded = cls(index, kind, dead, exact)
        if len(dead) and not np.isin(loaded._dead, loaded._all_ids()).all():
            raise ValueError(f"{sidecar} names ids that {path} does not hold (files of two indexes)")
        return loaded

    def save(self, path: Path) -> None:
        """The index and its tombstones (always written, empty if none, so a stale sidecar never
        outlives its index). Atomic as a pair only through the store's manifest."""
        faiss.write_index(self._index, str(path))
        buffer = io.BytesIO()
        np.save(buffer, self._dead, allow_pickle=False)
        _tombstones_path(path).write_bytes(buffer.getvalue())

    @property
    def dimension(self) -> int:
        return self._index.d

    @property
    def tombstones(self) -> int:
        return len(self._dead)

    def __len__(self) -> int:
        return self._index.ntotal - len(self._dead)

    def nbytes(self) -> int:
        """Size of the saved index (and tombstones)."""
        return int(faiss.serialize_index(self._index).nbytes) + self._dead.nbytes

    def ids(self) -> np.ndarray:
        ids = self._all_ids()
        return ids[~np.isin(ids, self._dead)] if len(self._dead) else ids

    def synced(self, remove: np.ndarray, add_ids: np.ndarray, add_vectors: np.ndarray) -> VectorIndex:
        """A copy with `remove` ids dropped and the given vectors added."""
        remove = np.asarray(remove, dtype=np.int64)
        add_ids = np.asarray(add_ids, dtype=np.int64)
        add_vectors = np.ascontiguousarray(add_vectors, dtype=np.float32).reshape(-1, self.dimension) \
            if len(add_ids) else np.zeros((0, self.dimension), dtype=np.float32)
        live = len(self) - len(remove) + len(add_ids)
        needs_training = self.requested == "ivfpq" and self.kind == "flat" and live >= IVFPQ_MIN_VECTORS
        if self.kind == "hnsw":
            dead = np.union1d(self._dead, remove)
            # A deleted id coming back would be excluded with its old vector: rebuild. (Docstore
            # rowids are AUTOINCREMENT, so this is for safety, not expected.)
            revived = len(np.intersect1d(add_ids, dead))
            if len(dead) <= HNSW_MAX_TOMBSTONES * (self._index.ntotal + len(add_ids)) and not revived:
                index = self._index  # shared: neither instance ever changes it
                if len(add_ids):
                    index = faiss.clone_index(self._index)
                    index.add_with_ids(add_vectors, add_ids)
                return VectorIndex(index, self.requested, dead, self._fetch)
        if self.kind == "hnsw" or needs_training:
            # Too many tombstones (or an id revived), or IVF-PQ now has enough to train on: start
            # again from the exact live vectors this index holds (flat and HNSW keep them).
            ids, vectors = self._exact()
            keep = ~np.isin(ids, remove)
            return VectorIndex.built(np.concatenate([ids[keep], add_ids]), np.vstack([vectors[keep], add_vectors]),
                                     self.requested, self._fetch)
        if self.kind == "ivfpq" and self._fetch is not None and _outgrown(self._index, live):
            # Its lists and PQ codebooks were learned from the first vectors only; news drifts to
            # new topics, which they fit less and less. Train again on the exact vectors the
            # docstore holds (the index keeps only PQ codes).
            kept = self.ids()
            kept = kept[~np.isin(kept, remove)]
            found, vectors = self._fetch(kept)
            log.info("IVF-PQ retrained for %d vectors (it was trained for %d)", live,
                     faiss.extract_index_ivf(self._index).nlist ** 2)
            return VectorIndex.built(np.concatenate([found, add_ids]),
                                     np.vstack([vectors.reshape(-1, self.dimension), add_vectors]),
                                     self.requested, self._fetch)
        if self.requested == "ivfpq" and self.kind == "flat":
            log.warning("RAG_FAISS_INDEX=ivfpq: %d vectors are too few to train IVF-PQ (it needs %d); "
                        "a flat index until then", live, IVFPQ_MIN_VECTORS)
        index = faiss.clone_index(self._index)
        if len(remove):
            index.remove_ids(faiss.IDSelectorBatch(remove))
        if len(add_ids):
            index.add_with_ids(add_vectors, add_ids)
        return VectorIndex(index, self.requested, exact=self._fetch)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top-k (id, cosine) for a normalised query; `allowed` restricts the ids searched
        (`filters` are not needed: FAISS selects by id)."""
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            if len(self._dead):
                allowed = np.setdiff1d(allowed, self._dead)
        if len(self) == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        query = np.asarray(query, dtype=np.float32).reshape(1, -1)
        k = min(k, len(self))
        # One OpenMP thread per search: requests already run side by side in server threads, and
        # on 2 cores one query over BBC's 42k sentence vectors took 6.5 ms with OpenMP's two
        # threads, 3 ms with one. The setting is per calling thread (OpenMP's nthreads-var), so it
        # is made here, in whichever thread searches, not once at start-up.
        faiss.omp_set_num_threads(1)
        hits = self._search(query, k, allowed)
        if allowed is not None and self.kind not in ("flat", "flat16") and len(hits) < min(k, len(allowed)):
            # Approximate search under a narrow filter can miss allowed ids (HNSW walks a graph
            # mostly of excluded nodes; IVF probes lists that hold none): search them exactly.
            hits = self._search(query, k, allowed, exhaustive=True)
        return hits

    # -- internals -----------------------------------------------------------------------------
    def _search(self, query: np.ndarray, k: int, allowed: np.ndarray | None,
                exhaustive: bool = False) -> list[tuple[int, float]]:
        if self.kind == "hnsw" and exhaustive:
            ids, vectors = self._exact()
            mask = np.isin(ids, allowed)
            ids, scores = ids[mask], np.einsum("ij,j->i", vectors[mask], query[0])
            top = np.argsort(-scores, kind="stable")[:k]
            return [(int(ids[i]), float(scores[i])) for i in top]
        # `allowed` has no tombstones in it (see `search`); without it, exclude them.
        selector = self._live if allowed is None else faiss.IDSelectorBatch(allowed)
        fetch = k
        if self.kind == "hnsw":
            # Tombstones still take up places in the candidate list: widen it by their share.
            ef = math.ceil(hnsw_ef_search(len(self), k) * self._index.ntotal / len(self))
            params = faiss.SearchParametersHNSW(efSearch=ef, sel=selector)
        elif self.kind == "ivfpq":
            ivf = faiss.extract_index_ivf(self._index)
            params = faiss.SearchParametersIVF(nprobe=ivf.nlist if exhaustive else ivf.nprobe, sel=selector)
            if self._fetch is not None:
                fetch = min(len(self), ivfpq_candidates(k))
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        scores, ids = self._index.search(query, fetch, params=params)
        found = ids[0][ids[0] >= 0]
        if self.kind == "ivfpq" and self._fetch is not None and len(found):
            return self._rescored(query[0], found, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    def _rescored(self, query: np.ndarray, candidates: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The top k of PQ's candidates by their exact cosine."""
        assert self._fetch is not None
        ids, vectors = self._fetch(candidates)
        if not len(ids):
            return []
        # einsum, not @: BLAS would spread this small product over threads that, on a busy
        # 2-core machine, cost milliseconds to wake (0.1 ms this way).
        scores = np.einsum("ij,j->i", vectors, query)
        top = np.argsort(-scores, kind="stable")[:k]
        return [(int(ids[i]), float(scores[i])) for i in top]

    def _all_ids(self) -> np.ndarray:
        """Every id the FAISS index holds, tombstones included, in storage order."""
        if self.kind == "ivfpq":
            lists = faiss.extract_index_ivf(self._index).invlists
            parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                     for i in range(lists.nlist) if lists.list_size(i)]
            return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def _exact(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the live vectors a flat or HNSW index holds (a view of FAISS's
        storage when there are no tombstones, else a copy without them)."""
        storage = faiss.downcast_index(self._index.index)
        if self.kind == "hnsw":
            storage = faiss.downcast_index(storage.storage)
        n = self._index.ntotal
        vectors = faiss.rev_swig_ptr(storage.get_xb(), n * self.dimension).reshape(n, self.dimension) if n \
            else np.zeros((0, self.dimension), dtype=np.float32)
        ids = self._all_ids()
        if len(self._dead):
            live = ~np.isin(ids, self._dead)
            return ids[live], vectors[live]
        return ids, vectors


def _tombstones_path(path: Path) -> Path:
    return path.with_name(path.name + ".tombstones.npy")


def _kind_of(index: faiss.Index) -> IndexKind:
    if isinstance(index, faiss.IndexIVFPQ):
        return "ivfpq"
    if isinstance(index, faiss.IndexIDMap2):
        inner = faiss.downcast_index(index.index)
        if isinstance(inner, faiss.IndexHNSWFlat):
            return "hnsw"
        if isinstance(inner, faiss.IndexFlat) and inner.metric_type == faiss.METRIC_INNER_PRODUCT:
            return "flat"
        if (isinstance(inner, faiss.IndexScalarQuantizer) and inner.metric_type == faiss.METRIC_INNER_PRODUCT
                and inner.sq.qtype == faiss.ScalarQuantizer.QT_fp16):
            return "flat16"
    raise ValueError(f"a {type(index).__name__} is not one of our FAISS index kinds")
