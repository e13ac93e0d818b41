"""The docstore's cost: SQLite against PostgreSQL, same machine, same run, same articles and questions.

For each backend: `rag ingest` of the corpus's first N files (wall time), then `rag serve` and
`/ask` over HTTP at 1 and 8 clients (p50/p95), and `/search`. PostgreSQL is a real server started
from Debian's binaries on loopback (tests/support/postgres.py), with the service's own pool.

    python bench/docstore.py [--limit 400] [--requests 200] [CORPUS]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.support

from common import (
    DEFAULT_CORPUS,
    RAG,
    checked,
    corpus_files,
    corpus_titles,
    free_port,
    http_timed,
    log,
    offline_env,
    percentiles_ms,
    questions,
    run_measured,
    serving,
)

from tests.support.postgres import PostgresServer


def measure(name: str, env: dict[str, str], files: list[Path], asked: list[str]) -> dict[str, float]:
    log(f"{name}: ingest {len(files)} files")
    ingest = checked(run_measured([RAG, "ingest", *map(str, files)], env), f"{name} ingest")
    port = free_port()
    out = {"ingest s": ingest.wall_s}
    with serving([RAG, "serve", "--port", str(port)], port, env) as server:
        for path, body in (("/ask", lambda q: {"question": q}), ("/search", lambda q: {"query": q})):
            for clients in (1, 8):
                log(f"{name}: {path} at {clients} client(s)")
                p50, p95 = percentiles_ms(http_timed(server.base, path, body, asked, clients))
                out[f"{path} p50 ms ({clients})"] = p50
                out[f"{path} p95 ms ({clients})"] = p95
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=400, help="files ingested (default 400)")
    parser.add_argument("--requests", type=int, default=200, help="questions asked per measurement")
    args = parser.parse_args()
    files = corpus_files(args.corpus)[: args.limit]
    asked = questions(corpus_titles(args.corpus)[: args.limit], args.requests + 10)
    with tempfile.TemporaryDirectory() as work:
        sqlite = measure("SQLite", offline_env(RAG_INDEX_DIR=f"{work}/sqlite", RAG_RATE_LIMIT_PER_MIN="0"), files, asked)
        server = PostgresServer()
        try:
            server.start()
            url = server.create_database("bench")
            postgres = measure("PostgreSQL", offline_env(RAG_INDEX_DIR=f"{work}/pg", RAG_DOCSTORE_URL=url, RAG_RATE_LIMIT_PER_MIN="0"),
                               files, asked)
        finally:
            server.close()
    print(f"\n{len(files)} files of {args.corpus.name}, {args.requests} questions per line\n")
    print("| measure | SQLite | PostgreSQL | PostgreSQL / SQLite |")
    print("| --- | ---: | ---: | ---: |")
    for key in sqlite:
        print(f"| {key} | {sqlite[key]:.1f} | {postgres[key]:.1f} | {postgres[key] / sqlite[key]:.2f} |")


if __name__ == "__main__":
    main()
