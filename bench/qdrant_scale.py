"""Qdrant as the vector store at scale, beside flat FAISS: N synthetic 384-d unit vectors (the same
clustered set, and questions, as bench/faiss_scale.py).

    python bench/qdrant_scale.py [--n 100000] [--url http://127.0.0.1:6333]

Without --url it measures qdrant-client's embedded local mode (a temporary folder), which is what
the tests run; with --url, a Qdrant server. Build: upserts of the store's batch size with
wait=True, as the writer does. Search: 200 single queries (k=10) through `QdrantVectors.search`,
unfiltered and under a payload filter that keeps a tenth of the points; recall@10 against flat
FAISS's exact answer (filtered: against the exact answer among the allowed ids).

Measured here (2 shared cores), embedded mode, N=10,000: build 185 s (54 points/s: the embedded
mode commits every point to its SQLite file on its own, ~20 ms each on this disk); search p50 31 ms,
p95 44 ms, recall@10 1.000 (it is exact: numpy over every vector); under the payload filter p50
233 ms, p95 275 ms, recall 1.000 (the filter is evaluated in Python point by point). So 100k would
take ~30 min to build and ~0.3 s per search: the embedded mode is for tests and small indexes;
anything larger wants a Qdrant server (--url), whose figures this machine could not measure.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from qdrant_client import QdrantClient, models

from bench.faiss_scale import DIM, QUERIES, Corpus
from rag.store.qdrant import UPSERT_BATCH, QdrantTarget, QdrantVectors
from rag.store.vectors import VectorIndex
from rag.types import Filters

MODEL = "synthetic"
K = 10
CATEGORIES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--url", default=None, help="a Qdrant server; default: embedded local mode")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)  # see bench/faiss_scale.py: OpenMP spinning on a shared machine
    corpus = Corpus(args.n)
    vectors = corpus.vectors
    ids = np.arange(1, args.n + 1, dtype=np.int64)  # rowids start at 1
    category = np.array([f"c{i % CATEGORIES}" for i in range(args.n)])
    queries, _ = corpus.questions(QUERIES)
    flat = VectorIndex.built(ids, vectors, "flat")
    allowed = ids[category == "c3"]

    with tempfile.TemporaryDirectory() as folder:
        target = QdrantTarget("bench", url=args.url, path=None if args.url else Path(folder) / "qdrant")
        client = QdrantClient(url=args.url, timeout=60) if args.url else QdrantClient(path=str(target.path))
        if client.collection_exists("bench"):
            client.delete_collection("bench")
        store = QdrantVectors(client, target, MODEL, DIM)
        started = time.perf_counter()
        store._create()  # the collection as the store makes it (payload indexes on a server)
        for start in range(0, args.n, UPSERT_BATCH):
            stop = min(args.n, start + UPSERT_BATCH)
            client.upsert("bench", points=models.Batch(
                ids=ids[start:stop].tolist(), vectors=vectors[start:stop].tolist(),
                payloads=[{"category": c} for c in category[start:stop]]), wait=True)
        build = time.perf_counter() - started
        print(f"  built {args.n} points in {build:.1f} s", flush=True)

        rows = []
        for name, filters, allow in (("all", None, None), ("1/10 by payload", Filters(category="c3"), allowed)):
            timings, recalls = [], []
            for q in queries:
                truth = {i for i, _ in flat.search(q, K, allow)}
                t = time.perf_counter()
                got = store.search(q, K, allow, filters)
                timings.append((time.perf_counter() - t) * 1000)
                assert len(got) == K
                recalls.append(len({i for i, _ in got} & truth) / K)
            rows.append((name, *np.percentile(timings, [50, 95]), float(np.mean(recalls))))
        client.close()

    mode = f"server {args.url}" if args.url else "embedded local mode"
    print(f"\nQdrant ({mode}), {args.n} x {DIM}-d, build {build:.1f} s ({args.n / build:.0f} points/s)")
    print(f"{'search':<18}{'p50 ms':>9}{'p95 ms':>9}{'recall@10':>11}")
    for name, p50, p95, recall in rows:
        print(f"{name:<18}{p50:>9.2f}{p95:>9.2f}{recall:>11.3f}")


if __name__ == "__main__":
    main()
