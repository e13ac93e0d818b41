"""Our side's in-process figures, as bench/peer.py takes the peer's: a subprocess of bench/compare.py.

    python bench/ours.py INDEX_DIR QUESTIONS_JSON    # prints JSON

Chunks; the word pieces the model read: each distinct sentence text once (what ingest embeds:
sentences, deduplicated by content hash), through the bundled tokenizer, capped at the model's
window; and retrieval p50/p95 of `Service.search(q, top_k=5)`: hybrid BM25 + dense, fused, the
call /search and /ask make.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

from common import percentiles_ms, timed

from rag.config import Settings
from rag.embedding.model import bundled_model_path
from rag.service import build_service

TOP_K = 5


def main(index: str, questions_file: str) -> dict:
    from transformers import AutoTokenizer

    service = build_service(Settings(index_dir=Path(index)))
    try:
        questions = json.loads(Path(questions_file).read_text())
        p50, p95 = percentiles_ms(timed(lambda q: service.search(q, TOP_K), questions))
        window = service.embedder.max_tokens
        inner = service.indexer.embedder  # the encoder `auto` (or RAG_ENCODER) made: what ingest ran
        encoder = f"{type(inner).__name__} {getattr(inner, 'precision', '')}".strip()
    finally:
        service.close()
    # The tokenizer the bundled model uses, loaded on its own: the embedder's internals may change.
    tokenizer = AutoTokenizer.from_pretrained(str(bundled_model_path()))
    with sqlite3.connect(f"file:{Path(index) / 'docstore.sqlite'}?mode=ro", uri=True) as db:
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
        texts = list({h: t for h, t in db.execute(
            "SELECT s.text_hash, substr(a.text, s.start + 1, s.end - s.start) FROM sentences s "
            "JOIN articles a ON a.id = s.article_id")}.values())
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]] if texts else []
    return {
        "chunks": chunks,
        "sentences_embedded": len(texts),
        "word_pieces": sum(lengths),
        "tokens_embedded": sum(min(n, window) for n in lengths),
        "truncated_chunks": sum(n > window for n in lengths),
        "window": window,
        "retrieval_p50_ms": p50,
        "retrieval_p95_ms": p95,
        "encoder_ran": encoder,
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
