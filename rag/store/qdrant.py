"""Dense vectors in Qdrant (`RAG_VECTOR_STORE=qdrant`): a server or cluster (`RAG_QDRANT_URL`) or
qdrant-client's embedded local mode (`RAG_QDRANT_PATH`), searched like the FAISS index.

Qdrant is not the source of truth ("keep the originals", qdrant#181): the docstore is. Points are
keyed by docstore sentence rowid (never reused, so a stale point can only point at nothing) and carry
the article's metadata as payload, so filters run inside Qdrant. The writer brings the collection
up to the docstore by difference of ids, reading vectors from SQLite (nothing is re-embedded), and
records in the collection's metadata which docstore generation it holds:

    generation -1   a sync is under way (a writer that died there leaves it; the next one scans)
    generation G    the collection holds exactly the docstore's sentences at generation G

so a process that finds the collection at the docstore's generation needs neither a scan nor a
write. The metadata also names the embedding model: a collection of another model or dimension
is refused, never written to (on a shared server it may be another index's). Unlike a FAISS
snapshot the collection changes in place; readers tolerate that because a hit the docstore no
longer holds is dropped when passages are hydrated.

Embedded mode locks its folder: one client per folder, hence one process (and one Store) at a time.
"""

from __future__ import annotations

import logging
import re
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import SecretStr

from rag.errors import BadSettings, IndexMismatch, IndexNotReady
from rag.types import Filters

if TYPE_CHECKING:
    from qdrant_client import QdrantClient, models

    from rag.config import Settings
    from rag.store.docstore import Docstore
    from rag.store.vectors import DenseIndex

log = logging.getLogger(__name__)

SYNCING = -1  # the recorded generation while points are being written
UPSERT_BATCH = 256  # points per request: ~0.4 MB of JSON at 384 dimensions
SCROLL_PAGE = 10_000
TIMEOUT_S = 60  # a large upsert batch on a busy cluster can take seconds; the default is 5
SAMPLE = 8  # vectors compared with the docstore when a collection is first scanned


@dataclass(frozen=True)
class QdrantTarget:
    """Where the collection lives: `url` (server, cluster) or `path` (embedded), and its name."""

    collection: str
    url: str | None = None
    path: Path | None = None
    api_key: SecretStr | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> QdrantTarget | None:
        """None when the vectors are in FAISS; raises BadSettings naming what is missing."""
        if settings.vector_store != "qdrant":
            return None
        if bool(settings.qdrant_url) == bool(settings.qdrant_path):
            raise BadSettings("RAG_VECTOR_STORE=qdrant needs exactly one of RAG_QDRANT_URL (a server or "
                              "cluster) or RAG_QDRANT_PATH (embedded local mode), got "
                              f"url={settings.qdrant_url!r}, path={settings.qdrant_path!r}")
        name = settings.qdrant_collection or default_collection(settings.index_dir)
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,255}", name):
            raise BadSettings(f"RAG_QDRANT_COLLECTION {name!r}: use letters, digits, '_', '-' and '.'")
        return cls(name, settings.qdrant_url, settings.qdrant_path, settings.qdrant_api_key)

    def describe(self) -> str:
        return f"Qdrant collection {self.collection!r} at {self.url or self.path}"


def default_collection(index_dir: Path) -> str:
    return "rag_" + re.sub(r"[^A-Za-z0-9_.-]", "_", index_dir.resolve().name)


class QdrantVectors:
    """A handle on one collection: searched by every reader, synced by the one writer."""

    def __init__(self, client: QdrantClient, target: QdrantTarget, model: str, dimension: int) -> None:
        self._client = client
        self.target = target
        self.name = target.collection
        self.model = model
        self._dimension = dimension
        # The ids this process knows the collection holds, valid while its recorded generation is
        # `_known_generation`; None until the first sync scanned (and sampled) the collection.
        self._known: np.ndarray | None = None
        self._known_generation: int | None = None
        self.last_sync: tuple[int, int] = (0, 0)  # (points removed, points added) by the last sync
        self._seen = False  # the collection existed at some point: searches stop asking
        # The embedded client is not made for threads (a search beside an upsert could see its
        # arrays half-grown): one call at a time. A server client is thread-safe.
        self._guard: AbstractContextManager = threading.Lock() if target.path is not None else nullcontext()

    @classmethod
    def connect(cls, target: QdrantTarget, model: str, dimension: int) -> QdrantVectors:
        """Open the client and check an existing collection's model and dimension."""
        try:
            from qdrant_client import QdrantClient
        except ImportError as error:
            raise BadSettings("RAG_VECTOR_STORE=qdrant needs qdrant-client: pip install '.[qdrant]'") from error
        if target.path is not None:
            try:
                client = QdrantClient(path=str(target.path))
            except RuntimeError as error:  # portalocker: the folder is locked by another client
                raise BadSettings(
                    f"RAG_QDRANT_PATH {target.path} is in use by another process or Store (embedded Qdrant "
                    "allows one client per folder; run a Qdrant server and set RAG_QDRANT_URL to share it)"
                ) from error
        else:
            key = target.api_key.get_secret_value() if target.api_key else None
            client = QdrantClient(url=target.url, api_key=key, timeout=TIMEOUT_S)
        vectors = cls(client, target, model, dimension)
        try:
            vectors._check_collection()
        except BaseException:
            client.close()
            raise
        return vectors

    # -- the search interface (rag.store.vectors.DenseIndex) ------------------------------------
    @property
    def dimension(self) -> int:
        return self._dimension

    def __len__(self) -> int:
        if not self._exists():
            return 0
        with self._guard:
            return int(self._client.count(self.name, exact=True).count)

    def ids(self) -> np.ndarray:
        """Every point id in the collection, sorted (a scroll over all of them)."""
        if not self._exists():
            return np.zeros(0, dtype=np.int64)
        out: list[int] = []
        offset = None
        while True:
            with self._guard:
                points, offset = self._client.scroll(self.name, limit=SCROLL_PAGE, offset=offset,
                                                     with_payload=False, with_vectors=False)
            out.extend(int(p.id) for p in points)
            if offset is None:
                return np.sort(np.array(out, dtype=np.int64))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               filters: Filters | None = None) -> list[tuple[int, float]]:
        """Top-k (id, cosine). `filters` run as payload conditions inside Qdrant; without them
        `allowed` is sent as an id list. Either way `allowed` (the docstore's matching ids) tells
        whether enough hits came back: if not, the search is repeated exactly (an HNSW walk
        under a narrow filter can stop short)."""
        if k <= 0 or (allowed is not None and len(allowed) == 0) or not (self._seen or self._exists()):
            return []
        condition = _payload_filter(filters) if filters is not None and not filters.empty else None
        if condition is None and allowed is not None:
            from qdrant_client import models

            condition = models.Filter(must=[models.HasIdCondition(has_id=[int(i) for i in allowed])])
        hits = self._query(query, k, condition, exact=False)
        if allowed is not None and len(hits) < min(k, len(allowed)):
            hits = self._query(query, k, condition, exact=True)
        return hits

    # -- as the store's VectorStore ---------------------------------------------------------------
    label = "Qdrant"
    kind = "qdrant"
    snapshots = False  # one collection, synced in place

    @property
    def collection(self) -> str:
        return self.name

    def empty(self) -> QdrantVectors:
        return self

    def load(self, folder: Path) -> QdrantVectors:
        return self  # the collection keeps itself; a derived folder holds only BM25

    def synced(self, base: DenseIndex, generation: int, sentences: np.ndarray, docstore: Docstore,
               write: bool) -> tuple[DenseIndex, int, str | None]:
        if write:
            return self, generation, self.sync(generation, sentences, docstore)
        return self, generation if self.recorded_generation() == generation else -1, None

    def save(self, vectors: DenseIndex, folder: Path) -> None:
        pass  # the collection persists itself

    # -- syncing (the writer only) ---------------------------------------------------------------
    def recorded_generation(self) -> int | None:
        """The docstore generation the collection says it holds (None: no collection yet)."""
        if not self._exists():
            return None
        with self._guard:
            metadata = self._client.get_collection(self.name).config.metadata or {}
        return int(metadata.get("generation", SYNCING))

    def sync(self, generation: int, rowids: np.ndarray, docstore: Docstore) -> str | None:
        """Make the collection hold exactly `rowids` (the docstore's sentences at `generation`, read
        under the writer lock, which the caller holds). Returns what was wrong if the collection
        was found disagreeing with the docstore (behind, ahead, or a sync cut short)."""
        rowids = np.asarray(rowids, dtype=np.int64)
        recorded = self.recorded_generation()
        self.last_sync = (0, 0)
        if recorded == generation and self._known is not None:
            # Another writer (or we) already brought it here; this process checked the collection
            # once, so the recorded generation is trusted.
            self._known, self._known_generation = rowids, generation
            return None
        scanned = self._known is None or recorded != self._known_generation
        have = self.ids() if scanned else self._known
        if scanned and len(have):
            self._check_sample(np.intersect1d(have, rowids, assume_unique=True), docstore)
        remove = np.setdiff1d(have, rowids, assume_unique=True)
        add = np.setdiff1d(rowids, have, assume_unique=True)
        if recorded is None and not len(add):
            pass  # no collection and nothing to put in one: a reader never creates it
        elif recorded != generation or len(remove) or len(add):
            if recorded is None:
                self._create()
            self._record(SYNCING)
            self._delete(remove)
            self._upsert(add, docstore)
            self._record(generation)
        self._known, self._known_generation = rowids, generation
        self.last_sync = (len(remove), len(add))
        if scanned and recorded is not None and (len(remove) or len(add)):
            at = "a sync cut short" if recorded == SYNCING else f"docstore generation {recorded}"
            return (f"{self.target.describe()} was at {at} ({len(add)} sentences missing, {len(remove)} points "
                    f"the docstore no longer has), the docstore at {generation}; caught up from the docstore")
        return None

    def close(self) -> None:
        with self._guard:
            self._client.close()

    # -- internals -------------------------------------------------------------------------------
    def _exists(self) -> bool:
        with self._guard:
            self._seen = bool(self._client.collection_exists(self.name))
        return self._seen

    def _check_collection(self) -> None:
        from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

        try:
            if not self._exists():
                return
            config = self._client.get_collection(self.name).config
        except (ResponseHandlingException, UnexpectedResponse, OSError) as error:
            raise IndexNotReady(f"{self.target.describe()} did not answer: {error}") from error
        params = config.params.vectors
        size = getattr(params, "size", None)  # named vectors (a dict) are not ours
        distance = getattr(getattr(params, "distance", None), "value", None)
        model = (config.metadata or {}).get("embedding_model")
        if model != self.model or size != self._dimension or distance != "Cosine":
            raise IndexMismatch(
                f"{self.target.describe()} holds {size}-dimensional {distance} vectors of embedding model "
                f"{model!r}, but this index embeds with {self.model!r} ({self._dimension} dimensions, cosine); "
                f"set RAG_QDRANT_COLLECTION to another name, or delete that collection (it is rebuilt from "
                f"the docstore)"
            )

    def _check_sample(self, common: np.ndarray, docstore: Docstore) -> None:
        """A few points the docstore also has must hold the docstore's vectors: rowids are never
        reused, so different vectors mean the collection was filled from another docstore."""
        if not len(common):
            return
        sample = common[np.linspace(0, len(common) - 1, min(SAMPLE, len(common))).astype(int)]
        with self._guard:
            points = self._client.retrieve(self.name, [int(i) for i in sample], with_vectors=True)
        stored = {int(p.id): np.asarray(p.vector, dtype=np.float32) for p in points}
        truth = docstore.vectors_for(sample)
        for rowid, vector in zip(sample.tolist(), truth, strict=True):
            if rowid in stored and float(stored[rowid] @ vector) < 0.999:
                raise IndexMismatch(
                    f"{self.target.describe()} holds other vectors under this docstore's sentence ids (sentence "
                    f"{rowid}): it was filled from another index. Set RAG_QDRANT_COLLECTION to another "
                    f"name, or delete that collection (it is rebuilt from the docstore)"
                )

    def _create(self) -> None:
        from qdrant_client import models

        with self._guard:
            self._client.create_collection(
                self.name,
                vectors_config=models.VectorParams(size=self._dimension, distance=models.Distance.COSINE),
                metadata={"embedding_model": self.model, "dimension": self._dimension, "generation": SYNCING},
            )
        if self.target.path is None:  # embedded mode scans everything and has no payload indexes
            for field, schema in (("article_id", models.PayloadSchemaType.KEYWORD),
                                  ("category", models.PayloadSchemaType.KEYWORD),
                                  ("source", models.PayloadSchemaType.KEYWORD),
                                  ("published_at", models.PayloadSchemaType.DATETIME)):
                self._client.create_payload_index(self.name, field, field_schema=schema, wait=True)

    def _record(self, generation: int) -> None:
        with self._guard:
            self._client.update_collection(self.name, metadata={"generation": generation})

    def _delete(self, rowids: np.ndarray) -> None:
        from qdrant_client import models

        for start in range(0, len(rowids), SCROLL_PAGE):
            batch = [int(i) for i in rowids[start:start + SCROLL_PAGE]]
            with self._guard:
                self._client.delete(self.name, points_selector=models.PointIdsList(points=batch), wait=True)

    def _upsert(self, rowids: np.ndarray, docstore: Docstore) -> None:
        """Vectors and metadata from the docstore, in batches; `wait=True` so that a write the
        writer acknowledges is searchable."""
        from qdrant_client import models

        for start in range(0, len(rowids), UPSERT_BATCH):
            batch = [int(i) for i in rowids[start:start + UPSERT_BATCH]]
            payloads = docstore.sentence_metadata(batch)
            present = [i for i in batch if i in payloads]  # the caller holds the lock: all are
            if not present:
                continue
            vectors = docstore.vectors_for(np.array(present, dtype=np.int64))
            batch_points = models.Batch(ids=present, vectors=vectors.tolist(),
                                        payloads=[payloads[i] for i in present])
            with self._guard:
                self._client.upsert(self.name, points=batch_points, wait=True)

    def _query(self, query: np.ndarray, k: int, condition: models.Filter | None,
               exact: bool) -> list[tuple[int, float]]:
        from qdrant_client import models

        with self._guard:
            response = self._client.query_points(
                self.name, query=np.asarray(query, dtype=np.float32).ravel().tolist(), limit=k,
                query_filter=condition, with_payload=False, with_vectors=False,
                search_params=models.SearchParams(exact=True) if exact else None,
            )
        return [(int(p.id), float(p.score)) for p in response.points]


def _payload_filter(filters: Filters) -> models.Filter:
    """The docstore's filters (rag.store.docstore._filter_sql) as Qdrant conditions: exact
    category and source, inclusive dates; an article without a date fails any date filter (a
    range never matches a null)."""
    from qdrant_client import models

    must: list[Any] = []
    if filters.category:
        must.append(models.FieldCondition(key="category", match=models.MatchValue(value=filters.category)))
    if filters.source:
        must.append(models.FieldCondition(key="source", match=models.MatchValue(value=filters.source)))
    if filters.since or filters.until:
        must.append(models.FieldCondition(key="published_at", range=models.DatetimeRange(
            gte=datetime.combine(filters.since, time.min, UTC) if filters.since else None,
            lt=datetime.combine(filters.until + timedelta(days=1), time.min, UTC) if filters.until else None,
        )))
    if filters.window_start or filters.window_end:  # undated articles pass, as in the docstore
        must.append(models.Filter(should=[
            models.IsNullCondition(is_null=models.PayloadField(key="published_at")),
            models.IsEmptyCondition(is_empty=models.PayloadField(key="published_at")),
            models.FieldCondition(key="published_at", range=models.DatetimeRange(
                gte=filters.window_start, lt=filters.window_end))]))
    if filters.as_of:  # undated articles pass: nothing says they are after the asking date
        must.append(models.Filter(should=[
            models.IsNullCondition(is_null=models.PayloadField(key="published_at")),
            models.IsEmptyCondition(is_empty=models.PayloadField(key="published_at")),
            models.FieldCondition(key="published_at", range=models.DatetimeRange(lte=filters.as_of))]))
    return models.Filter(must=must)
