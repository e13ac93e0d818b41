"""Ingest a corpus with `rag ingest`, serve it with `rag serve`, and measure /ask over HTTP.

    .venv/bin/python bench/ask_latency.py [CORPUS] [--requests N] [--keep-index DIR]

Prints: ingest wall seconds and chunk count, re-ingest of the unchanged corpus, /ask p50/p95 at
1 and 8 concurrent clients, and the server's resident memory. Everything runs on 127.0.0.1 and
stops by itself.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RAG = str(Path(sys.executable).parent / "rag")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed_ingest(index: Path, corpus: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run([RAG, "--index-dir", str(index), "ingest", str(corpus)], check=False, capture_output=True,
                            text=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start, result.stdout.strip() or result.stderr.strip()[-300:]


def questions(index: Path, n: int) -> list[str]:
    """Questions built from the corpus's own headlines, so every one has a target article."""
    with sqlite3.connect(index / "docstore.sqlite") as db:
        titles = [r[0] for r in db.execute("SELECT title FROM articles ORDER BY id")]
    rng = random.Random(7)
    forms = ["What happened with {}?", "Why: {}?", "Who is behind {}?", "When did this happen: {}?"]
    return [rng.choice(forms).format(rng.choice(titles)) for _ in range(n)]


def measure(base: str, qs: list[str], clients: int) -> tuple[float, float]:
    def one(question: str) -> float:
        start = time.perf_counter()
        response = http.post(f"{base}/ask", json={"question": question})
        response.raise_for_status()
        return time.perf_counter() - start

    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        one(qs[0])  # warm-up
        with ThreadPoolExecutor(clients) as pool:
            times = sorted(pool.map(one, qs))
    return statistics.median(times) * 1000, times[int(0.95 * (len(times) - 1))] * 1000


def rss_mb(pid: int) -> tuple[float, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared" / "corpora" / "bbc"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--keep-index", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        index = args.keep_index or Path(tmp) / "index"
        ingest_s, report = timed_ingest(index, Path(args.corpus))
        reingest_s, rereport = timed_ingest(index, Path(args.corpus))
        with sqlite3.connect(index / "docstore.sqlite") as db:
            chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        port = free_port()
        server = subprocess.Popen([RAG, "--index-dir", str(index), "serve", "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{base}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
            qs = questions(index, args.requests)
            p50_1, p95_1 = measure(base, qs, 1)
            p50_8, p95_8 = measure(base, qs, 8)
            rss, peak = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
    rows = [
        ("corpus", args.corpus),
        ("ingest", f"{ingest_s:.1f} s  ({report})"),
        ("chunks", f"{chunks}"),
        ("re-ingest unchanged", f"{reingest_s:.1f} s  ({rereport})"),
        ("/ask 1 client", f"p50 {p50_1:.0f} ms  p95 {p95_1:.0f} ms  ({args.requests} requests)"),
        ("/ask 8 clients", f"p50 {p50_8:.0f} ms  p95 {p95_8:.0f} ms  ({args.requests} requests)"),
        ("server memory", f"RSS {rss:.0f} MB, peak {peak:.0f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
