"""Every extractive answer carries its short answer, the whole supporting sentence (verbatim, with
the short answer's offsets) and a confidence; a doubtful short answer is shown inside its sentence."""

from __future__ import annotations

from rag.answer.extractive.answerer import shown_text
from rag.answer.extractive.confidence import CONFIDENT, reliability
from rag.api.app import create_app
from rag.types import Extract
from tests.support.servers import live_server


def test_ask_returns_the_short_answer_inside_its_sentence(bbc_service):
    with live_server(create_app(bbc_service.settings, bbc_service)) as http:
        body = http.post("/ask", json={"question": "Which countries vetoed the UN cease-fire resolution?"}).json()
    extract = body["extract"]
    assert extract["sentence"] == body["citations"][0]["quote"]
    assert extract["sentence"][extract["start"]:extract["end"]] == extract["answer"] == "Russia and China"
    assert 0.0 <= extract["confidence"] <= 1.0
    if extract["confidence"] >= CONFIDENT:
        assert body["answer"] == "Russia and China [1]"
    else:
        assert body["answer"].startswith("“") and "**Russia and China**" in body["answer"]


def test_a_doubtful_short_answer_is_never_shown_alone():
    sentence = "The lawsuit was filed with the Santa Clara California Superior Court."
    start = sentence.index("Superior Court")
    doubtful = Extract("Superior Court", sentence, start, start + 14, 0.2)
    assert shown_text(doubtful) == "“The lawsuit was filed with the Santa Clara California **Superior Court**.”"
    sure = Extract("Superior Court", sentence, start, start + 14, 0.9)
    assert shown_text(sure) == "Superior Court"


def test_reliability_table_and_calibration_error():
    table, ece = reliability([0.05, 0.15, 0.85, 0.95], [False, False, True, True], bins=2)
    assert [row["n"] for row in table] == [2, 2] and abs(ece - 0.1) < 1e-9
