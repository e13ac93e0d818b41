"""Training the learned answerer on SQuAD 2.0 questions, and article-level cross-validation.

Gold answers are read here, to make labels, and nowhere on the answering path."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag.answer.extractive import features as F
from rag.answer.extractive.answerer import ExtractiveAnswerer, Prepared
from rag.answer.extractive.model import AnswererModel, fit_grouped_softmax, fit_logistic
from rag.answer.extractive.questions import QuestionInfo
from rag.eval.squad import Question, normalize_answer, token_f1

MAX_GOLD_SENTENCES = 2  # span training groups per question: the gold sentences retrieval ranks first


@dataclass(frozen=True, slots=True)
class Example:
    question: Question
    prepared: Prepared


def collect(search: Callable[[str], list], answerer: ExtractiveAnswerer, questions: Sequence[Question],
            progress: Callable[[int], None] = lambda n: None) -> list[Example]:
    """Retrieve (as `ask` does) and compute the sentence features of every question, once."""
    out = []
    for q in questions:
        text = q.question.strip()  # as `Service.ask` strips it
        out.append(Example(q, answerer.prepare(text, search(text))))
        progress(1)
    return out


def _contains(text: str, golds: Sequence[str]) -> bool:
    haystack = normalize_answer(text)
    return any(normalize_answer(g) in haystack for g in golds)


def answer_f1(prediction: str | None, golds: Sequence[str]) -> float:
    """SQuAD F1 of a prediction against the best of its gold answers (0 for no prediction)."""
    tokens = Counter(normalize_answer(prediction or "").split())
    return max((token_f1(tokens, Counter(normalize_answer(g).split())) for g in golds), default=0.0)


def _fit_sentence(examples: Sequence[Example]):
    xs, groups, targets = [], [], []
    for g, ex in enumerate(examples):
        if not ex.question.answerable or not ex.prepared.sentences:
            continue
        hit = np.array([_contains(s.text, ex.question.answers) for s in ex.prepared.sentences], dtype=float)
        if not hit.any():
            continue  # retrieval missed: nothing to learn about sentence choice here
        xs.append(ex.prepared.x)
        groups.append(np.full(len(hit), g))
        targets.append(hit / hit.sum())
    return fit_grouped_softmax(F.SENTENCE_FEATURES, np.vstack(xs), np.concatenate(groups), np.concatenate(targets))


class SpanCache:
    """`F.span_candidates` memoised for one training or cross-validation run: the same gold and
    chosen sentences are featurised again for every fold and every cross-fitting half."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple] = {}

    def __call__(self, question: QuestionInfo, sentence: str) -> tuple:
        key = (question.text, sentence)
        if key not in self._cache:
            self._cache[key] = F.span_candidates(question, sentence)
        return self._cache[key]


def _fit_span(examples: Sequence[Example], spans_of: SpanCache):
    xs, groups, targets = [], [], []
    g = 0
    for ex in examples:
        if not ex.question.answerable:
            continue
        golds = [Counter(normalize_answer(a).split()) for a in ex.question.answers]
        gold_sentences = [s for s in ex.prepared.sentences if _contains(s.text, ex.question.answers)]
        for sentence in gold_sentences[:MAX_GOLD_SENTENCES]:
            spans, x = spans_of(ex.prepared.question, sentence.text)
            if not spans:
                continue
            f1 = np.array([max(token_f1(Counter(normalize_answer(s.text).split()), g) for g in golds)
                           for s in spans])
            if f1.max() <= 0:
                continue
            # The exact answers if any are candidates, else the best partial ones.
            target = (f1 >= f1.max() - 1e-9).astype(float)
            xs.append(x)
            groups.append(np.full(len(spans), g))
            targets.append(target / target.sum())
            g += 1
    return fit_grouped_softmax(F.SPAN_FEATURES, np.vstack(xs), np.concatenate(groups), np.concatenate(targets))


def _decision_rows(examples: Sequence[Example], model: AnswererModel, spans_of: SpanCache
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decision features under `model`'s sentence and span scorers, whether each question is
    answerable, and the F1 the answer would score."""
    rows, answerable, f1 = [], [], []
    for ex in examples:
        if not ex.prepared.sentences:
            continue
        decision = ExtractiveAnswerer.decide(ex.prepared, model, spans_of)
        rows.append(decision.features)
        answerable.append(float(ex.question.answerable))
        f1.append(answer_f1(decision.span, ex.question.answers) if ex.question.answerable else 0.0)
    return np.array(rows), np.array(answerable), np.array(f1)


def _placeholder_decision() -> tuple:
    zero = fit_logistic(F.DECISION_FEATURES, np.zeros((2, len(F.DECISION_FEATURES))), np.array([0.0, 1.0]),
                        steps=1)
    return zero, zero


def train(examples: Sequence[Example], trained_on: dict | None = None,
          spans_of: SpanCache | None = None) -> AnswererModel:
    """Fit the sentence and span scorers on all examples; fit the decision on features computed
    out of fold (cross-fitting over two halves of the articles), so that the expected F1 it learns
    is that of scorers which have not seen the question — in-sample it would be optimistic."""
    spans_of = spans_of or SpanCache()
    sentence, span = _fit_sentence(examples), _fit_span(examples, spans_of)
    articles = sorted({ex.question.article for ex in examples})
    halves = [set(articles[0::2]), set(articles[1::2])]
    rows, answerable, f1 = [], [], []
    for half in halves:
        inside = [ex for ex in examples if ex.question.article in half]
        outside = [ex for ex in examples if ex.question.article not in half]
        if not inside or not outside:
            inside = outside = list(examples)  # one article only: in-sample is all there is
        partial = AnswererModel(_fit_sentence(outside), _fit_span(outside, spans_of), *_placeholder_decision())
        r, a, f = _decision_rows(inside, partial, spans_of)
        rows.append(r), answerable.append(a), f1.append(f)
        if inside is outside:
            break
    x, a, f = np.vstack(rows), np.concatenate(answerable), np.concatenate(f1)
    p_model = fit_logistic(F.DECISION_FEATURES, x, a)
    f_model = fit_logistic(F.DECISION_FEATURES, x, f)
    # The margin that maximises SQuAD 2.0 F1 on those out-of-fold rows (0 would be break-even
    # if both estimates were exact).
    p = 1 / (1 + np.exp(-p_model.score(x)))
    ef1 = 1 / (1 + np.exp(-f_model.score(x)))
    gain = ef1 - (1 - p)
    grid = np.linspace(-0.3, 0.3, 61)
    totals = [np.sum(np.where(gain > m, f, 1.0 - a)) for m in grid]
    margin = float(grid[int(np.argmax(totals))])
    return AnswererModel(sentence, span, p_model, f_model, margin, dict(trained_on or {}))


def trained_on(file: Path, articles: Sequence[str], n_questions: int) -> dict:
    return {"file": file.name, "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
            "articles": sorted(articles), "questions": n_questions,
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def folds(articles: Sequence[str], k: int) -> list[list[str]]:
    """Article-level folds: sorted titles dealt round-robin into k folds."""
    if not 2 <= k <= len(articles):
        raise ValueError(f"folds must be between 2 and the number of articles ({len(articles)}), got {k}")
    ordered = sorted(articles)
    return [ordered[i::k] for i in range(k)]


def confidence_rows(examples: Sequence[Example], k: int, answerer: ExtractiveAnswerer,
                    log: Callable[[str], None] = lambda s: None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decisions made out of fold (for each article fold, an answerer trained on the other folds
    decides the fold's questions): confidence feature rows, whether each short answer is right,
    whether the answerer (with `answerer`'s abstention) would answer, and each row's fold."""
    from rag.answer.extractive.confidence import confidence_row
    from rag.eval.staff import short_right

    rows, right, answered, fold_of = [], [], [], []
    spans_of = SpanCache()
    for i, held_out in enumerate(folds(sorted({ex.question.article for ex in examples}), k)):
        model = train([ex for ex in examples if ex.question.article not in held_out], spans_of=spans_of)
        for ex in examples:
            if ex.question.article not in held_out or not ex.prepared.sentences:
                continue
            decision, about = ExtractiveAnswerer.choose(ex.prepared, model, spans_of)
            chosen = ex.prepared.sentences[decision.best]
            missing = answerer._missing_key_terms(ex.prepared.question, chosen.passage)
            answers = about and answerer.answers(ex.prepared, decision, missing)
            rows.append(confidence_row(decision.features, decision.p_answerable, decision.expected_f1, answers))
            right.append(ex.question.answerable and short_right(decision.span or chosen.text, ex.question.answers))
            answered.append(answers)
            fold_of.append(i)
        log(f"fold {i + 1}/{k} decided")
    return np.array(rows), np.array(right), np.array(answered), np.array(fold_of)


def calibrate_confidence(examples: Sequence[Example], k: int, answerer: ExtractiveAnswerer,
                         log: Callable[[str], None] = lambda s: None):
    """The shipped calibration (fitted on every out-of-fold decision) and its report: reliability
    table and expected calibration error of calibrations fitted without the fold they predict
    (nested folds), over all decisions and over the answers given."""
    from rag.answer.extractive.confidence import Calibration, fit, reliability

    rows, right, answered, fold_of = confidence_rows(examples, k, answerer, log)
    predicted = np.zeros(len(rows))
    for i in range(k):
        inside = fold_of == i
        if inside.any():
            scorer = fit(rows[~inside], right[~inside])
            predicted[inside] = 1 / (1 + np.exp(-scorer.score(rows[inside])))
    table, ece = reliability(predicted, right)
    answered_table, answered_ece = reliability(predicted[answered], right[answered])
    report = {"folds": k, "decisions": len(rows), "answered": int(answered.sum()),
              "right": float(right.mean()), "ece": round(ece, 4), "reliability": table,
              "answered_right": float(right[answered].mean()) if answered.any() else 0.0,
              "answered_ece": round(answered_ece, 4), "answered_reliability": answered_table}
    return Calibration(fit(rows, right), report)
