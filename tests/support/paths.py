"""Where the tests' data is: the checkout's seeds, and the corpora and evaluation files in ../shared."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
BBC = SHARED / "corpora" / "bbc"
DEV_A = SHARED / "eval" / "squad2-dev-a.json"
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "000_2a7d998d117598b4.txt"
# The `rag` command of the environment running the tests.
RAG = str(Path(sys.executable).parent / "rag")

# A fixed BBC subset: the first files of each category, enough for retrieval to have distractors.
BBC_SUBSET = [BBC / cat / f"{n:03d}.txt" for cat in ("business", "entertainment", "politics", "sport", "tech")
              for n in range(1, 13)]
