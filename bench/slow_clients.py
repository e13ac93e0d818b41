"""Slow clients against `rag serve`: an authorised client's latency on an idle server, then while
N sockets send request headers and trickle their bodies one byte a second (slowloris).

    .venv/bin/python bench/slow_clients.py [--corpus seeds | --index DIR] [--tricklers 32]
        [--requests 200] [--open] [--interval 1.0]

With keys (the default) the tricklers send none, as an attacker would, and connect from 127.0.0.2
(the authorised client from 127.0.0.1); with `--open` the server
has no keys (loopback serving) and the tricklers are just slow. A trickler cut off by the server
reconnects after `--interval`, so the attack lasts as long as the measurement. Server settings are
the defaults (32 concurrency slots, 60 s request timeout), unless RAG_* variables say otherwise.
Prints the idle p50/p95, the p50/p95 under attack, their ratio, the authorised client's statuses,
and what the tricklers got. Everything stops by itself.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from common import (
    RAG,
    ROOT,
    docstore_titles,
    free_port,
    log,
    offline_env,
    percentiles_ms,
    questions,
    serving,
    terminate_on_sigterm,
)

KEY = "slow-bench-key-0123456789abcdef"
BODY_BYTES = 10_000  # what a trickler declares: at one byte a second it never finishes
# The tricklers connect from another loopback address than the authorised client, as an attacker
# elsewhere would: the server's budget of failed authentications is per client address.
ATTACKER = "127.0.0.2"


def trickle(port: int, interval: float, stop: threading.Event, statuses: Counter, lock: threading.Lock) -> None:
    """Connect, send headers without a key, then one body byte every `interval` until the server
    closes the connection; note the status it answered; reconnect after `interval`."""
    head = (f"POST /ask HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {BODY_BYTES}\r\n\r\n").encode()
    while not stop.is_set():
        response = b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(ATTACKER, 0)) as sock:
                sock.sendall(head)
                while not stop.is_set():
                    if select.select([sock], [], [], interval)[0]:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        response += chunk
                    else:
                        sock.sendall(b" ")
        except OSError:
            pass
        status = response.split(b"\r\n", 1)[0].split()[1:2]
        with lock:
            statuses[status[0].decode() if status else ("open at the end" if stop.is_set() else "closed, no answer")] += 1
        stop.wait(interval)


def measure(base: str, headers: dict[str, str], qs: list[str]) -> tuple[list[float], Counter]:
    """Sequential /search requests; seconds of each 200, and every status."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        for q in qs:
            begin = time.perf_counter()
            try:
                status = str(http.post("/search", json={"query": q}).status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            statuses[status] += 1
            if status == "200":
                latencies.append(time.perf_counter() - begin)
    return latencies, statuses


def summary(latencies: list[float]) -> str:
    if not latencies:
        return "no request served"
    p50, p95 = percentiles_ms(latencies)
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=ROOT / "seeds")
    parser.add_argument("--index", type=Path, help="An existing index to serve (never written)")
    parser.add_argument("--tricklers", type=int, default=32)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--interval", type=float, default=1.0, help="Seconds between a trickler's bytes")
    parser.add_argument("--open", action="store_true", help="Serve without keys (tricklers need none)")
    args = parser.parse_args()
    terminate_on_sigterm()

    extra = {} if args.open else {"RAG_API_KEYS": json.dumps({KEY: ["read"]})}
    env = offline_env(RAG_RATE_LIMIT_PER_MIN="0", **extra)
    auth = {} if args.open else {"Authorization": f"Bearer {KEY}"}
    with tempfile.TemporaryDirectory(prefix="rag-slow-") as tmp:
        index = args.index
        if index is None:
            index = Path(tmp) / "index"
            log(f"rag ingest {args.corpus}")
            subprocess.run([RAG, "--index-dir", str(index), "ingest", str(args.corpus)], check=False, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        qs = questions(docstore_titles(index), 2 * args.requests + 20)
        port = free_port()
        with serving([RAG, "--index-dir", str(index), "serve", "--port", str(port)], port, env) as server:
            measure(server.base, auth, qs[:20])  # warm-up, not counted
            log(f"idle: {args.requests} requests")
            idle, idle_statuses = measure(server.base, auth, qs[20:20 + args.requests])

            stop = threading.Event()
            trickled: Counter = Counter()
            lock = threading.Lock()
            threads = [threading.Thread(target=trickle, args=(port, args.interval, stop, trickled, lock), daemon=True)
                       for _ in range(args.tricklers)]
            for thread in threads:
                thread.start()
            time.sleep(2 * args.interval)  # every trickler connected and sending
            log(f"under attack by {args.tricklers} tricklers: {args.requests} requests")
            began = time.perf_counter()
            attacked, attacked_statuses = measure(server.base, auth, qs[20 + args.requests:])
            wall = time.perf_counter() - began
            stop.set()
            for thread in threads:
                thread.join(timeout=30)

    mode = "no keys (loopback)" if args.open else "keys configured, tricklers keyless"
    print(f"slow clients: {mode}; {args.tricklers} tricklers at 1 byte / {args.interval:g} s; "
          f"{args.requests} sequential /search requests per phase")
    print(f"  idle:         {summary(idle)}; statuses {dict(idle_statuses)}")
    print(f"  under attack: {summary(attacked)}; statuses {dict(attacked_statuses)} ({wall:.1f} s)")
    if idle and attacked:
        ratio = percentiles_ms(attacked)[0] / percentiles_ms(idle)[0]
        print(f"  p50 ratio attack/idle: {ratio:.2f}")
    print(f"  tricklers' connections: {sum(trickled.values())}, by outcome {dict(trickled)}")


if __name__ == "__main__":
    main()
