"""Embedders that look before they embed. Question-time code (the answerer, citation checks,
briefings) asks for vectors of sentences that ingest already embedded, so those come from the
docstore by content hash instead of the model; what is left (the question) is embedded, and the
last few of those are remembered (the retriever and the answerer both embed the question).
Training and cross-validation, which see each sentence many times, remember everything."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rag.embedding import Embedder

Lookup = Callable[[Sequence[str]], dict[str, np.ndarray]]  # text hashes → stored vectors


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class CachedEmbedder:
    """`inner`, asked only for texts that are neither in `lookup` nor among the `recent` texts it
    embedded last (None: every text it embedded, for one training run; memory only)."""

    def __init__(self, inner: Embedder, lookup: Lookup, recent: int | None = 256) -> None:
        self.inner = inner
        self.name, self.dimension, self.max_tokens = inner.name, inner.dimension, inner.max_tokens
        self._lookup = lookup
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_max = recent
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        hashes = [text_hash(t) for t in texts]
        with self._lock:
            found = {h: self._recent[h] for h in hashes if h in self._recent}
        if len(found) < len(set(hashes)):
            found.update(self._lookup([h for h in hashes if h not in found]))
        missing = list(dict.fromkeys((h, t) for h, t in zip(hashes, texts) if h not in found))
        if missing:
            vectors = self.inner.embed([t for _, t in missing])
            with self._lock:
                for (h, _), vector in zip(missing, vectors):
                    found[h] = self._recent[h] = vector
                while self._recent_max is not None and len(self._recent) > self._recent_max:
                    self._recent.popitem(last=False)
        return np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)


def remembering(inner: Embedder) -> CachedEmbedder:
    """`inner`, remembering every text it embedded: for one training or cross-validation run, where
    the same sentences come back for many questions of an article."""
    return CachedEmbedder(inner, lambda hashes: {}, recent=None)
