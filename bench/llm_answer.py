"""What the LLM path costs and how fast it fails: citation-check latency per answer, and the time
to the extractive fallback for each failure, against the tests' scripted chat-completions peer.

    .venv/bin/python bench/llm_answer.py [--repeats N] [--timeout S]

Indexes seeds/ into a temporary folder; everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rag.answer.llm import build_prompt
from rag.config import Settings
from rag.ingest import read_file
from rag.service import build_service
from tests.support.llm_peers import ERROR_500, HANG, chat_peer
from tests.support.servers import free_port

QUESTION = "Which countries vetoed the UN cease-fire resolution?"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, chat_peer() as peer:
        settings = Settings(index_dir=Path(tmp) / "index", llm_backend="openai", llm_base_url=peer.base_url,
                            llm_timeout_s=args.timeout)
        svc = build_service(settings)
        svc.ingest(item for p in sorted((ROOT / "seeds").glob("*")) for item in read_file(p, max_bytes=5_000_000))
        passages = svc.search(QUESTION)
        prompt = build_prompt(QUESTION, passages, settings.llm_context_tokens)
        n = next(p.n for p in prompt.passages if "vetoed" in p.passage.text)
        reply = (f"Russia and China vetoed the UN cease-fire resolution [{n}]. "
                 f"The resolution called for an immediate and sustained cease-fire [{n}].")
        fallback = svc.answerer._fallbacks.submit(svc.answerer.fallback.answer, QUESTION, passages)
        fallback.result()
        svc.answerer._check(prompt, reply, fallback)  # warm-up
        checks = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            svc.answerer._check(prompt, reply, fallback)
            checks.append(time.perf_counter() - start)
        print(f"citation check, 2 sentences vs {len(prompt.passages)} passages: "
              f"p50 {1000 * statistics.median(checks):.1f} ms, max {1000 * max(checks):.1f} ms")

        for name, script, base_url in [("valid answer", reply, None), ("HTTP 500", ERROR_500, None),
                                       ("NOT_IN_ARTICLES", "NOT_IN_ARTICLES", None),
                                       ("empty reply", "", None), ("unsupported claim", "Brazil won [1].", None),
                                       (f"hang ({args.timeout:g} s timeout)", HANG, None),
                                       ("server down", "", f"http://127.0.0.1:{free_port()}/v1")]:
            peer.say(script)
            target = svc
            if base_url:
                target = build_service(settings.model_copy(update={"llm_base_url": base_url}), svc.indexer.embedder)
            start = time.perf_counter()
            answer = target.ask(QUESTION)
            took = time.perf_counter() - start
            print(f"{name:<26} {took:6.2f} s  backend={answer.backend:<10} abstained={answer.abstained!s:<5} "
                  f"reason={answer.fallback_reason}")
            if target is not svc:
                target.close()
        svc.close()


if __name__ == "__main__":
    main()
