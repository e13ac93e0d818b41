"""The FAISS index kinds (RAG_FAISS_INDEX): real FAISS, made-up clustered vectors (no model needed)."""

from __future__ import annotations

import json
import threading

import faiss
import numpy as np
import pytest

from rag.chunking import Chunker
from rag.indexer import embedded, sentences_of
from rag.store import Store
from rag.store.vectors import HNSW_MAX_TOMBSTONES, IVFPQ_MIN_VECTORS, VectorIndex
from rag.types import Article

KINDS = ["flat", "flat16", "hnsw", "ivfpq"]
DIM = 32


def _clustered(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres: embeddings cluster by topic, uniform noise would not."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, dim))
    vectors = centres[rng.integers(0, 50, n)] + 0.5 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def _groups(n: int, seed: int = 0) -> np.ndarray:
    """An easy set: tight groups of ten vectors, so a query near one has that group as its top ten."""
    rng = np.random.default_rng(seed)
    vectors = np.repeat(rng.normal(size=(-(-n // 10), DIM)), 10, axis=0)[:n] + 0.05 * rng.normal(size=(n, DIM))
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


def _exact_vectors(ids: np.ndarray, vectors: np.ndarray):
    """What the store gives ivfpq to re-score with (the docstore's vectors), over arrays."""
    position = {int(i): p for p, i in enumerate(ids)}

    def fetch(wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        found = np.array([i for i in wanted if int(i) in position], dtype=np.int64)
        return found, vectors[[position[int(i)] for i in found]]
    return fetch


@pytest.fixture(scope="module")
def built(data) -> dict[str, VectorIndex]:
    ids, vectors = data
    # The docstore also holds the vector that test_each_kind_never_returns_deleted_ids adds.
    exact = _exact_vectors(np.append(ids, 10**9), np.vstack([vectors, vectors[:1]]))
    return {kind: VectorIndex.built(ids, vectors, kind, exact=exact) for kind in KINDS}


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
    # ivfpq's 4-byte PQ codes at 32 dims are lossy alone; its exact re-scoring makes up for them.
    assert np.mean(recalls) >= {"flat": 1.0, "flat16": 0.99, "hnsw": 0.9, "ivfpq": 0.9}[kind]
    # A stored vector as the query finds itself first, at its exact cosine (fp16's to ~1e-4).
    for row in (0, 123, N - 1):
        got = index.search(vectors[row], 10)
        assert got[0][0] == ids[row] and got[0][1] == pytest.approx(1.0, abs=1e-3 if kind == "flat16" else 1e-5)


def test_flat16_answers_as_flat_in_about_half_the_bytes(built, data):
    _, vectors = data
    flat, half = built["flat"], built["flat16"]
    assert half.nbytes() < 0.6 * flat.nbytes()  # 2 bytes a dimension against 4, plus 8 per id for both
    agreement = []
    for query in _near(vectors, 40, seed=5):
        got, truth = dict(half.search(query, 10)), dict(flat.search(query, 10))
        agreement.append(len(got.keys() & truth.keys()) / 10)
        assert all(abs(got[i] - truth[i]) < 1e-3 for i in got.keys() & truth.keys())
    assert np.mean(agreement) >= 0.99


@pytest.mark.parametrize("kind", KINDS)
def test_a_search_from_a_server_thread_runs_faiss_on_one_thread(built, data, kind):
    """OpenMP's thread count is per calling thread: a search from a fresh thread (as the server's
    thread pool makes them) must still use one thread, or two threads fight over 2 cores."""
    _, vectors = data
    seen: list[tuple[int, int]] = []

    def search_from_a_new_thread() -> None:
        before = faiss.omp_get_max_threads()
        built[kind].search(vectors[0], 10)
        seen.append((before, faiss.omp_get_max_threads()))

    thread = threading.Thread(target=search_from_a_new_thread)
    thread.start()
    thread.join()
    assert len(seen) == 1 and seen[0][1] == 1, seen


def _assert_answers_as_flat(index: VectorIndex, flat: VectorIndex, vectors: np.ndarray, rows: np.ndarray,
                            rng: np.random.Generator) -> None:
    """Queries just off the given rows get flat's answer from `index`: ids, order and cosines."""
    for row in rows:
        query = vectors[row] + 0.02 * rng.normal(size=DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        got, truth = index.search(query, 10), flat.search(query, 10)
        assert [i for i, _ in got] == [i for i, _ in truth]
        assert np.allclose([s for _, s in got], [s for _, s in truth], atol=1e-5)


def test_ivfpq_rescored_equals_flat_on_an_easy_set():
    """Tight groups of ten: a query near a group has that group as its top ten, which PQ finds
    but cannot order (its codes blur vectors this close); re-scored with the exact vectors, the
    answer is flat's, ids, order and cosines."""
    rng = np.random.default_rng(4)
    vectors = _groups(N, seed=4)
    ids = np.arange(len(vectors), dtype=np.int64) * 2 + 1
    ivfpq = VectorIndex.built(ids, vectors, "ivfpq", exact=_exact_vectors(ids, vectors))
    flat = VectorIndex.built(ids, vectors, "flat")
    assert ivfpq.kind == "ivfpq"
    _assert_answers_as_flat(ivfpq, flat, vectors, rng.choice(len(vectors), 20, replace=False), rng)
    # Without the exact vectors, PQ's own scores come back: approximate.
    pq_only = VectorIndex(ivfpq._index, "ivfpq")
    scores = [s for _, s in pq_only.search(vectors[7], 10)]
    assert not np.allclose(scores, [s for _, s in flat.search(vectors[7], 10)], atol=1e-5)


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
    assert len(after) == N - 2000 + 1
    assert len(built[kind]) == N  # copy on write: the published index is unchanged
    # HNSW cannot remove: 2,000 of 10,501 (under HNSW_MAX_TOMBSTONES) are tombstones, no rebuild.
    assert after.tombstones == (2000 if kind == "hnsw" else 0)


def _hnsw_with_tombstones(built, data) -> tuple[VectorIndex, np.ndarray]:
    ids, vectors = data
    removed = ids[::7]  # 1,500 of 10,500: tombstones, under the rebuild threshold
    return built["hnsw"].synced(removed, np.zeros(0, dtype=np.int64), vectors[:0]), removed


def test_hnsw_tombstones_are_never_returned_even_through_filters(built, data):
    ids, vectors = data
    after, removed = _hnsw_with_tombstones(built, data)
    dead = set(removed.tolist())
    assert after.tombstones == len(removed) and len(after) == N - len(removed)
    assert not dead & set(after.ids().tolist())
    exact_ids, exact_vectors = after._exact()
    assert not dead & set(exact_ids.tolist()) and len(exact_vectors) == len(after)
    for q in _near(vectors, 10, seed=5):
        got = [i for i, _ in after.search(q, 40)]
        assert len(got) == 40 and not dead & set(got)
        # A filter naming dead and live ids alike gets only live ones, and as many as exist.
        allowed = np.concatenate([removed[:30], ids[1::7][:5]])
        filtered = [i for i, _ in after.search(q, 10, allowed)]
        assert sorted(filtered) == sorted(ids[1::7][:5].tolist())
        assert after.search(q, 10, removed[:30]) == []
    # The filtered answer is still the exact one: the best live allowed ids by cosine.
    allowed = ids[:3000]
    live = allowed[~np.isin(allowed, removed)]
    q = _near(vectors, 1, seed=6)[0]
    got = [i for i, _ in after.search(q, 10, allowed)]
    assert set(got) == set(_exact_top(vectors[np.isin(ids, live)], live, q, 10))


def test_hnsw_tombstones_survive_a_save_and_load(built, data, tmp_path):
    _, vectors = data
    after, removed = _hnsw_with_tombstones(built, data)
    after.save(tmp_path / "v.faiss")
    assert (tmp_path / "v.faiss.tombstones.npy").exists()
    loaded = VectorIndex.load(tmp_path / "v.faiss", DIM, "hnsw")
    assert loaded.tombstones == len(removed) and len(loaded) == len(after)
    assert np.array_equal(np.sort(loaded.ids()), np.sort(after.ids()))
    for row in removed[:5] // 3:  # the deleted vectors themselves as queries
        assert loaded.search(vectors[row], 10) == after.search(vectors[row], 10)
        assert not set(removed.tolist()) & {i for i, _ in loaded.search(vectors[row], 10)}
    # Tombstones of another index's ids (files from two indexes) are refused.
    np.save(tmp_path / "v.faiss.tombstones.npy", np.array([-5], dtype=np.int64))
    with pytest.raises(ValueError, match="does not hold"):
        VectorIndex.load(tmp_path / "v.faiss", DIM, "hnsw")


def test_hnsw_is_rebuilt_once_tombstones_pass_the_threshold(built, data):
    ids, vectors = data
    after, removed = _hnsw_with_tombstones(built, data)
    more = ids[1::7][: int(N * HNSW_MAX_TOMBSTONES)]  # now well past the share
    rebuilt = after.synced(more, np.array([10**9], dtype=np.int64), vectors[:1])
    assert rebuilt.kind == "hnsw" and rebuilt.tombstones == 0
    gone = set(removed.tolist()) | set(more.tolist())
    assert set(rebuilt.ids().tolist()) == (set(ids.tolist()) - gone) | {10**9}
    assert rebuilt._index.ntotal == len(rebuilt)  # the graph holds only live vectors
    for row in (0, 2, 3):
        got = {i for i, _ in rebuilt.search(vectors[row], 20)}
        assert got and not got & gone


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_survives_a_save_and_load(built, data, tmp_path, kind):
    ids, vectors = data
    built[kind].save(tmp_path / "v.faiss")
    loaded = VectorIndex.load(tmp_path / "v.faiss", DIM, kind, exact=_exact_vectors(ids, vectors))
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


def test_ivfpq_is_retrained_when_it_outgrows_its_lists():
    n = IVFPQ_MIN_VECTORS + 500
    vectors = _clustered(5 * n, seed=5)
    ids = np.arange(5 * n, dtype=np.int64) * 2 + 1
    exact = _exact_vectors(ids, vectors)
    small = VectorIndex.built(ids[:n], vectors[:n], "ivfpq", exact=exact)
    lists = faiss.extract_index_ivf(small._index).nlist
    removed = ids[:10]
    # Twice the vectors: the same lists, the new vectors only added.
    doubled = small.synced(removed, ids[n : 2 * n], vectors[n : 2 * n])
    assert faiss.extract_index_ivf(doubled._index).nlist == lists
    # Five times: retrained on the exact vectors, with about sqrt(n) lists, nothing lost or revived.
    grown = doubled.synced(np.zeros(0, dtype=np.int64), ids[2 * n :], vectors[2 * n :])
    assert faiss.extract_index_ivf(grown._index).nlist > 2 * lists
    assert np.array_equal(np.sort(grown.ids()), ids[10:])
    # As good as an index built afresh on the same vectors (this set's clusters are wide: neither
    # reaches the 0.9 of the sets above).
    flat = VectorIndex.built(ids[10:], vectors[10:], "flat")
    fresh = VectorIndex.built(ids[10:], vectors[10:], "ivfpq", exact=exact)
    queries = _near(vectors, 50, seed=6)

    def recall(index: VectorIndex) -> float:
        return float(np.mean([len({i for i, _ in index.search(q, 10)} & {i for i, _ in flat.search(q, 10)}) / 10
                              for q in queries]))

    assert recall(grown) >= recall(fresh) - 0.03


# -- through the store: persisted, reloaded, and rebuilt when the kind changes -------------------

def _put(store: Store, i: int, sentences: int = 12, make=_clustered) -> None:
    article = Article(id=f"a{i}", title=f"Title {i}",
                      text=" ".join(f"Sentence {j} about topic{i} item{j}." for j in range(sentences)))
    chunks = Chunker(budget=40, overlap=8).chunk(article)
    vectors = make(len(sentences_of(chunks)), seed=10 + i)
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


def test_store_keeps_hnsw_tombstones_across_a_restart(tmp_path):
    store = Store(tmp_path, "m", DIM, "hnsw")
    for i in range(8):
        _put(store, i)
    doomed = set(store.indexes().vectors.ids().tolist())
    with store.writer():
        store.docstore.delete("a5")  # 1 of 8 articles: tombstones, no rebuild
        store.publish()
    doomed -= set(store.docstore.sentence_rowids().tolist())
    vectors = store.indexes().vectors
    assert vectors.tombstones == len(doomed) > 0
    assert store.check().ok
    store.close()

    again = Store(tmp_path, "m", DIM, "hnsw")
    assert again.load_problem is None  # index and tombstones were loaded as saved
    vectors = again.indexes().vectors
    assert vectors.tombstones == len(doomed) and again.check().ok
    _, exact = again.docstore.all_vectors()
    for q in exact[::10]:
        assert not doomed & {i for i, _ in vectors.search(q, 50)}
    with again.writer():  # two more of 8: past the threshold, the graph is rebuilt without them
        again.docstore.delete("a1")
        again.docstore.delete("a2")
        again.publish()
    assert again.indexes().vectors.tombstones == 0 and again.check().ok
    again.close()


def test_store_ivfpq_rescores_from_the_docstore(tmp_path):
    """Enough sentences to train IVF-PQ through the store: its answers are flat's, with the exact
    cosines of the docstore's vectors."""
    store = Store(tmp_path, "m", DIM, "ivfpq")
    per = 300
    for i in range(IVFPQ_MIN_VECTORS // per + 1):
        _put(store, i, sentences=per, make=_groups)
    vectors = store.indexes().vectors
    assert vectors.kind == "ivfpq"
    ids, exact = store.docstore.all_vectors()
    flat = VectorIndex.built(ids, exact, "flat")
    rng = np.random.default_rng(8)
    _assert_answers_as_flat(vectors, flat, exact, rng.choice(len(ids), 10, replace=False), rng)
    store.close()


def test_store_never_uses_an_hnsw_index_without_its_tombstones(tmp_path):
    """The sidecar is part of the generation: lost or altered (a crash mid-copy, a hand edit), the
    index is not used as if nothing was deleted; it is rebuilt from the docstore."""
    store = Store(tmp_path, "m", DIM, "hnsw")
    for i in range(8):
        _put(store, i)
    with store.writer():
        store.docstore.delete("a3")
        store.publish()
    assert store.indexes().vectors.tombstones > 0
    live = set(store.docstore.sentence_rowids().tolist())
    store.close()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (tmp_path / manifest["folder"] / "vectors.faiss.tombstones.npy").unlink()

    again = Store(tmp_path, "m", DIM, "hnsw")
    assert "tombstones" in (again.load_problem or "")
    vectors = again.indexes().vectors
    assert set(vectors.ids().tolist()) == live and vectors.tombstones == 0 and again.check().ok
    again.close()
