"""`rag eval staff`: staff-style questions over a built index, scored for what a reader sees.

A staff set is JSON: `{"questions": [{"id", "question", "kind", "article", "title", "answers"}]}`.
Each answerable question was written by reading one article (`article`: its path in the corpus,
`title`: its first line) and lists the acceptable answers verbatim from it; a question with no
`answers` is about something no article covers and must be refused.

Measures (percentages):
- `short_answer_right`: the short answer holds a gold answer and little else (at most
  `SHORT_SLACK` words more than it): "Robby Ginepri" and "American Robby Ginepri" are right for
  "Robby Ginepri", the sentence around it is not;
- `sentence_holds_answer`: the supporting sentence shown (or, when refused, the closest one) holds
  a gold answer;
- `answered`: share of answerable questions answered at all;
- `out_of_corpus_refused`;
- with `delete_and_ask`: every article titled as an answering one is deleted from a copy of the
  index and the answerable questions are asked again; `deleted_refused` is the share refused.
Matching is after SQuAD's normalisation (case, punctuation, articles), so "£7.5bn" matches "7.5bn".
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rag.errors import InvalidInput
from rag.eval.squad import normalize_answer
from rag.service import Service
from rag.types import Answer

SHORT_SLACK = 3  # words a short answer may add to the gold one ("Governor", "about", a unit)


@dataclass(frozen=True, slots=True)
class StaffQuestion:
    id: str
    question: str
    kind: str  # who, what, when, where, how many, how much, why; "out of corpus"
    article: str | None  # path in the corpus, e.g. "sport/426.txt"
    title: str | None  # the article's title: how the answering article is found in an index
    answers: tuple[str, ...]
    also_in: tuple[str, ...] = ()  # titles of other articles that answer it too

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One question asked: what was shown, and how it scored."""

    question: StaffQuestion
    refused: bool
    short: str  # the short answer ("" when refused)
    sentence: str  # the supporting sentence, or when refused the closest one
    confidence: float | None
    short_right: bool
    sentence_right: bool


def load_staff(path: Path) -> list[StaffQuestion]:
    """The questions of a staff set file; a malformed one is refused naming the question."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = data["questions"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"{path}: not a staff set ({error})") from None
    questions = []
    for i, row in enumerate(rows):
        try:
            q = StaffQuestion(id=str(row["id"]), question=str(row["question"]), kind=str(row.get("kind", "")),
                              article=row.get("article"), title=row.get("title"),
                              answers=tuple(str(a) for a in row.get("answers") or ()),
                              also_in=tuple(str(t) for t in row.get("also_in") or ()))
        except (KeyError, TypeError) as error:
            raise InvalidInput(f"{path}: question {i} lacks {error}") from None
        if q.answerable and not q.title:
            raise InvalidInput(f"{path}: question {q.id} has answers but no title")
        questions.append(q)
    if len({q.id for q in questions}) != len(questions):
        raise InvalidInput(f"{path}: question ids are not unique")
    return questions


def holds(text: str, golds: Sequence[str]) -> bool:
    haystack = f" {normalize_answer(text)} "
    return any(f" {normalize_answer(g)} " in haystack for g in golds if normalize_answer(g))


def short_right(short: str, golds: Sequence[str]) -> bool:
    """The short answer holds a gold answer and at most SHORT_SLACK words besides."""
    n = len(normalize_answer(short).split())
    return any(holds(short, [g]) and n <= len(normalize_answer(g).split()) + SHORT_SLACK for g in golds)


def shown(answer: Answer) -> tuple[str, str, float | None]:
    """(short answer, supporting sentence, confidence) of an answer as a reader gets them."""
    extract = answer.extract
    if extract is not None:
        return (("" if answer.abstained else extract.answer), extract.sentence, extract.confidence)
    cited = (answer.citations[:1] or ([answer.closest] if answer.closest else []))
    sentence = cited[0].quote if cited else ""
    short = "" if answer.abstained else _without_markers(answer.text)
    return short, sentence, None


def _without_markers(text: str) -> str:
    import re

    return re.sub(r"\s*\[\d+\]", "", text).strip()


def ask_all(service: Service, questions: Sequence[StaffQuestion],
            progress: Callable[[int], None] = lambda n: None) -> list[Outcome]:
    out = []
    for q in questions:
        answer = service.ask(q.question)
        short, sentence, confidence = shown(answer)
        out.append(Outcome(q, answer.abstained, short, sentence, confidence,
                           q.answerable and not answer.abstained and short_right(short, q.answers),
                           q.answerable and holds(sentence, q.answers)))
        progress(1)
    return out


def summary(outcomes: Sequence[Outcome]) -> dict[str, float]:
    answerable = [o for o in outcomes if o.question.answerable]
    unanswerable = [o for o in outcomes if not o.question.answerable]

    def share(items: Sequence[Outcome], test: Callable[[Outcome], bool]) -> float:
        return 100.0 * sum(map(test, items)) / len(items) if items else 0.0

    return {
        "answerable": len(answerable),
        "out_of_corpus": len(unanswerable),
        "short_answer_right": share(answerable, lambda o: o.short_right),
        "sentence_holds_answer": share(answerable, lambda o: o.sentence_right),
        "answered": share(answerable, lambda o: not o.refused),
        "out_of_corpus_refused": share(unanswerable, lambda o: o.refused),
    }


def evaluate(service: Service, questions: Sequence[StaffQuestion], delete_and_ask: bool = False,
             progress: Callable[[int], None] = lambda n: None) -> tuple[dict[str, float], list[Outcome]]:
    """Ask every question on `service`'s index; with `delete_and_ask`, also on a copy of it without
    the answering articles. The index itself is never changed."""
    outcomes = ask_all(service, questions, progress)
    report = summary(outcomes)
    if delete_and_ask:
        answerable = [q for q in questions if q.answerable]
        titles = {t for q in answerable for t in (q.title, *q.also_in) if t}
        with _copy_without(service, titles) as (copy, deleted):
            after = ask_all(copy, answerable, progress)
        report["deleted_articles"] = deleted
        report["deleted_refused"] = 100.0 * sum(o.refused for o in after) / max(1, len(after))
        outcomes += after
    return report, outcomes


@contextmanager
def _copy_without(service: Service, titles: set[str]) -> Iterator[tuple[Service, int]]:
    """A service over a throwaway copy of the docstore without every article bearing one of
    `titles` (each copy of a story, whatever its id); its derived indexes are rebuilt from it."""
    from rag.service import build_service

    with tempfile.TemporaryDirectory(prefix="rag-staff-") as folder:
        source = sqlite3.connect(service.store.docstore.path)
        target = sqlite3.connect(Path(folder) / "docstore.sqlite")
        try:
            source.backup(target)
            marks = ",".join("?" * len(titles))
            deleted = target.execute(f"DELETE FROM articles WHERE title IN ({marks})", sorted(titles)).rowcount
            # ON DELETE CASCADE needs the pragma on this connection; delete the rows it would.
            target.execute("DELETE FROM chunks WHERE article_id NOT IN (SELECT id FROM articles)")
            target.execute("DELETE FROM sentences WHERE article_id NOT IN (SELECT id FROM articles)")
            target.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='generation'")
            target.commit()
        finally:
            source.close()
            target.close()
        embedder = getattr(service.embedder, "inner", service.embedder)  # the model, not its stored vectors
        copy = build_service(service.settings.model_copy(update={"index_dir": Path(folder)}), embedder)
        try:
            yield copy, deleted
        finally:
            copy.close()


def table(outcomes: Sequence[Outcome]) -> Iterator[str]:
    """One line per question: id, verdicts, what was shown."""
    for o in outcomes:
        verdict = "refused" if o.refused else ("right" if o.short_right else "wrong")
        mark = "S" if o.sentence_right else "-"
        conf = f"{o.confidence:.2f}" if o.confidence is not None else "  - "
        yield f"{o.question.id:<5} {verdict:<8} {mark} {conf}  {o.question.question}  → {o.short or '(refused)'}"
