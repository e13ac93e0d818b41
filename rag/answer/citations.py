"""Citations in an LLM's answer, checked by us: the answer cut into claims with the [n] markers
each carries (`rag.text.markers`), and each claim scored against the passages it cites.

The support score of a claim is a convex mix of
- embedding support: the best cosine between the claim and one sentence of a cited passage
  (the shared MiniLM embedder), and
- lexical support: the share of the claim's content words (Snowball-stemmed) found in the cited
  passages, so a fluent paraphrase that changes a name or a number loses support.
Weight and threshold are calibrated on SQuAD 2.0 dev-a by `rag train support`
(see `calibrate` below and rag/answer/support-calibration.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.embedding import Embedder
from rag.text.markers import LEADING_MARKERS, markers, strip_markers
from rag.text.sentences import split_sentences
from rag.text.terms import stems
from rag.types import Span

# Calibrated on dev-a (rag/answer/support-calibration.json): weight of embedding support vs lexical.
# Lexical support weighs more: a claim that swaps a name or a number stays close in embedding space.
EMBEDDING_WEIGHT = 0.25


@dataclass(frozen=True, slots=True)
class Claim:
    """One answer sentence: its text with markers, and the passages it cites."""

    text: str
    cites: tuple[int, ...]

    @property
    def bare(self) -> str:
        return strip_markers(self.text)


def claims(answer: str) -> list[Claim]:
    """The answer's sentences with the passages each cites. Markers that open a sentence belong to
    the one before it ("… in 2004. [2] The …" cites 2 for the first sentence)."""
    bounds: list[list[int]] = []
    for span in split_sentences(answer):
        start = span.start
        lead = LEADING_MARKERS.match(answer, span.start, span.end)
        if lead and bounds:
            bounds[-1][1] = start = lead.end()
        if answer[start : span.end].strip():
            bounds.append([start, span.end])
    out = []
    for start, end in bounds:
        text = answer[start:end].strip()
        out.append(Claim(text, tuple(dict.fromkeys(markers(text)))))  # cites in order, no repeats
    return out


def lexical_support(claim: str, evidence: str) -> float:
    """Share of the claim's content stems that the evidence holds; 1.0 for a claim without any."""
    wanted = stems(claim)
    if not wanted:
        return 1.0
    return len(wanted & stems(evidence)) / len(wanted)


@dataclass(frozen=True, slots=True)
class Support:
    score: float
    per_sentence: tuple[float, ...]  # support by each evidence sentence alone (picks the quote)


@dataclass
class SupportScorer:
    """Scores claims against evidence sentences with the shared embedder (one batch per answer)."""

    embedder: Embedder
    threshold: float
    embedding_weight: float = EMBEDDING_WEIGHT

    def score(self, items: Sequence[tuple[str, Sequence[str]]]) -> list[Support]:
        """For each (claim, evidence sentences): its support score and its best sentence."""
        texts: list[str] = []
        for claim, evidence in items:
            texts.append(claim)
            texts.extend(evidence)
        vectors = self.embedder.embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        out: list[Support] = []
        i = 0
        for claim, evidence in items:
            claim_vector, evidence_vectors = vectors[i], vectors[i + 1 : i + 1 + len(evidence)]
            i += 1 + len(evidence)
            if not evidence:
                out.append(Support(0.0, ()))
                continue
            cosines = np.clip(evidence_vectors @ claim_vector, 0.0, 1.0)
            per_sentence = [self._mix(float(c), lexical_support(claim, e)) for c, e in zip(cosines, evidence)]
            score = self._mix(float(cosines.max()), lexical_support(claim, " ".join(evidence)))
            out.append(Support(round(score, 4), tuple(per_sentence)))
        return out

    def _mix(self, cosine: float, lexical: float) -> float:
        return self.embedding_weight * cosine + (1 - self.embedding_weight) * lexical


def sentence_texts(text: str, base: int, spans: Sequence[Span]) -> list[str]:
    """The text of article `spans` inside a passage whose text starts at article offset `base`."""
    return [text[s.start - base : s.end - base] for s in spans]
