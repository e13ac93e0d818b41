"""The staff-style development set and its scorer: questions written by reading BBC articles,
answers verbatim from them; the scorer asks through `Service.ask` and never changes the index."""

from __future__ import annotations

import json

from rag.eval.staff import evaluate, load_staff, short_right
from tests.conftest import ingest_paths
from tests.support.paths import BBC, BBC_SUBSET, ROOT

STAFF = ROOT / "tests" / "data" / "staff-dev.json"


def test_the_set_is_of_the_kind_and_size_asked():
    questions = load_staff(STAFF)
    answerable = [q for q in questions if q.answerable]
    assert len(answerable) >= 50 and len(questions) - len(answerable) >= 10
    assert {q.kind for q in answerable} >= {"who", "what", "when", "how many", "why"}
    for q in answerable:
        text = (BBC / q.article).read_text(encoding="utf-8")
        assert text.split("\n", 1)[0].strip() == q.title
        assert all(a in text for a in q.answers), q.id  # verbatim from the article


def test_short_answers_are_judged_as_a_reader_would():
    assert short_right("Robby Ginepri", ["Robby Ginepri"])
    assert short_right("American Robby Ginepri", ["Robby Ginepri"])
    assert not short_right("ATP", ["Robby Ginepri"])
    assert not short_right("the teenager went out in round one to fellow American Robby Ginepri in straight sets",
                           ["Robby Ginepri"])


def test_rag_eval_staff_scores_and_deletes_only_on_a_copy(tmp_path, service):
    questions = [q for q in load_staff(STAFF) if q.id in {"a02", "a43", "a49", "a55", "o01", "o07"}]
    ingest_paths(service, [*{BBC / q.article for q in questions if q.article}, *BBC_SUBSET])
    before = service.health()["articles"]
    report, outcomes = evaluate(service, questions, delete_and_ask=True)
    assert report["answerable"] == 4 and report["out_of_corpus"] == 2
    assert report["out_of_corpus_refused"] == 100.0
    assert report["deleted_articles"] == 4 and len(outcomes) == 6 + 4
    assert report["deleted_refused"] == 100.0
    assert service.health()["articles"] == before  # the index itself is untouched
    assert json.dumps(report)
