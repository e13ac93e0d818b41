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
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RAG = str(Path(sys.executable).parent / "rag")
KEY = "load-bench-key-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def questions(index: Path, n: int) -> list[str]:
    with sqlite3.connect(index / "docstore.sqlite") as db:
        titles = [r[0] for r in db.execute("SELECT title FROM articles ORDER BY id")]
    rng = random.Random(7)
    forms = ["What happened with {}?", "Why: {}?", "Who is behind {}?", "When did this happen: {}?"]
    return [rng.choice(forms).format(rng.choice(titles)) for _ in range(n)]


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB, from /proc."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpora" / "bbc")
    parser.add_argument("--index", type=Path, help="An existing index to copy instead of ingesting --corpus")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAG_API_KEYS": json.dumps({KEY: ["read"]}),
            "RAG_RATE_LIMIT_PER_MIN": "0"}
    with tempfile.TemporaryDirectory(prefix="rag-load-") as tmp:
        index = Path(tmp) / "index"
        if args.index:
            copy_index(args.index, index)
            print(f"index: copy of {args.index}")
        else:
            start = time.perf_counter()
            subprocess.run([RAG, "--index-dir", str(index), "ingest", str(args.corpus)], check=True, env=env,
                           stdin=subprocess.DEVNULL)
            print(f"index: {args.corpus} ingested in {time.perf_counter() - start:.0f} s")
        with sqlite3.connect(index / "docstore.sqlite") as db:
            articles = db.execute("SELECT count(*) FROM articles").fetchone()[0]
            chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        print(f"        {articles} articles, {chunks} chunks")
        qs = questions(index, 5000)

        port = free_port()
        server = subprocess.Popen([RAG, "--index-dir", str(index), "serve", "--port", str(port)], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 600
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit("rag serve did not start")
                time.sleep(0.3)
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as warm:
                warm.post("/ask", json={"question": qs[0]}).raise_for_status()
            rss_idle, _ = rss_kib(server.pid)

            latencies: list[float] = []
            statuses: Counter[str] = Counter()
            lock = threading.Lock()
            stop = time.monotonic() + args.seconds

            def client(n: int) -> None:
                rng = random.Random(n)
                with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as http:
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

            began = time.perf_counter()
            threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - began
            rss_now, rss_peak = rss_kib(server.pid)
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    total = sum(statuses.values())
    errors = total - statuses["200"]
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(f"load:   {args.clients} clients for {wall:.0f} s, 3/4 /ask and 1/4 /search, with an API key")
    print(f"        {total} requests, {total / wall:.1f} requests/s, errors {errors} "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()) if k != '200') or 'none'})")
    if latencies:
        print(f"        latency p50 {p(0.50):.0f} ms, p95 {p(0.95):.0f} ms, max {latencies[-1] * 1000:.0f} ms, "
              f"mean {statistics.mean(latencies) * 1000:.0f} ms")
    print(f"server: RSS {rss_idle / 1024:.0f} MiB idle, {rss_now / 1024:.0f} MiB after the run, "
          f"peak {rss_peak / 1024:.0f} MiB; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
