"""Storage: the docstore is the truth (articles, chunks, sentences and their vectors, in SQLite,
or in PostgreSQL for replicas on several hosts);
BM25 over chunks and the dense index over sentences (FAISS, or a Qdrant collection) are derived
from it, persisted as snapshots and rebuilt from it whenever they do not match. `Store` keeps them
in step under a single writer."""

from rag.store.docstore import Docstore
from rag.store.qdrant import QdrantTarget
from rag.store.snapshot import Indexes
from rag.store.store import Store, StoreCheck, open_docstore

__all__ = ["Docstore", "Indexes", "QdrantTarget", "Store", "StoreCheck", "open_docstore"]
