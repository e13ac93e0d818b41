"""Where `rag ingest`'s seconds go: the real ingest path in-process, with a clock on each stage.

    python bench/ingest_profile.py [CORPUS] [--limit N] [--encoder onnx-bf16] [--json]

Stages: start-up (imports, model and export load, opening the store), reading files, chunking,
tokenising for the encoder, the encoder's forward passes, the SQLite writes (docstore put, the
vector-cache and content-hash look-ups), and publishing: BM25 build, FAISS add, writing the files.
The clocks wrap the stages' own methods (a bench, not a test: nothing here changes what they do);
what is left of the wall time is reported as "other" (the indexer's own bookkeeping).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

SECONDS: dict[str, float] = defaultdict(float)


def clocked(stage: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SECONDS[stage] += time.perf_counter() - started
    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=BENCH.parent.parent / "shared" / "corpora" / "bbc")
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--encoder", default=None, help="RAG_ENCODER for this run (default: the settings')")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    wall_started = time.perf_counter()
    from rag.config import Settings
    from rag.ingest import find_files, read_file
    from rag.service import build_service
    from rag.store.keywords import KeywordIndex
    from rag.store.vectors import VectorIndex

    with tempfile.TemporaryDirectory(prefix="rag-ingest-profile-") as tmp:
        overrides = {"index_dir": Path(tmp) / "index"}
        if args.encoder:
            overrides["encoder"] = args.encoder
        settings = Settings(**overrides)
        started = time.perf_counter()
        service = build_service(settings)
        SECONDS["start-up: model, export, store"] = time.perf_counter() - started
        SECONDS["start-up: imports"] = started - wall_started
        indexer, store = service.indexer, service.store
        embedder = indexer.embedder
        chunker_class = type(indexer.chunker)  # a frozen dataclass: clock the method on its class
        chunker_class.chunk = clocked("chunking", chunker_class.chunk)
        if hasattr(embedder, "run_batch"):  # the ONNX embedders: forward passes apart from tokenising
            embedder.run_batch = clocked("encoder forward passes", embedder.run_batch)
            embedder.token_ids = clocked("encoder tokenising", embedder.token_ids)
        embedder.embed = clocked("embed (total)", embedder.embed)
        docstore = store.docstore
        for name in ("put", "cached_vectors", "content_hashes"):
            setattr(docstore, name, clocked(f"SQLite {name}", getattr(docstore, name)))
        KeywordIndex.build = classmethod(clocked("BM25 build", KeywordIndex.build.__func__))
        KeywordIndex.save = clocked("BM25 save", KeywordIndex.save)
        VectorIndex.synced = clocked("FAISS add", VectorIndex.synced)
        VectorIndex.save = clocked("FAISS save", VectorIndex.save)
        store.publish = clocked("publish (total)", store.publish)

        files, _ = find_files([args.corpus])
        files = files[: args.limit] if args.limit else files

        def items():
            for path in files:
                started = time.perf_counter()
                batch = read_file(path, max_bytes=settings.max_article_bytes)
                SECONDS["reading files"] += time.perf_counter() - started
                yield from batch

        started = time.perf_counter()
        report = service.ingest(items())
        SECONDS["ingest call (total)"] = time.perf_counter() - started
        service.close()
    wall = time.perf_counter() - wall_started
    inner = ["reading files", "chunking", "embed (total)", "SQLite put", "SQLite cached_vectors",
             "SQLite content_hashes", "publish (total)"]
    SECONDS["other (indexer bookkeeping)"] = SECONDS["ingest call (total)"] - sum(SECONDS[k] for k in inner)
    out = {"wall_s": wall, "articles": len(report.ingested), "encoder": settings.encoder,
           "embedder": type(embedder).__name__, "load": os.getloadavg(), "stages_s": dict(SECONDS)}
    if args.json:
        print(json.dumps(out))
        return
    print(f"{out['articles']} articles, encoder {settings.encoder} ({out['embedder']}), wall {wall:.1f} s, "
          f"load {tuple(round(x, 1) for x in out['load'])}")
    for stage, seconds in sorted(SECONDS.items(), key=lambda kv: -kv[1]):
        print(f"  {stage:<36} {seconds:8.2f} s  {seconds / wall:6.1%}")


if __name__ == "__main__":
    main()
