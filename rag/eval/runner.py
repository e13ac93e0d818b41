"""`rag eval squad`: index a SQuAD 2.0 file (plus distractor articles), ask every question through
`Service.ask` — the code path of `POST /ask` — and score. Gold answers are read only when scoring."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from rag.answer.extractive.answerer import ExtractiveAnswerer
from rag.answer.extractive.training import SpanCache, collect, folds, train
from rag.embedding.wordpieces import WordPieceVectors
from rag.eval.squad import Question, gold_texts, normalize_answer, score
from rag.ingest import find_files, read_file
from rag.service import Service
from rag.text.markers import MARKER
from rag.types import Article, IngestFailure

REPORT_KEYS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "total", "HasAns_total",
               "NoAns_total", "recall@1", "recall@5", "recall@20", "answer_sentence_accuracy",
               "citation_accuracy", "seconds_per_question")
RECALL_DEPTHS = (1, 5, 20)


def load_squad(path: Path) -> tuple[list[Article], list[Question]]:
    """Each SQuAD article becomes one article whose paragraphs are its lines."""
    data = json.loads(path.read_text(encoding="utf-8"))
    articles, questions = [], []
    for entry in data["data"]:
        title = entry["title"].replace("_", " ")
        article_id = "squad-" + re.sub(r"[^A-Za-z0-9]+", "-", entry["title"]).strip("-").lower()
        articles.append(Article(id=article_id, title=title, text="\n".join(p["context"].strip()
                                                                          for p in entry["paragraphs"]),
                                origin=f"{path} ({entry['title']})"))
        for paragraph in entry["paragraphs"]:
            questions.extend(Question(id=qa["id"], question=qa["question"], article=entry["title"],
                                      answers=gold_texts(qa["answers"]))
                             for qa in paragraph["qas"])
    return articles, questions


def distractor_items(folder: Path, max_bytes: int) -> Iterator[Article | IngestFailure]:
    files, failures = find_files([folder])
    yield from failures
    for path in files:
        yield from read_file(path, max_bytes=max_bytes)


def _contains_gold(text: str, golds: Sequence[str]) -> bool:
    haystack = normalize_answer(text)
    return any(normalize_answer(g) in haystack for g in golds)


def evaluate(service: Service, questions: Sequence[Question],
             progress: Callable[[int], None] = lambda n: None) -> tuple[dict[str, float], dict[str, str]]:
    """Ask every question; return the report (REPORT_KEYS, percentages 0-100) and predictions."""
    predictions: dict[str, str] = {}
    answers = {}
    recall_hits = dict.fromkeys(RECALL_DEPTHS, 0)
    started = time.perf_counter()
    for q in questions:
        # Recall is measured on a separate search so that `ask` stays exactly the /ask path.
        passages = service.search(q.question, max(RECALL_DEPTHS))
        answer = service.ask(q.question)
        answers[q.id] = answer
        predictions[q.id] = "" if answer.abstained else MARKER.sub("", answer.text).strip()
        if q.answerable:
            for depth in RECALL_DEPTHS:
                recall_hits[depth] += any(_contains_gold(p.text, q.answers) for p in passages[:depth])
        progress(1)
    elapsed = time.perf_counter() - started

    answerable = [q for q in questions if q.answerable]
    answered = [q for q in answerable if not answers[q.id].abstained and answers[q.id].citations]
    # The sentence the answer was taken from; when it abstained, the one it would have taken.
    chosen = {q.id: (answers[q.id].citations[:1] or [answers[q.id].closest])[0] for q in answerable}
    report = score(questions, predictions)
    n = max(1, len(answerable))
    report |= {f"recall@{d}": 100.0 * recall_hits[d] / n for d in RECALL_DEPTHS}
    report["answer_sentence_accuracy"] = 100.0 * sum(
        chosen[q.id] is not None and _contains_gold(chosen[q.id].quote, q.answers) for q in answerable) / n
    report["citation_accuracy"] = 100.0 * sum(
        _contains_gold(answers[q.id].citations[0].quote, q.answers) for q in answered) / max(1, len(answered))
    report["seconds_per_question"] = elapsed / max(1, len(questions))
    return {key: report.get(key, 0.0) for key in REPORT_KEYS}, predictions


def cross_validate(service: Service, pieces: WordPieceVectors, questions: Sequence[Question], k: int,
                   progress: Callable[[int], None] = lambda n: None,
                   log: Callable[[str], None] = lambda s: None) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Article-level k-fold cross-validation of the learned answerer: for each fold, train on the
    other articles' questions and evaluate on the fold's through `Service.ask`. Returns the mean of
    each metric over folds and the per-fold reports. `service.answerer` is replaced fold by fold.
    The sentence features of every question are computed once (`collect`), so pass a service
    whose embedder remembers (`rag.embedding.cache.remembering`) to keep the evaluation pass from
    re-embedding, and the word pieces it was built with."""
    log(f"computing features of {len(questions)} questions")
    examples = collect(service.search, ExtractiveAnswerer(service.embedder, pieces), questions, progress)
    reports, spans_of = [], SpanCache()
    for i, held_out in enumerate(folds(sorted({q.article for q in questions}), k), 1):
        model = train([ex for ex in examples if ex.question.article not in held_out], spans_of=spans_of)
        service.answerer = ExtractiveAnswerer(service.embedder, pieces, model=model,
                                              abstention=service.settings.abstention)
        report, _ = evaluate(service, [q for q in questions if q.article in held_out], progress)
        reports.append(report)
        log(f"fold {i}/{k} ({', '.join(held_out)}): " + ", ".join(
            f"{key} {report[key]:.1f}" for key in REPORT_KEYS if not key.endswith("total")))
    mean = {key: sum(r[key] for r in reports) / len(reports) for key in REPORT_KEYS}
    for key in ("total", "HasAns_total", "NoAns_total"):
        mean[key] = sum(r[key] for r in reports)  # counts add up over folds
    return mean, reports
