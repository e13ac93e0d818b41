"""Long ingest runs are visible: progress lines without a terminal; /health tells stored articles
from searchable ones while a run is writing."""

from __future__ import annotations

import re
import shutil
import subprocess

from rag.api.app import create_app
from rag.config import Settings
from rag.ingest import read_file
from rag.ingest.progress import ProgressLines
from rag.service import build_service
from tests.support.paths import BBC_SUBSET, RAG
from tests.support.servers import live_server

LINE = re.compile(r"^ingest: (\d+) of (\d+) articles \((\d+)%\), ([\d.]+) articles/s(, about \S+ left)?$")


def test_ingest_prints_progress_lines_when_stderr_is_not_a_terminal(tmp_path):
    corpus = tmp_path / "corpus"
    for path in BBC_SUBSET:
        (corpus / path.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, corpus / path.parent.name / path.name)
    result = subprocess.run([RAG, "--index-dir", str(tmp_path / "index"), "ingest", "--progress-every", "0.2",
                             str(corpus)], check=False, capture_output=True, text=True, timeout=600,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("ingest:")]
    assert all(LINE.match(line) for line in lines), lines
    counts = [int(LINE.match(line).group(1)) for line in lines]
    assert len(lines) >= 2 and counts == sorted(counts)
    assert lines[-1].startswith(f"ingest: {len(BBC_SUBSET)} of {len(BBC_SUBSET)} articles (100%)")
    assert "\r" not in result.stderr  # lines, not a redrawn bar


def test_progress_line_counts_rate_and_time_left():
    now = [0.0]
    lines: list[str] = []
    progress = ProgressLines(10, lines.append, every=10, clock=lambda: now[0])
    progress.update(4)
    progress.grow(10)  # a file of records: 20 articles in all
    now[0] = 2.0
    assert progress.line() == "ingest: 4 of 20 articles (20%), 2.0 articles/s, about 8s left"


def test_health_tells_stored_from_searchable_while_an_ingest_writes(tmp_path, embedder):
    service = build_service(Settings(index_dir=tmp_path / "index", ingest_batch_size=1), embedder)
    first = [item for path in BBC_SUBSET[:2] for item in read_file(path, max_bytes=5_000_000)]
    service.ingest(first)
    seen: list[dict] = []
    try:
        with live_server(create_app(service.settings, service)) as http:
            def items():
                for n, path in enumerate(BBC_SUBSET[2:6]):
                    if n == 3:  # two batches of one article each are committed, not yet published
                        seen.append(http.get("/health").json())
                    yield from read_file(path, max_bytes=5_000_000)

            service.ingest(items())
            seen.append(http.get("/health").json())
    finally:
        service.close()
    during, after = seen
    assert during["articles"] >= 4 and during["articles_searchable"] == 2
    assert after["articles"] == after["articles_searchable"] == 6
