"""What the benches share: free ports, measured subprocesses, servers that stop by themselves,
latency runs, questions from the corpus's own headlines, and progress on stderr."""

from __future__ import annotations

import ctypes
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RAG = str(Path(sys.executable).parent / "rag")
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpora" / "bbc"
# Calls made before timing starts: the first requests to a fresh server ran up to 20x slower than
# the rest here (lazy loads, cold caches), and 3 were not enough to hide it.
WARMUP = 10


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no model hub, and none of the caller's RAG_ settings
    (a stray RAG_INDEX_DIR or RAG_LLM_BACKEND would measure something else)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env |= {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env |= {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)}
    return env | extra


def _die_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM if the bench dies, even by SIGKILL."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def terminate_on_sigterm() -> None:
    """A SIGTERM to the bench unwinds like Ctrl-C, so every `finally` stops its servers and
    removes its temp dirs."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)


@dataclass(frozen=True)
class Finished:
    wall_s: float
    peak_mb: float  # the child's own peak resident set (ru_maxrss from wait4), not the bench's
    returncode: int
    stdout: str
    stderr: str


def run_measured(cmd: Sequence[str], env: dict[str, str]) -> Finished:
    """Run a command to its end; wall seconds and the peak memory of that one child. wait4 gives the
    child's own rusage (getrusage(RUSAGE_CHILDREN) would be the maximum over every child so far)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                preexec_fn=_die_with_parent)  # noqa: PLW1509 (the bench spawns between its thread pools)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Finished(wall, usage.ru_maxrss / 1024, proc.returncode, out.read(), err.read())


def checked(result: Finished, what: str) -> Finished:
    if result.returncode != 0:
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return result


@dataclass(frozen=True)
class Server:
    base: str
    pid: int


@contextmanager
def serving(cmd: Sequence[str], port: int, env: dict[str, str], timeout: float = 600) -> Iterator[Server]:
    """Start a server on 127.0.0.1:`port`, wait for GET /health, and stop it on the way out
    (errors and Ctrl-C included). Its stderr goes to a temp file, shown if it fails to start."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=err, preexec_fn=_die_with_parent)  # noqa: PLW1509 (as above)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    err.seek(0)
                    raise SystemExit(f"{cmd[0]} did not start on port {port}:\n{err.read()[-2000:]}")
                time.sleep(0.2)
            yield Server(base, proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a live process in MB, from /proc: now, and its peak so far."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def timed(call: Callable[[str], object], items: Sequence[str], clients: int = 1, warmup: int = WARMUP) -> list[float]:
    """Seconds per call over items[warmup:], `clients` at a time, after calls on items[:warmup]
    that are not counted (other questions, so no cache of the answers flatters the figures)."""
    for item in items[:warmup]:
        call(item)

    def one(item: str) -> float:
        start = time.perf_counter()
        call(item)
        return time.perf_counter() - start

    if clients == 1:
        return [one(item) for item in items[warmup:]]
    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, items[warmup:]))


def http_timed(base: str, path: str, body: Callable[[str], dict], items: Sequence[str], clients: int,
               headers: dict[str, str] | None = None) -> list[float]:
    """POST `body(item)` to `path` for every item, `clients` at a time, over keep-alive connections."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with httpx.Client(base_url=base, timeout=120, limits=limits, headers=headers) as http:
        def call(item: str) -> None:
            http.post(path, json=body(item)).raise_for_status()
        return timed(call, items, clients)


def percentiles_ms(seconds: Sequence[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds; p95 by nearest rank."""
    ordered = sorted(seconds)
    p95 = ordered[max(0, -(-95 * len(ordered) // 100) - 1)]
    return statistics.median(ordered) * 1000, p95 * 1000


def questions(titles: Sequence[str], n: int, seed: int = 7) -> list[str]:
    """Questions made from the corpus's own headlines, so every one has a target article."""
    rng = random.Random(seed)
    forms = ["What happened with {}?", "Why: {}?", "Who is behind {}?", "When did this happen: {}?"]
    return [rng.choice(forms).format(rng.choice(titles)) for _ in range(n)]


def corpus_files(corpus: Path) -> list[Path]:
    """Every file under `corpus`, hidden ones aside, in a stable order."""
    return sorted(p for p in corpus.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(corpus).parts))


def corpus_titles(corpus: Path) -> list[str]:
    """First non-empty line of each file (BBC's headline), cut to 200 characters."""
    titles = []
    for path in corpus_files(corpus):
        with path.open(encoding="utf-8", errors="replace") as f:
            line = next((line.strip() for line in f if line.strip()), "")
        if line:
            titles.append(line[:200])
    return titles


def docstore_titles(index: Path) -> list[str]:
    with sqlite3.connect(index / "docstore.sqlite") as db:
        return [r[0] for r in db.execute("SELECT title FROM articles ORDER BY id")]
