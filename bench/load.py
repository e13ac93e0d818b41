"""Load run: 8 concurrent clients asking `rag serve` (with API keys) over the BBC index.

    .venv/bin/python bench/load.py [--corpus ../shared/corpora/bbc | --index DIR] [--clients 8] [--seconds 60]

Builds the index with `rag ingest` (or works on a copy of `--index DIR`, which is never written),
serves it on 127.0.0.1 with a key, then runs the clients for `--seconds`: each sends /ask (and
every fourth request /search) with questions made from the corpus's own headlines. Prints
requests/s, p50/p95/max latency, errors by status, and the server's resident memory (now and
peak). Everything stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from common import (
    DEFAULT_CORPUS,
    RAG,
    docstore_titles,
    free_port,
    log,
    offline_env,
    percentiles_ms,
    questions,
    rss_mb,
    serving,
    terminate_on_sigterm,
)

KEY = "load-bench-key-0123456789abcdef"


def copy_index(source: Path, target: Path) -> None:
    """A consistent copy: SQLite's backup API for the docstore (it may be in WAL mode), files for the rest."""
    target.mkdir(parents=True)
    src = sqlite3.connect(f"file:{source / 'docstore.sqlite'}?mode=ro", uri=True)
    dst = sqlite3.connect(target / "docstore.sqlite")
    src.backup(dst)
    src.close()
    dst.close()
    if (source / "manifest.json").exists():
        shutil.copy(source / "manifest.json", target / "manifest.json")
        shutil.copytree(source / "derived", target / "derived")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--index", type=Path, help="An existing index to copy instead of ingesting --corpus")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    terminate_on_sigterm()

    env = offline_env(RAG_API_KEYS=json.dumps({KEY: ["read"]}), RAG_RATE_LIMIT_PER_MIN="0")
    auth = {"Authorization": f"Bearer {KEY}"}
    with tempfile.TemporaryDirectory(prefix="rag-load-") as tmp:
        index = Path(tmp) / "index"
        if args.index:
            copy_index(args.index, index)
            print(f"index: copy of {args.index}")
        else:
            start = time.perf_counter()
            log(f"rag ingest {args.corpus}")
            subprocess.run([RAG, "--index-dir", str(index), "ingest", str(args.corpus)], check=True, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
            print(f"index: {args.corpus} ingested in {time.perf_counter() - start:.0f} s")
        with sqlite3.connect(index / "docstore.sqlite") as db:
            articles = db.execute("SELECT count(*) FROM articles").fetchone()[0]
            chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        print(f"        {articles} articles, {chunks} chunks")
        qs = questions(docstore_titles(index), 5000)

        port = free_port()
        with serving([RAG, "--index-dir", str(index), "serve", "--port", str(port)], port, env) as server:
            with httpx.Client(base_url=server.base, headers=auth, timeout=30) as warm:
                warm.post("/ask", json={"question": qs[0]}).raise_for_status()
            rss_idle, _ = rss_mb(server.pid)

            latencies: list[float] = []
            statuses: Counter[str] = Counter()
            lock = threading.Lock()
            stop = time.monotonic() + args.seconds

            def client(n: int) -> None:
                rng = random.Random(n)
                with httpx.Client(base_url=server.base, headers=auth, timeout=120) as http:
                    i = 0
                    while time.monotonic() < stop:
                        question = rng.choice(qs)
                        begin = time.perf_counter()
                        try:
                            if i % 4 == 3:
                                status = str(http.post("/search", json={"query": question}).status_code)
                            else:
                                status = str(http.post("/ask", json={"question": question}).status_code)
                        except httpx.HTTPError as error:
                            status = type(error).__name__
                        elapsed = time.perf_counter() - begin
                        with lock:
                            statuses[status] += 1
                            if status == "200":
                                latencies.append(elapsed)
                        i += 1

            log(f"{args.clients} clients for {args.seconds:.0f} s")
            began = time.perf_counter()
            threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
            rss_now, rss_peak = rss_mb(server.pid)

    total = sum(statuses.values())
    errors = total - statuses["200"]
    print(f"load:   {args.clients} clients for {wall:.0f} s, 3/4 /ask and 1/4 /search, with an API key")
    print(f"        {total} requests, {total / wall:.1f} requests/s, errors {errors} "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()) if k != '200') or 'none'})")
    if latencies:
        p50, p95 = percentiles_ms(latencies)
        print(f"        latency p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(latencies) * 1000:.0f} ms, "
              f"mean {statistics.mean(latencies) * 1000:.0f} ms")
    print(f"server: RSS {rss_idle:.0f} MiB idle, {rss_now:.0f} MiB after the run, "
          f"peak {rss_peak:.0f} MiB; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
