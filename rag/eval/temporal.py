"""`rag eval temporal FILE`: questions asked on a date, scored on what the answer says and when its
evidence is from.

FILE is a JSON list of `{question, as_of, answers, support}` (optionally `kind`, a label the report
groups by): `answers` are strings one of which a right answer holds (compared case- and
space-insensitively: wire copy is hard-wrapped), `support` the ids of the articles dated inside
the meant window that hold the answer. Scored per question:
- answered: the answer (not an abstention) holds one of `answers`;
- first citation in support: the answer's first citation is one of the `support` articles;
- cites after as_of: a citation's article is dated after `as_of` (must never happen).
Each figure is reported for the questions with time words (the resolver finds a window or a
"latest" word), for those without, and per `kind`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from rag.errors import InvalidInput
from rag.types import Answer
from rag.when import resolve
from rag.when.asking import parse_as_of

if TYPE_CHECKING:
    from rag.service import Service


@dataclass(frozen=True, slots=True)
class TemporalQuestion:
    question: str
    as_of: datetime
    answers: tuple[str, ...]
    support: frozenset[str]
    kind: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    item: TemporalQuestion
    timed: bool  # the question has time words
    correct: bool
    first_in_support: bool
    after_as_of: bool
    answer: str
    first_cited: str | None


def load_questions(path: Path, zone: tzinfo) -> list[TemporalQuestion]:
    """The questions of FILE; InvalidInput names the item and field that is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(data, list) or not data:
        raise InvalidInput(f"{path}: expected a non-empty JSON list of questions")
    out = []
    for n, item in enumerate(data):
        where = f"{path} item {n}"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where}: expected an object")
        for field, kind in (("question", str), ("as_of", str), ("answers", list), ("support", list)):
            if not isinstance(item.get(field), kind):
                raise InvalidInput(f"{where}: {field} must be a {kind.__name__}")
        if not item["answers"] or not all(isinstance(a, str) and a.strip() for a in item["answers"]):
            raise InvalidInput(f"{where}: answers must be a non-empty list of strings")
        try:
            as_of = parse_as_of(item["as_of"], zone)
        except InvalidInput as error:
            raise InvalidInput(f"{where}: {error}") from None
        out.append(TemporalQuestion(item["question"], as_of, tuple(item["answers"]),
                                    frozenset(map(str, item["support"])), item.get("kind")))
    return out


def untimed(service: Service) -> Callable[[str, datetime], Answer]:
    """Ask as the service did before it read time: the question as written (its time words
    matched as terms), no window, no asking date, no "latest" ranking, no date stamp. The
    baseline `rag eval temporal --untimed` reports, on the same index."""
    def ask(question: str, as_of: datetime) -> Answer:
        passages = service.retriever.search(question.strip(), service.settings.top_k)
        return service.answerer.answer(question.strip(), passages)
    return ask


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def score_one(item: TemporalQuestion, answer: Answer) -> Outcome:
    timed = (found := resolve(item.question, item.as_of.date())).window is not None or found.latest
    correct = not answer.abstained and any(_normal(a) in _normal(answer.text) for a in item.answers)
    first = answer.citations[0].article_id if answer.citations and not answer.abstained else None
    after = any(c.published_at is not None and c.published_at > item.as_of for c in answer.citations)
    return Outcome(item, timed, correct, first in item.support, after, answer.text, first)


def evaluate(ask: Callable[[str, datetime], Answer], questions: Sequence[TemporalQuestion],
             progress: Callable[[int], None] = lambda n: None) -> tuple[dict, list[Outcome]]:
    """Ask every question as of its date; the report and each question's outcome."""
    outcomes = []
    started = time.perf_counter()
    for item in questions:
        outcomes.append(score_one(item, ask(item.question, item.as_of)))
        progress(1)
    report = {"all": figures(outcomes),
              "time questions": figures([o for o in outcomes if o.timed]),
              "time-free questions": figures([o for o in outcomes if not o.timed])}
    for kind in sorted({o.item.kind for o in outcomes if o.item.kind}):
        report[f"kind: {kind}"] = figures([o for o in outcomes if o.item.kind == kind])
    report["seconds_per_question"] = round((time.perf_counter() - started) / max(1, len(questions)), 3)
    return report, outcomes


def figures(outcomes: Sequence[Outcome]) -> dict[str, float | int]:
    n = len(outcomes)

    def share(flag: str) -> float:
        return round(100.0 * sum(getattr(o, flag) for o in outcomes) / n, 1) if n else 0.0

    return {"questions": n, "answer_accuracy": share("correct"), "first_citation_in_support": share("first_in_support"),
            "cites_after_as_of": share("after_as_of")}
