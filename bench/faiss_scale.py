"""The FAISS index kinds at scale: N synthetic 384-d sentence vectors, and questions near them.

    python bench/faiss_scale.py [--n 1000000] [--kinds flat,flat16,hnsw,ivfpq] [--real /tmp/bbcidx]

For each kind, through `VectorIndex` as the store uses it (ivfpq re-scores from a real docstore
SQLite file holding the N vectors): build time, bytes per vector (saved size / N), the time to
delete 1% of the vectors, and for single queries at k=10 and at k=400 (what retrieval asks for:
100 chunks x 4 sentence hits) search p50/p95 and recall against flat's exact answer. Recall counts
ties: a hit scores if its exact cosine reaches the exact k-th best (duplicate sentences make
several ids equally right). Then a sweep of the search-time knobs (HNSW efSearch, IVF nprobe) on
the same indexes, which is where the rules in rag/store/vectors.py come from.

The data imitate MiniLM sentence embeddings, checked against the BBC index (2,225 articles, 41,838
sentences, the titles as questions): topics of ~2,000 sentences and stories of ~20 in a 128-d
subspace, each sentence varying along its topic's 32 latent directions plus isotropic noise, and
8% exact duplicates (BBC: 9%). On BBC a title's best sentence is at cosine 0.67, its 10th 0.47,
its 40th 0.39; here (42k) 0.64, 0.48, 0.42. A question is a new sentence of a stored sentence's
story pulled towards it, at cosine ~0.65 to that source (printed). The earlier bench added
0.3 * N(0,1) per dimension to stored vectors: noise of norm ~5.9 against a unit vector, almost
random queries whose exact top 10 were near-ties no approximate index could find.

`--real DIR` also runs the kinds on a built rag index's sentence vectors with its article titles
(embedded with the bundled model) as questions.

Measured here (2 shared cores, one FAISS thread; p50/p95 in ms; recall against flat, ties counted):

    synthetic 1M         build s  bytes/vec  p50@10  p95@10  rec@10  p50@400  rec@400  del 1% s
    flat                     1.1       1544    53.8    80.4   1.000     57.9    1.000      3.5
    flat16 (another run)     0.7        776    23.7    24.3   1.000     24.4    1.000      0.48
      (flat in that run:     0.7       1544    56.2    57.4   1.000     53.9    1.000      4.1)
    hnsw                   628.0       1816     1.0     1.3   0.998     14.4    0.981      0.00
    ivfpq                   35.1         58    12.6    16.9   0.996     34.4    0.962      0.01
    synthetic 200k: flat 12.4 ms, hnsw (77 s) 0.59 ms 1.000, ivfpq (17 s, 61 B) 3.1 ms 0.994 at k=10.
    BBC 42k, titles:  flat 2.3 ms; hnsw 0.26 ms 0.988 (k=400: 2.5 ms 0.991); ivfpq 73 B, 0.75 ms
                      0.960 (k=400: 10 ms 0.928 -- real questions need more lists probed).
    BBC 42k, sentences nudged as queries, k=400: flat 2.3 ms, flat16 1.0 ms with 0.9998 of flat's top 20.
ivfpq's first searches read cold docstore pages (its table row); the sweep after ran 7.6 ms at k=10.
Before (noise queries): hnsw recall@10 0.379, ivfpq 0.107; any delete rebuilt HNSW (1,372 s at 1M).

FAISS runs on `--threads` OpenMP threads (default 1): on a shared 2-core machine, OpenMP's spinning
threads made single-query search 10-40x slower than one thread (flat 0.8 ms -> 6-24 ms at 20k).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from rag.store import Docstore
from rag.store.vectors import VectorIndex, hnsw_ef_search

DIM = 384
QUERIES = 200
KS = (10, 400)
SPAN, LATENT = 128, 32
PER_STORY, PER_TOPIC = 20, 2000
# Norms of the parts of a sentence vector before normalising: shared by all, topic, story,
# latent variation, isotropic noise.
SHARED, TOPIC, STORY, VARIATION, NOISE = 0.25, 0.45, 0.45, 0.55, 0.6
DUPLICATES = 0.08
PULL = 0.25  # a question's weight on its source sentence (cosine to it ~0.65)


def _unit(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    x = rng.normal(size=shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


class Corpus:
    """Synthetic sentence vectors (see the module doc) and questions about them."""

    def __init__(self, n: int, seed: int = 0, block: int = 50_000) -> None:
        rng = np.random.default_rng(seed)
        shared = _unit(rng, (DIM,))
        self._frame = np.linalg.qr(rng.normal(size=(DIM, SPAN)))[0].T.astype(np.float32)
        topics, stories = max(1, n // PER_TOPIC), max(1, n // PER_STORY)
        self._bases = self._within(rng, (topics, LATENT))
        self._story_topic = rng.integers(0, topics, stories)
        self._stories = SHARED * shared + TOPIC * self._within(rng, (topics,))[self._story_topic] \
            + STORY * self._within(rng, (stories,))
        self.story_of = rng.integers(0, stories, n)
        self.vectors = np.empty((n, DIM), dtype=np.float32)
        for start in range(0, n, block):  # in blocks: temporaries for 1M at once would be GBs
            self.vectors[start:start + block] = self._sentences(rng, self.story_of[start:start + block])
        copies = rng.choice(n, int(n * DUPLICATES), replace=False)  # the same sentence in two articles
        self.vectors[copies] = self.vectors[rng.integers(0, n, len(copies))]
        self.story_of[copies] = -1

    def _within(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return _unit(rng, (*shape, SPAN)) @ self._frame

    def _sentences(self, rng: np.random.Generator, stories: np.ndarray) -> np.ndarray:
        z = rng.normal(size=(len(stories), LATENT)).astype(np.float32) / np.sqrt(LATENT)
        part = self._stories[stories] + VARIATION * np.einsum("nl,nld->nd", z, self._bases[self._story_topic[stories]])
        part += NOISE * _unit(rng, (len(stories), DIM))
        return part / np.linalg.norm(part, axis=1, keepdims=True)

    def questions(self, count: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(questions, cosine of each to its source sentence)."""
        rng = np.random.default_rng(seed)
        sources = rng.choice(np.flatnonzero(self.story_of >= 0), count, replace=False)
        q = PULL * self.vectors[sources] + (1 - PULL) * self._sentences(rng, self.story_of[sources])
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        return q.astype(np.float32), np.sum(q * self.vectors[sources], axis=1)


def docstore_with(folder: Path, ids: np.ndarray, vectors: np.ndarray) -> Docstore:
    """A real docstore file holding the vectors as sentences under `ids` (ivfpq re-scores from it)."""
    docstore = Docstore(folder / "docstore.sqlite")
    db = sqlite3.connect(folder / "docstore.sqlite")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("INSERT INTO articles VALUES ('a', 't', 'x', NULL, NULL, NULL, NULL, 'h', 'bench', '')")
    for start in range(0, len(ids), 100_000):
        db.executemany("INSERT INTO sentences (rowid, article_id, start, end, vector) VALUES (?, 'a', ?, 0, ?)",
                       ((int(i), int(i), v.tobytes()) for i, v in zip(ids[start:start + 100_000],
                                                                    vectors[start:start + 100_000])))
        db.commit()
    db.close()
    return docstore


class Truth:
    """Flat's exact answer, and tie-aware recall against it."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray) -> None:
        self._position = {int(i): p for p, i in enumerate(ids)}
        self._vectors, self._queries = vectors, queries
        scores = np.concatenate([vectors[s:s + 100_000] @ queries.T for s in range(0, len(vectors), 100_000)])
        self.kth = {k: -np.partition(-scores, k - 1, axis=0)[k - 1] for k in KS}  # per query

    def recall(self, k: int, results: list[list[int]]) -> float:
        got = []
        for q, hits in enumerate(results):
            exact = self._vectors[[self._position[i] for i in hits[:k]]] @ self._queries[q]
            got.append(np.sum(exact >= self.kth[k][q] - 1e-5) / k)
        return float(np.mean(got))


def timed_searches(search, queries: np.ndarray, k: int) -> tuple[list[list[int]], np.ndarray]:
    results, timings = [], []
    for q in queries:
        started = time.perf_counter()
        results.append([int(i) for i in search(q, k)])
        timings.append((time.perf_counter() - started) * 1000)
    return results, np.array(timings)


def measure(kind: str, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, truth: Truth,
            docstore: Docstore | None) -> tuple[list, list[str]]:
    """(the table row, the knob sweep lines) of one kind."""
    n = len(ids)
    started = time.perf_counter()
    index = VectorIndex.built(ids, vectors, kind, exact=docstore.sentence_vectors if docstore else None)
    build = time.perf_counter() - started

    def ours(q: np.ndarray, k: int) -> list[int]:
        return [i for i, _ in index.search(q, k)]

    row = [kind, index.kind, build, index.nbytes() / n]
    for k in KS:
        results, timings = timed_searches(ours, queries, k)
        row += [*np.percentile(timings, [50, 95]), truth.recall(k, results)]
    started = time.perf_counter()
    index.synced(np.random.default_rng(2).choice(ids, n // 100, replace=False), np.zeros(0, dtype=np.int64),
                 np.zeros((0, DIM), dtype=np.float32))
    row.append(time.perf_counter() - started)
    sweeps = []
    if index.kind == "hnsw":  # the same graph searched with other efSearch values
        for k, efs in ((10, (16, 32, 64, 128, 256, hnsw_ef_search(n, 10))),
                        (400, (400, 800, 1200, 1600, 2400, hnsw_ef_search(n, 400)))):
            for ef in sorted(set(efs)):
                params = faiss.SearchParametersHNSW(efSearch=ef)

                def raw(q: np.ndarray, k: int, params: faiss.SearchParameters = params) -> np.ndarray:
                    return index._index.search(q[None], k, params=params)[1][0]

                results, timings = timed_searches(raw, queries, k)
                sweeps.append(f"hnsw  k={k:<4}efSearch={ef:<5}{np.percentile(timings, 50):>8.2f} ms p50"
                              f"   recall {truth.recall(k, results):.3f}"
                              + ("   <- the rule" if ef == hnsw_ef_search(n, k) else ""))
    if index.kind == "ivfpq":  # the same lists probed more or less widely (and re-scored)
        ivf = faiss.extract_index_ivf(index._index)
        rule = ivf.nprobe
        for nprobe in sorted({rule // 4, rule // 2, rule, rule * 2} - {0}):
            ivf.nprobe = min(nprobe, ivf.nlist)
            for k in KS:
                results, timings = timed_searches(ours, queries, k)
                sweeps.append(f"ivfpq k={k:<4}nprobe={ivf.nprobe:<4}/{ivf.nlist:<5}"
                              f"{np.percentile(timings, 50):>7.2f} ms p50   recall {truth.recall(k, results):.3f}"
                              + ("   <- the rule" if nprobe == rule else ""))
    return row, sweeps


def run(label: str, ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, kinds: list[str],
        folder: Path) -> None:
    n = len(ids)
    truth = Truth(ids, vectors, queries)
    docstore = docstore_with(folder, ids, vectors) if "ivfpq" in kinds else None
    rows, sweeps = [], []
    for kind in kinds:
        row, lines = measure(kind, ids, vectors, queries, truth, docstore)
        rows.append(row)
        sweeps += lines
        print(f"  {label}: {kind} done ({row[2]:.1f} s)", flush=True)
    if docstore:
        docstore.close()

    print(f"\n{label}: {n:,} vectors of {DIM} dims, {len(queries)} single queries, {faiss.omp_get_max_threads()} "
          "FAISS thread(s); recall against flat, ties counted")
    print(f"{'kind':<7}{'built as':<9}{'build s':>9}{'bytes/vec':>10}"
          + "".join(f"{f'p50@{k}':>9}{f'p95@{k}':>9}{f'rec@{k}':>9}" for k in KS) + f"{'del 1% s':>10}")
    for kind, built_as, build, per, *rest in rows:
        print(f"{kind:<7}{built_as:<9}{build:>9.1f}{per:>10.0f}"
              + "".join(f"{p50:>9.2f}{p95:>9.2f}{rec:>9.3f}" for p50, p95, rec in zip(rest[0::3], rest[1::3], rest[2::3]))
              + f"{rest[-1]:>10.2f}")
    print("\n".join(sweeps))


def real_data(index_dir: Path, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sentence ids, vectors, titles embedded as questions) of a built rag index."""
    from rag.embedding.torch_encoder import SentenceTransformerEmbedder

    db = sqlite3.connect(f"file:{index_dir / 'docstore.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT rowid, vector FROM sentences WHERE vector IS NOT NULL ORDER BY rowid").fetchall()
    titles = [r[0] for r in db.execute("SELECT title FROM articles ORDER BY id")]
    db.close()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    step = max(1, len(titles) // count)
    return ids, vectors, SentenceTransformerEmbedder("bench").embed(titles[::step][:count])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--kinds", default="flat,flat16,hnsw,ivfpq")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--real", type=Path, help="a built rag index folder: also run on its vectors and titles")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    kinds = args.kinds.split(",")
    with tempfile.TemporaryDirectory(prefix="faiss-bench-") as tmp:
        if args.real:
            ids, vectors, titles = real_data(args.real, QUERIES)
            best = np.max(np.concatenate([vectors[s:s + 50_000] @ titles.T for s in range(0, len(vectors), 50_000)]), 0)
            print(f"real: {args.real}, titles as questions; cosine to their best sentence: median "
                  f"{np.median(best):.2f} (p10 {np.percentile(best, 10):.2f}, p90 {np.percentile(best, 90):.2f})")
            (Path(tmp) / "real").mkdir()
            run("real", ids, vectors, titles, kinds, Path(tmp) / "real")
        if args.n:
            corpus = Corpus(args.n)
            questions, cosine = corpus.questions(QUERIES)
            print(f"\nsynthetic: questions at cosine {np.median(cosine):.2f} to their source sentence (p10 "
                  f"{np.percentile(cosine, 10):.2f}, p90 {np.percentile(cosine, 90):.2f}); MiniLM's real "
                  "question-to-best-sentence cosines are ~0.5-0.8", flush=True)
            (Path(tmp) / "synthetic").mkdir()
            run("synthetic", np.arange(args.n, dtype=np.int64) * 2 + 1, corpus.vectors, questions, kinds,
                Path(tmp) / "synthetic")


if __name__ == "__main__":
    main()
