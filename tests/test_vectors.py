"""The FAISS index kinds (RAG_FAISS_INDEX): real FAISS, made-up clustered vectors (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from rag.chunking import Chunker
from rag.indexer import embedded, sentences_of
from rag.store import Store
from rag.store.vectors import IVFPQ_MIN_VECTORS, VectorIndex
from rag.types import Article

KINDS = ["flat", "hnsw", "ivfpq"]
DIM = 32


def _clustered(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres: embeddings cluster by topic, uniform noise would not."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))
    vectors = centres[rng.integers(0, 50, n)] + 0.5 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _near(vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Queries near the data (as questions are near their passages), not copies of it."""
    rng = np.random.default_rng(seed)
    queries = vectors[rng.integers(0, len(vectors), n)] + 0.3 * rng.normal(size=(n, vectors.shape[1]))
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def _exact_top(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return ids[np.argsort(-(vectors @ query), kind="stable")[:k]].tolist()


# ivfpq needs IVFPQ_MIN_VECTORS to train; the others are checked on the same set.
N = IVFPQ_MIN_VECTORS + 500


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    ids = np.arange(N, dtype=np.int64) * 3 + 7  # rowids are not positions
    return ids, _clustered(N)


@pytest.fixture(scope="module")
def built(data) -> dict[str, VectorIndex]:
    ids, vectors = data
    return {kind: VectorIndex.built(ids, vectors, kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_finds_the_nearest_neighbours(built, data, kind):
    ids, vectors = data
    index = built[kind]
    assert index.kind == kind and len(index) == N
    assert sorted(index.ids().tolist()) == ids.tolist()
    queries = _near(vectors, 40, seed=1)
    recalls = []
    for q in queries:
        got = [i for i, _ in index.search(q, 10)]
        assert len(got) == 10 and len(set(got)) == 10
        recalls.append(len(set(got) & set(_exact_top(vectors, ids, q, 10))) / 10)
    floor = {"flat": 1.0, "hnsw": 0.9, "ivfpq": 0.35}[kind]  # 4-byte PQ codes at 32 dims are lossy
    assert np.mean(recalls) >= floor
    # A stored vector as the query finds itself first (ivfpq: among the first ten).
    for row in (0, 123, N - 1):
        got = [i for i, _ in index.search(vectors[row], 10)]
        assert ids[row] in (got[:1] if kind != "ivfpq" else got)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("share", [0.5, 0.001])
def test_each_kind_honours_the_allowed_ids(built, data, kind, share):
    ids, vectors = data
    rng = np.random.default_rng(2)
    allowed = np.sort(rng.choice(ids, max(3, int(N * share)), replace=False))
    for q in _near(vectors, 10, seed=3):
        got = [i for i, _ in built[kind].search(q, 10, allowed)]
        assert set(got) <= set(allowed.tolist())
        # A narrow filter still fills the k slots (approximate search alone would miss some).
        assert len(got) == min(10, len(allowed))
    assert built[kind].search(vectors[0], 10, np.zeros(0, dtype=np.int64)) == []


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_never_returns_deleted_ids(built, data, kind):
    ids, vectors = data
    removed = ids[:2000]
    after = built[kind].synced(removed, np.array([10**9], dtype=np.int64), vectors[:1])
    assert after.kind == kind
    assert set(after.ids().tolist()) == (set(ids.tolist()) - set(removed.tolist())) | {10**9}
    for row in range(0, 2000, 97):  # query with the deleted vectors themselves
        got = {i for i, _ in after.search(vectors[row], 20)}
        assert got and not (got & set(removed.tolist()))
    assert 10**9 in {i for i, _ in after.search(vectors[0], 3)}
    assert len(built[kind]) == N  # copy on write: the published index is unchanged


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_survives_a_save_and_load(built, data, tmp_path, kind):
    ids, vectors = data
    built[kind].save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss", DIM, kind)
    assert loaded.kind == kind and np.array_equal(np.sort(loaded.ids()), ids)
    for row in (5, 500):
        assert loaded.search(vectors[row], 10) == built[kind].search(vectors[row], 10)
    other = next(k for k in KINDS if k != kind)
    with pytest.raises(ValueError, match=f"holds a {kind} index"):
        VectorIndex.load(tmp_path / "v.faiss", DIM, other)


def test_ivfpq_is_flat_until_there_are_enough_vectors_to_train():
    vectors = _clustered(IVFPQ_MIN_VECTORS)
    ids = np.arange(IVFPQ_MIN_VECTORS, dtype=np.int64)
    small = VectorIndex.built(ids[:-1], vectors[:-1], "ivfpq")
    assert small.kind == "flat" and small.requested == "ivfpq"
    grown = small.synced(np.zeros(0, dtype=np.int64), ids[-1:], vectors[-1:])
    assert grown.kind == "ivfpq" and np.array_equal(np.sort(grown.ids()), ids)
    assert grown.nbytes() < small.nbytes() / 4


# -- through the store: persisted, reloaded, and rebuilt when the kind changes -------------------

def _put(store: Store, i: int) -> None:
    article = Article(id=f"a{i}", title=f"Title {i}",
                      text=" ".join(f"Sentence {j} about topic{i} item{j}." for j in range(12)))
    chunks = Chunker(budget=40, overlap=8).chunk(article)
    vectors = _clustered(len(sentences_of(chunks)), seed=10 + i)
    with store.writer():
        store.docstore.put([embedded(article, chunks, vectors)])
        store.publish()


@pytest.mark.parametrize("kind", KINDS)
def test_store_of_each_kind_deletes_persists_and_reloads(tmp_path, kind):
    store = Store(tmp_path, "m", DIM, kind)
    for i in range(4):
        _put(store, i)
    with store.writer():
        store.docstore.delete("a2")
        store.publish()
    truth = store.docstore.all_vectors()
    expected = {kind: kind, "ivfpq": "flat"}[kind]  # a few dozen chunks: too few to train IVF-PQ
    assert store.indexes().vectors.kind == expected
    assert set(store.indexes().vectors.ids().tolist()) == set(truth[0].tolist())
    query = truth[1][0]
    before = store.indexes().vectors.search(query, 10)
    assert before[0][0] == truth[0][0]
    store.close()

    again = Store(tmp_path, "m", DIM, kind)
    assert again.load_problem is None  # the persisted file was used as it is
    assert again.indexes().vectors.kind == expected
    assert again.indexes().vectors.search(query, 10) == before
    assert again.check().ok
    again.close()


def test_store_rebuilds_an_index_of_another_kind(tmp_path):
    store = Store(tmp_path, "m", DIM, "hnsw")
    for i in range(3):
        _put(store, i)
    ids = set(store.indexes().vectors.ids().tolist())
    store.close()

    flat = Store(tmp_path, "m", DIM, "flat")
    assert "holds a hnsw index" in (flat.load_problem or "")
    assert flat.indexes().vectors.kind == "flat"
    assert set(flat.indexes().vectors.ids().tolist()) == ids
    flat.close()

    again = Store(tmp_path, "m", DIM, "flat")  # the rebuilt index was persisted
    assert again.load_problem is None and again.indexes().vectors.kind == "flat"
    assert again.check().ok
    again.close()
