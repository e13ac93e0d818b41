"""Dense vectors: our own small FAISS wrapper (`IndexIDMap2` over a flat inner-product index).

The ids are docstore chunk rowids, so deletes and updates work and filters can select ids
(the llama-index FAISS store offers neither). Instances are never changed after publication:
`synced` returns a new index, so a search never runs beside an add (faiss#367, #2204).
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


class VectorIndex:
    def __init__(self, index: faiss.IndexIDMap2) -> None:
        self._index = index

    @classmethod
    def empty(cls, dimension: int) -> VectorIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)))

    @classmethod
    def load(cls, path: Path, dimension: int) -> VectorIndex:
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexIDMap2) or index.d != dimension:
            raise ValueError(f"{path} is not an IndexIDMap2 of {dimension}-dimensional vectors")
        return cls(index)

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @property
    def dimension(self) -> int:
        return self._index.d

    def __len__(self) -> int:
        return self._index.ntotal

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def synced(self, remove: np.ndarray, add_ids: np.ndarray, add_vectors: np.ndarray) -> VectorIndex:
        """A copy with `remove` ids dropped and the given vectors added."""
        index = faiss.clone_index(self._index)
        if len(remove):
            index.remove_ids(np.asarray(remove, dtype=np.int64))
        if len(add_ids):
            index.add_with_ids(np.ascontiguousarray(add_vectors, dtype=np.float32),
                               np.asarray(add_ids, dtype=np.int64))
        return VectorIndex(index)

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Top-k (id, cosine) for a normalised query; `allowed` restricts the ids searched."""
        if len(self) == 0 or k <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        params = None
        if allowed is not None:
            params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64)))
        scores, ids = self._index.search(np.asarray(query, dtype=np.float32).reshape(1, -1),
                                         min(k, len(self)), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
