"""Time offline briefings over about 100 and 1,000 articles of the BBC corpus.

    python bench/brief_time.py ../shared/corpora/bbc [INDEX_DIR]

Indexes the corpus (once; an existing INDEX_DIR is reused), then briefs on broad topics with
--max-articles 100 and 1000 and prints articles read, duplicates merged, points and seconds.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from rag.config import Settings
from rag.ingest import find_files, read_file
from rag.service import build_service

TOPICS = ["the economy", "the government and the election", "film, music and television", "the UK"]


def main() -> None:
    corpus = Path(sys.argv[1])
    index_dir = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(tempfile.mkdtemp(prefix="rag-brief-"))
    service = build_service(Settings(index_dir=index_dir))
    if service.store.docstore.counts()[0] == 0:
        files, _ = find_files([corpus])
        started = time.perf_counter()
        report = service.ingest(item for f in files for item in read_file(f, max_bytes=5_000_000))
        print(f"indexed {len(report.ingested)} articles in {time.perf_counter() - started:.0f} s")
    print(f"{'topic':<36} {'max':>5} {'matched':>8} {'read':>5} {'merged':>6} {'points':>6} {'seconds':>8}")
    for topic in TOPICS:
        for limit in (100, 1000):
            started = time.perf_counter()
            b = service.brief(topic, max_articles=limit)
            seconds = time.perf_counter() - started
            print(f"{topic:<36} {limit:>5} {b.articles_matched:>8} {b.articles_read:>5} "
                  f"{b.duplicates_merged:>6} {len(b.points):>6} {seconds:>8.1f}")
    service.close()


if __name__ == "__main__":
    main()
