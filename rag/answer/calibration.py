"""Calibration of the citation support check on a SQuAD 2.0 file (`rag train support`).

Claims: for every answerable question, the statement "question + answer" (what an LLM sentence
answering it asserts). Each is scored against
- its own paragraph (positive: the paragraph supports it), and
- another paragraph of the same article that does not contain the answer (negative: same topic,
  same names, but not the fact) — the hard case for a support check.
For each embedding weight on a grid, the threshold with the best F1 is found; the best pair wins.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.answer.citations import lexical_support
from rag.embedding import Embedder
from rag.text.sentences import split_sentences

CALIBRATION_FILE = Path(__file__).with_name("support-calibration.json")
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 1.0, 0.01))


@dataclass(frozen=True, slots=True)
class Pair:
    claim: int  # index of the claim
    paragraph: int  # index of the paragraph
    supported: bool


def calibration_pairs(squad: dict) -> tuple[list[str], list[str], list[Pair]]:
    """Claims, paragraphs and the (claim, paragraph, supported) pairs of a SQuAD 2.0 file."""
    claims: list[str] = []
    paragraphs: list[str] = []
    pairs: list[Pair] = []
    for article in squad["data"]:
        first = len(paragraphs)
        contexts = [p["context"] for p in article["paragraphs"]]
        paragraphs.extend(contexts)
        for i, paragraph in enumerate(article["paragraphs"]):
            for qa in paragraph["qas"]:
                if qa.get("is_impossible") or not qa["answers"]:
                    continue
                answer = qa["answers"][0]["text"]
                claims.append(f"{qa['question']} {answer}")
                pairs.append(Pair(len(claims) - 1, first + i, True))
                # The next paragraph (cyclically) that lacks the answer: deterministic, same article.
                for step in range(1, len(contexts)):
                    j = (i + step) % len(contexts)
                    if answer.lower() not in contexts[j].lower():
                        pairs.append(Pair(len(claims) - 1, first + j, False))
                        break
    return claims, paragraphs, pairs


def calibrate(embedder: Embedder, file: Path) -> dict:
    """The weight and threshold with the best F1, and the figures behind the choice."""
    raw = file.read_bytes()
    claims, paragraphs, pairs = calibration_pairs(json.loads(raw))
    sentences = [[p[s.start : s.end] for s in split_sentences(p)] for p in paragraphs]
    flat = [s for ss in sentences for s in ss]
    claim_vectors = embedder.embed(claims)
    sentence_vectors = embedder.embed(flat)
    bounds = np.cumsum([0] + [len(ss) for ss in sentences])
    cosine = np.array([
        float(np.clip(sentence_vectors[bounds[p.paragraph] : bounds[p.paragraph + 1]] @ claim_vectors[p.claim],
                      0, 1).max(initial=0.0))
        for p in pairs])
    lexical = np.array([lexical_support(claims[p.claim], paragraphs[p.paragraph]) for p in pairs])
    truth = np.array([p.supported for p in pairs])

    def figures(weight: float, threshold: float) -> dict:
        predicted = weight * cosine + (1 - weight) * lexical >= threshold
        tp = int((predicted & truth).sum())
        precision = tp / max(1, int(predicted.sum()))
        recall = tp / max(1, int(truth.sum()))
        f1 = 2 * precision * recall / max(1e-9, precision + recall)
        return {"weight": weight, "threshold": threshold, "precision": round(precision, 4),
                "recall": round(recall, 4), "f1": round(f1, 4)}

    per_weight = [max((figures(w, t) for t in THRESHOLDS), key=lambda f: f["f1"]) for w in WEIGHTS]
    best = max(per_weight, key=lambda f: f["f1"])
    return {
        "embedding_weight": best["weight"],
        "threshold": best["threshold"],
        "at_threshold": best,
        "best_per_weight": per_weight,
        "data": {"file": file.name, "sha256": hashlib.sha256(raw).hexdigest(),
                 "claims": len(claims), "pairs": len(pairs), "supported_pairs": int(truth.sum())},
        "how": __doc__.strip().split("\n\n", 1)[1].replace("\n", " "),
    }
