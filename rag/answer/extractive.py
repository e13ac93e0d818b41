"""The offline answerer: pick the sentence that best answers, cut the shortest span of the type the
question asks for, cite the sentence verbatim; abstain when the passages lack the question's key
terms or nothing in them is close enough to the question."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rag.answer.spans import candidate_spans, content_terms, key_terms, question_type, words
from rag.embedding import Embedder
from rag.types import Answer, Citation, Passage, Span


@dataclass(frozen=True, slots=True)
class Candidate:
    passage: Passage
    span: Span
    text: str
    rank: int  # of the passage in retrieval order


@dataclass(frozen=True, slots=True)
class Scored:
    candidate: Candidate
    score: float
    cosine: float
    overlap: float


@dataclass
class ExtractiveAnswerer:
    """Scores each sentence of the retrieved passages by embedding similarity to the question
    and IDF-weighted overlap of question terms, then extracts a typed span from the best one."""

    embedder: Embedder
    min_cosine: float = 0.30  # below this the best sentence is about something else
    min_overlap: float = 0.25  # share of the question's (IDF-weighted) terms the sentence holds
    backend: str = "extractive"

    def answer(self, question: str, passages: list[Passage]) -> Answer:
        if not passages:
            return self._abstain("No article in the index matches; nothing to answer from.")
        candidates = _sentences(passages)
        if not candidates:
            return self._abstain("The retrieved passages hold no sentences to answer from.")
        scored = self._score(question, candidates)
        best = scored[0]
        candidate = best.candidate
        citation = Citation(
            n=1, article_id=candidate.passage.article_id, title=candidate.passage.title,
            chunk_id=candidate.passage.chunk_id, quote=candidate.text, start=candidate.span.start,
            end=candidate.span.end, score=round(best.score, 4),
        )
        missing = self._missing_key_terms(question, candidate.passage)
        if missing:
            return self._abstain(
                f"The articles do not mention {', '.join(repr(m) for m in missing)} in connection with this; "
                f"the closest article is “{candidate.passage.title}”.", citation,
            )
        if best.cosine < self.min_cosine or best.overlap < self.min_overlap:
            return self._abstain(
                f"The articles do not appear to answer this; the closest article is “{candidate.passage.title}”.",
                citation,
            )
        span_text = self._span(question, candidate.text) or candidate.text
        return Answer(text=f"{span_text} [1]", abstained=False, backend=self.backend, citations=(citation,))

    def _score(self, question: str, candidates: list[Candidate]) -> list[Scored]:
        vectors = self.embedder.embed([question] + [c.text for c in candidates])
        cosines = vectors[1:] @ vectors[0]
        terms = content_terms(question)
        sentence_words = [set(words(c.text)) | set(words(c.passage.title)) for c in candidates]
        # IDF over the candidate sentences: a term every sentence shares says little.
        n = len(candidates)
        idf = {t: math.log(1 + n / (1 + sum(t in ws for ws in sentence_words))) for t in terms}
        total = sum(idf.values()) or 1.0
        out = []
        for candidate, cosine, ws in zip(candidates, cosines, sentence_words):
            overlap = sum(w for t, w in idf.items() if t in ws) / total
            prior = 0.05 / (1 + candidate.rank)  # retrieval already weighed the whole passage
            out.append(Scored(candidate, 0.6 * float(cosine) + 0.4 * overlap + prior, float(cosine), overlap))
        return sorted(out, key=lambda s: -s.score)

    @staticmethod
    def _missing_key_terms(question: str, passage: Passage) -> list[str]:
        haystack = f"{passage.title}\n{passage.text}".lower()
        return [t for t in key_terms(question) if not re.search(rf"(?<!\w){re.escape(t)}", haystack)]

    @staticmethod
    def _span(question: str, sentence: str) -> str | None:
        """The typed candidate nearest the question's words in the sentence, not itself made of them."""
        kind = question_type(question).kind
        asked = set(content_terms(question))
        anchors = [m.start() for m in re.finditer(r"[A-Za-z0-9]+", sentence) if m.group().lower() in asked]
        best: tuple[float, str] | None = None
        for start, end in candidate_spans(sentence, kind):
            text = sentence[start:end]
            span_words = words(text)
            if kind in ("number", "date"):  # "how many people" → "32,070 people": units may echo
                span_words = [w for w in span_words if any(ch.isdigit() for ch in w)] or span_words
            echoed = sum(w in asked for w in span_words) / max(1, len(span_words))
            if echoed == 1:
                continue  # the question's own words are not its answer
            # Near the question's words, and not repeating them (in characters, as distance is).
            cost = min((min(abs(a - start), abs(a - end)) for a in anchors), default=0) + 100 * echoed
            if best is None or cost < best[0]:
                best = (cost, text)
        return best[1] if best else None

    def _abstain(self, message: str, closest: Citation | None = None) -> Answer:
        return Answer(text=message, abstained=True, backend=self.backend, closest=closest)


def _sentences(passages: list[Passage]) -> list[Candidate]:
    """Every sentence of the passages once (chunks overlap), in retrieval order."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for rank, passage in enumerate(passages):
        for span in passage.sentences:
            key = (passage.article_id, span.start)
            if key in seen:
                continue
            seen.add(key)
            text = passage.quote(span)
            if len(text.split()) >= 3:
                out.append(Candidate(passage, span, text, rank))
    return out

