"""SQuAD 2.0 scoring, computed as the official evaluate-v2.0.py does (Rajpurkar et al. 2018):
answer normalisation, max over gold answers, an empty prediction means "no answer"."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (official)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def compute_exact(gold: str, prediction: str) -> int:
    return int(normalize_answer(gold) == normalize_answer(prediction))


def compute_f1(gold: str, prediction: str) -> float:
    return token_f1(collections.Counter(_tokens(prediction)), collections.Counter(_tokens(gold)))


def token_f1(prediction: collections.Counter[str], gold: collections.Counter[str]) -> float:
    """F1 of two bags of normalised tokens (official): if either is no-answer (empty), 1 if they
    agree, 0 otherwise. Bags, so that training can count each gold answer's tokens once."""
    if not prediction or not gold:
        return float(not prediction and not gold)
    same = sum((prediction & gold).values())
    if same == 0:
        return 0.0
    precision, recall = same / prediction.total(), same / gold.total()
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    question: str
    article: str  # title of the SQuAD article it belongs to (the unit of folds)
    answers: tuple[str, ...]  # gold texts; empty for an unanswerable question

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def gold_texts(answers: Sequence[Mapping]) -> tuple[str, ...]:
    """The official rule: gold answers that normalise to nothing are dropped; none left = ['']."""
    return tuple(a["text"] for a in answers if normalize_answer(a["text"]))


def score(questions: Sequence[Question], predictions: Mapping[str, str]) -> dict[str, float]:
    """exact, f1 (percent), total, and the HasAns_/NoAns_ splits, as the official script reports."""
    exact, f1 = {}, {}
    for q in questions:
        golds = list(q.answers) or [""]
        prediction = predictions.get(q.id, "")
        exact[q.id] = max(compute_exact(g, prediction) for g in golds)
        f1[q.id] = max(compute_f1(g, prediction) for g in golds)

    def mean(values: dict[str, float], ids: list[str]) -> float:
        return 100.0 * sum(values[i] for i in ids) / len(ids) if ids else 0.0

    all_ids = [q.id for q in questions]
    has = [q.id for q in questions if q.answerable]
    no = [q.id for q in questions if not q.answerable]
    out: dict[str, float] = {"exact": mean(exact, all_ids), "f1": mean(f1, all_ids), "total": len(all_ids)}
    if has:
        out |= {"HasAns_exact": mean(exact, has), "HasAns_f1": mean(f1, has), "HasAns_total": len(has)}
    if no:
        out |= {"NoAns_exact": mean(exact, no), "NoAns_f1": mean(f1, no), "NoAns_total": len(no)}
    return out
