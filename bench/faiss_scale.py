"""The FAISS index kinds at scale: N synthetic 384-d unit vectors (clustered, as embeddings are).

    python bench/faiss_scale.py [--n 1000000] [--kinds flat,hnsw,ivfpq]

For each kind: build time, bytes per vector (saved index size / N), search p50/p95 over 200
single queries (k=10), recall@10 against flat's exact answer, and "10 in 50": how much of the exact
top 10 is among the kind's top 50 (the dense candidates retrieval fuses). Prints one table.

FAISS runs on `--threads` OpenMP threads (default 1): on a shared 2-core machine, OpenMP's spinning
threads made single-query search 10-40x slower than one thread (flat 0.8 ms -> 6-24 ms at 20k).
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from rag.store.vectors import VectorIndex

DIM = 384
QUERIES = 200
K = 10
LATENT = 32


def synthetic(n: int, seed: int = 0, block: int = 100_000) -> np.ndarray:
    """Unit vectors around n/100 topic centres, varying along LATENT directions plus a little
    isotropic noise: sentence embeddings have a low intrinsic dimension, and isotropic 384-d noise
    (where every point is about equally far from every other) would measure nothing useful."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(1, n // 100), DIM)).astype(np.float32)
    basis = rng.normal(size=(LATENT, DIM)).astype(np.float32) / np.sqrt(LATENT)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, block):  # in blocks: float64 temporaries of 1M x 384 would be 3 GB
        stop = min(n, start + block)
        part = centres[rng.integers(0, len(centres), stop - start)]
        part += rng.normal(size=(stop - start, LATENT)).astype(np.float32) @ basis
        part += 0.1 * rng.normal(size=part.shape).astype(np.float32)
        out[start:stop] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--kinds", default="flat,hnsw,ivfpq")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    kinds = args.kinds.split(",")
    vectors = synthetic(args.n)
    ids = np.arange(args.n, dtype=np.int64)
    rng = np.random.default_rng(1)
    # Queries near stored vectors, as a question is near its passage.
    queries = vectors[rng.integers(0, args.n, QUERIES)] + 0.3 * rng.normal(size=(QUERIES, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)

    truth: list[set[int]] | None = None
    rows = []
    for kind in ["flat"] + [k for k in kinds if k != "flat"]:
        started = time.perf_counter()
        index = VectorIndex.built(ids, vectors, kind)
        build = time.perf_counter() - started
        timings, results = [], []
        for q in queries:
            t = time.perf_counter()
            results.append({i for i, _ in index.search(q, K)})
            timings.append((time.perf_counter() - t) * 1000)
        wide = [{i for i, _ in index.search(q, 5 * K)} for q in queries]
        if truth is None:
            truth = results
        recall = float(np.mean([len(r & t) / K for r, t in zip(results, truth)]))
        within = float(np.mean([len(w & t) / K for w, t in zip(wide, truth)]))
        if kind in kinds:
            rows.append((kind, index.kind, build, index.nbytes() / args.n, *np.percentile(timings, [50, 95]),
                         recall, within))
        print(f"  {kind} done ({build:.1f} s)", flush=True)
        del index

    print(f"\n{args.n:,} vectors of {DIM} dims, {QUERIES} queries, k={K}, {args.threads} FAISS thread(s)")
    print(f"{'kind':<8}{'built as':<10}{'build s':>9}{'bytes/vec':>11}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'recall@10':>11}{'10 in 50':>10}")
    for kind, built_as, build, per, p50, p95, recall, within in rows:
        print(f"{kind:<8}{built_as:<10}{build:>9.1f}{per:>11.0f}{p50:>9.2f}{p95:>9.2f}{recall:>11.3f}{within:>10.3f}")


if __name__ == "__main__":
    main()
