"""Crash safety: `rag ingest` and `rag serve` (ingesting through POST /articles) killed with
SIGKILL at random moments while they ingest BBC articles. After every kill `rag check` passes
(docstore, FAISS and BM25 hold the same chunk ids), every acknowledged article is there exactly
once, and running again completes the rest. Also: index files that are corrupt, truncated or
from another index are detected at load, reported by /health, rebuilt — never used.

CI runs 3 rounds of each on a BBC subset; `bench/crash.py` runs more on the whole corpus.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from rag.api.app import create_app
from rag.config import Settings
from rag.service import build_service
from tests.support.paths import BBC, RAG
from tests.support.servers import free_port, live_server

KEY = "crash-test-key-0123456789abcdef"
ROUNDS = int(os.environ.get("RAG_TEST_CRASH_ROUNDS", "3"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    # Small batches: many commits, so kills land before, during and after them.
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAG_INGEST_BATCH_SIZE": "8",
                  "RAG_API_KEYS": json.dumps({KEY: ["admin"]})}


def bbc_files(per_category: int) -> list[Path]:
    return [BBC / cat / f"{n:03d}.txt" for cat in ("business", "entertainment", "politics", "sport", "tech")
            for n in range(1, per_category + 1)]


def rag_check(index: Path) -> str:
    """`rag check`'s output; fails the test (naming every problem) unless it exits 0."""
    result = subprocess.run([RAG, "--index-dir", str(index), "check"], check=False, capture_output=True, text=True,
                            timeout=300, stdin=subprocess.DEVNULL, env=_env())
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def stored_ids(index: Path) -> list[str]:
    with sqlite3.connect(index / "docstore.sqlite") as db:
        return [row[0] for row in db.execute("SELECT id FROM articles")]


def generation(index: Path) -> int:
    try:  # read-only: never create the file before the process under test does
        db = sqlite3.connect(f"file:{index / 'docstore.sqlite'}?mode=ro", uri=True, timeout=30)
        try:
            row = db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        finally:
            db.close()
    except sqlite3.OperationalError:  # not created yet
        return -1
    return int(row[0]) if row else -1


def wait_for_progress(index: Path, since: int, ended) -> None:
    """Until the docstore has moved past generation `since` (a commit in this run) or `ended()`:
    so that the random kill that follows lands among the writes, not in start-up."""
    deadline = time.monotonic() + 600
    while generation(index) <= since and not ended():
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)


@dataclass
class CrashLog:
    rounds: list[str] = field(default_factory=list)

    def note(self, line: str) -> None:
        self.rounds.append(line)
        print(line)


def cli_rounds(files: list[Path], index: Path, rounds: int, rng: random.Random, max_delay: float,
               log: CrashLog) -> None:
    """`rag ingest` killed `rounds` times at random moments, checked after each kill, then run to
    the end: every file's article is stored once."""
    folder = index.parent / "corpus"
    for file in files:  # a folder of its own, in the BBC layout, so one command ingests it
        target = folder / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
    killed = 0
    for n in range(1, rounds + 1):
        start = generation(index)
        process = subprocess.Popen([RAG, "--index-dir", str(index), "ingest", str(folder)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                   env=_env())
        wait_for_progress(index, start, lambda p=process: p.poll() is not None)
        delay = rng.uniform(0, max_delay)
        try:
            process.wait(timeout=delay)
            outcome = f"finished first (exit {process.returncode})"
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed += 1
            outcome = "killed"
        report = rag_check(index)
        ids = stored_ids(index)
        assert len(ids) == len(set(ids)) <= len(files)
        log.note(f"ingest round {n}: {outcome} {delay:.1f} s after a commit; {len(ids)}/{len(files)} stored; "
                 f"check: {report.strip().splitlines()[-2]}")
    result = subprocess.run([RAG, "--index-dir", str(index), "ingest", str(folder)], check=False, capture_output=True,
                            text=True, timeout=1800, stdin=subprocess.DEVNULL, env=_env())
    assert result.returncode == 0, result.stderr[-2000:]
    ids = stored_ids(index)
    log.note(f"ingest rerun: {result.stdout.strip()}; {len(ids)} articles; {killed} of {rounds} rounds killed")
    assert sorted(ids) == sorted(set(ids)) and len(ids) == len(files)
    rag_check(index)


def _records(files: list[Path]) -> list[dict]:
    from rag.ingest import read_file

    records = []
    for file in files:
        [article] = read_file(file, max_bytes=5_000_000)
        records.append({"id": article.id, "title": article.title, "text": article.text, "category": article.category})
    return records


def _start_server(index: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([RAG, "--index-dir", str(index), "serve", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                               env=_env())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        assert process.poll() is None, "rag serve exited"
        assert time.monotonic() < deadline, "rag serve did not start"
        time.sleep(0.2)


def server_rounds(files: list[Path], index: Path, rounds: int, rng: random.Random, max_delay: float,
                  log: CrashLog) -> None:
    """`rag serve` taking articles through POST /articles (a few per request), killed `rounds`
    times; every article acknowledged (200) before a kill is stored after it, exactly once."""
    records = _records(files)
    acknowledged: set[str] = set()
    position = 0  # the first record not yet acknowledged
    for n in range(1, rounds + 2):
        final = n == rounds + 1
        process, base = _start_server(index)
        stop = threading.Event()

        def post_batches(base: str = base, stop: threading.Event = stop) -> None:
            nonlocal position
            with httpx.Client(base_url=base, timeout=120, headers={"X-API-Key": KEY}) as http:
                while position < len(records) and not stop.is_set():
                    batch = records[position : position + 4]
                    try:
                        response = http.post("/articles", json=batch)
                    except httpx.TransportError:
                        return  # the server died: this batch is not acknowledged
                    assert response.status_code == 200, response.text
                    body = response.json()
                    assert not body["failed"], body
                    acknowledged.update(body["ingested"] + body["unchanged"])
                    position += len(batch)

        client = threading.Thread(target=post_batches)
        start = generation(index)
        client.start()
        wait_for_progress(index, start, lambda c=client: not c.is_alive())
        delay = rng.uniform(0, max_delay)
        client.join(timeout=None if final else delay)
        if final:
            outcome = "ran to the end"
        elif client.is_alive():
            outcome = "killed"
        else:
            outcome = "finished first"
        process.send_signal(signal.SIGKILL)
        process.wait()
        stop.set()
        client.join()
        report = rag_check(index)
        ids = stored_ids(index)
        assert len(ids) == len(set(ids))
        lost = acknowledged - set(ids)
        assert not lost, f"acknowledged but lost: {sorted(lost)[:10]}"
        log.note(f"server round {n}: {outcome} {delay:.1f} s after a commit; {len(acknowledged)} acknowledged, "
                 f"{len(ids)}/{len(records)} stored; check: {report.strip().splitlines()[-2]}")
    assert sorted(stored_ids(index)) == sorted(r["id"] for r in records)


@pytest.mark.slow
def test_killed_ingest_runs_leave_a_consistent_index_and_a_rerun_completes(tmp_path):
    cli_rounds(bbc_files(16), tmp_path / "index", ROUNDS, random.Random(11), 6.0, CrashLog())


@pytest.mark.slow
def test_killed_server_loses_no_acknowledged_article(tmp_path):
    server_rounds(bbc_files(8), tmp_path / "index", ROUNDS, random.Random(12), 3.0, CrashLog())


# -- damaged index files ------------------------------------------------------------------------

def _current(index: Path) -> Path:
    return index / json.loads((index / "manifest.json").read_text())["folder"]


def _damage_truncate(index: Path) -> None:
    vectors = _current(index) / "vectors.faiss"
    vectors.write_bytes(vectors.read_bytes()[: vectors.stat().st_size // 2])


def _damage_flip(index: Path) -> None:
    bm25 = next(p for p in sorted((_current(index) / "bm25").iterdir()) if p.is_file())
    data = bytearray(bm25.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bm25.write_bytes(bytes(data))


def _damage_swap(index: Path, other: Path) -> None:
    """Another index's derived files and manifest, relabelled as this docstore's generation:
    every checksum matches, only the ids betray it."""
    generation = json.loads((index / "manifest.json").read_text())["generation"]
    shutil.rmtree(index / "derived")
    shutil.copytree(other / "derived", index / "derived")
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["generation"] = generation
    (index / "manifest.json").write_text(json.dumps(manifest))


def _damage_manifest(index: Path) -> None:
    (index / "manifest.json").write_text('{"generation": 3, "embedd')


@pytest.mark.parametrize("damage", ["truncate", "flip", "swap", "manifest"])
def test_damaged_index_files_are_reported_by_health_rebuilt_and_never_used(bbc_index_dir, tmp_path, embedder,
                                                                          damage):
    index = tmp_path / "index"
    shutil.copytree(bbc_index_dir, index)
    if damage == "swap":
        other = tmp_path / "other"
        small = build_service(Settings(index_dir=other), embedder)
        small.ingest([a for f in bbc_files(1) for a in _articles(f)])
        small.close()
        _damage_swap(index, other)
    else:
        {"truncate": _damage_truncate, "flip": _damage_flip, "manifest": _damage_manifest}[damage](index)
    service = build_service(Settings(index_dir=index), embedder)
    try:
        assert service.store.check().ok
        with live_server(create_app(service.settings, service)) as http:
            health = http.get("/health").json()
            assert health["status"] == "degraded" and health["articles"] == 61
            assert "rebuilt from the docstore" in health["index_problem"]
            answer = http.post("/ask", json={"question": "Where will Labour hold its 2006 autumn conference?"}).json()
            assert "Manchester" in answer["answer"]
    finally:
        service.close()
    # The rebuilt index was persisted: the next start loads it cleanly, and `rag check` agrees.
    again = build_service(Settings(index_dir=index), embedder)
    try:
        assert again.store.load_problem is None and again.health()["status"] == "ok"
    finally:
        again.close()
    assert "articles 61," in rag_check(index)


def _articles(path: Path) -> list:
    from rag.ingest import read_file

    return read_file(path, max_bytes=5_000_000)


def test_check_exits_non_zero_on_a_disagreement(bbc_index_dir, tmp_path):
    """A chunk row removed behind the store's back, the generation unchanged: the load notices
    the indexes no longer match and rebuilds them, and `rag check` still names the hole in the
    article's chunks and exits 1."""
    index = tmp_path / "index"
    shutil.copytree(bbc_index_dir, index)
    with sqlite3.connect(index / "docstore.sqlite") as db:
        db.execute("DELETE FROM chunks WHERE n = 1 AND article_id = (SELECT article_id FROM chunks WHERE n = 2 LIMIT 1)")
    result = subprocess.run([RAG, "--index-dir", str(index), "check"], check=False, capture_output=True, text=True,
                            timeout=300, stdin=subprocess.DEVNULL, env=_env())
    assert result.returncode == 1
    assert "articles 61," in result.stdout
    assert "note: persisted index not used" in result.stdout
    assert "problem: 1 articles have chunks numbered with gaps or repeats" in result.stderr
