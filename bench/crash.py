"""Crash rounds beyond CI's three: `rag ingest` and `rag serve` (ingesting through POST /articles)
killed with SIGKILL at random moments while they ingest BBC articles; after every kill `rag check`
must pass and every acknowledged article must be stored exactly once; a final run completes.

    .venv/bin/python bench/crash.py [--rounds 10] [--per-category 60] [--seed 1]

The rounds are the test suite's own (tests/test_crash.py), with more of them on more files.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from tests.e2e.test_crash import CrashLog, bbc_files, cli_rounds, server_rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="kills per target (ingest, server)")
    parser.add_argument("--per-category", type=int, default=60, help="BBC files per category (5 categories)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay", type=float, default=8.0, help="longest wait after a commit before a kill (s)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    files = bbc_files(args.per_category)
    log = CrashLog()
    with tempfile.TemporaryDirectory(prefix="rag-crash-") as tmp:
        start = time.perf_counter()
        cli_rounds(files, Path(tmp) / "cli" / "index", args.rounds, rng, args.max_delay, log)
        server_rounds(files, Path(tmp) / "server" / "index", args.rounds, rng, args.max_delay / 2, log)
    print(f"{2 * args.rounds} kills over {len(files)} BBC files in {time.perf_counter() - start:.0f} s: "
          "every check passed, no acknowledged article lost or doubled, every rerun completed")


if __name__ == "__main__":
    main()
