"""Questions asked on a date, through the real stack (model, FAISS, SQLite, uvicorn on loopback):
time words become a window, nothing after `as_of` is retrieved or cited, "latest" gives the newest
value and says when, briefings order and compare across a window."""

from __future__ import annotations

import re

import pytest

from rag.api.app import create_app
from rag.ingest import article_from_record
from tests.support.servers import live_server

STORIES = [
    ("rate-0310", "1987-03-10T15:00:00Z", "CITIBANK KEEPS PRIME RATE",
     "Citibank said its prime lending rate stays at 7-1/2 pct, where it has been since August."),
    ("rate-0331", "1987-03-31T15:00:00Z", "CITIBANK RAISES PRIME RATE",
     "Citibank said it raised its prime lending rate to 7-3/4 pct from 7-1/2 pct, effective immediately."),
    ("rate-1020", "1987-10-20T15:00:00Z", "CITIBANK CUTS PRIME RATE",
     "Citibank said it cut its prime lending rate to 9-1/4 pct from 9-3/4 pct, effective immediately."),
    ("opec-0305", "1987-03-05T10:00:00Z", "OPEC OUTPUT UNDER CEILING",
     "OPEC output in February was well below the 15.8 mln bpd ceiling it set in December, ministers said."),
    ("opec-0629", "1987-06-29T10:00:00Z", "OPEC KEEPS CEILING",
     "OPEC kept its output ceiling at 16.6 mln bpd for the third and fourth quarters, ministers said."),
    ("fed-0402", "1987-04-02T18:00:00Z", "FED ADDS RESERVES",
     "The Federal Reserve added temporary reserves to the banking system through customer repurchase agreements."),
]
UNDATED = ("harbour", "Quellan harbour handled 530 ships last year, its harbour master said.")


@pytest.fixture
def http(service):
    records = [{"id": i, "published_at": d, "title": t, "text": x, "source": "Reuters"} for i, d, t, x in STORIES]
    records.append({"id": UNDATED[0], "title": "Quellan harbour", "text": UNDATED[1]})
    report = service.ingest(article_from_record(r, origin="test") for r in records)
    assert report.ok, report.failed
    with live_server(create_app(service.settings, service)) as client:
        yield client


def ask(http, question: str, as_of: str | None, **extra) -> dict:
    response = http.post("/ask", json={"question": question, **({"as_of": as_of} if as_of else {}), **extra})
    assert response.status_code == 200, response.text
    return response.json()


def cited_days(body: dict) -> list[str]:
    return [c["published_at"][:10] for c in body["citations"]]


def test_latest_gives_the_newest_value_on_or_before_as_of_and_says_when(http):
    april = ask(http, "What is Citibank's latest prime rate?", "1987-04-05")
    assert "7-3/4 pct" in april["answer"] and april["answer"].startswith("As of 31 March 1987")
    assert april["citations"][0]["article_id"] == "rate-0331"
    assert all(day <= "1987-04-05" for day in cited_days(april))
    assert april["as_of"].startswith("1987-04-05T23:59:59") and april["time_window"] is None
    october = ask(http, "What is Citibank's current prime rate?", "1987-10-21")
    assert october["citations"][0]["article_id"] == "rate-1020"
    # The short answer, or (when not confident) its sentence with it marked, cited [1].
    assert october["answer"].startswith("As of 20 October 1987: ")
    assert re.search(r"9-1/4 pct(\*\*[^[]*)? \[1\]", october["answer"]), october["answer"]


def test_time_words_become_a_window_that_filters_retrieval(http):
    body = ask(http, "What did Citibank do to its prime rate last week?", "1987-04-08")
    assert body["time_window"] == {"start": "1987-03-30", "end": "1987-04-05", "phrase": "last week"}
    assert body["citations"][0]["article_id"] == "rate-0331"
    early = ask(http, "What was Citibank's prime rate in early March?", "1987-10-21")
    assert early["time_window"]["start"] == "1987-03-01" and early["time_window"]["end"] == "1987-03-10"
    assert "7-1/2 pct" in early["answer"] and early["citations"][0]["article_id"] == "rate-0310"
    empty = ask(http, "What did OPEC say about its ceiling yesterday?", "1987-04-08")
    assert empty["abstained"] and empty["citations"] == []  # nothing dated 7 April holds it


def test_nothing_after_as_of_is_retrieved_or_cited(http):
    body = ask(http, "What is the OPEC output ceiling?", "1987-04-01")
    assert "15.8 mln" in body["answer"] and all(day <= "1987-04-01" for day in cited_days(body))
    found = http.post("/search", json={"query": "prime lending rate OPEC ceiling", "as_of": "1987-03-31T12:00:00",
                                       "top_k": 10}).json()
    days = [r["published_at"] for r in found["results"] if r["published_at"]]
    assert days and all(d < "1987-03-31T12" for d in days)
    assert found["as_of"].startswith("1987-03-31T12:00:00")
    undated = http.post("/search", json={"query": "Quellan harbour ships", "as_of": "1987-03-01"}).json()
    assert undated["results"][0]["article_id"] == "harbour"  # no date is not a date after as_of


def test_without_as_of_the_asking_date_is_now_and_old_news_is_found(http):
    body = ask(http, "What is the OPEC output ceiling for the third and fourth quarters?", None)
    assert "16.6 mln" in body["answer"] and body["as_of"][:4] >= "2025"


def test_a_bad_as_of_is_a_422_naming_it(http):
    response = http.post("/ask", json={"question": "What is the prime rate?", "as_of": "last Tuesday"})
    assert response.status_code == 422 and "as_of" in response.text and "not an ISO 8601" in response.text


def test_a_streamed_answer_carries_its_date_too(http):
    response = http.post("/ask", json={"question": "What is Citibank's latest prime rate?", "as_of": "1987-04-05",
                                       "stream": True})
    assert response.status_code == 200 and "event: answer" in response.text
    assert '"as_of":"1987-04-05T23:59:59' in response.text and "7-3/4 pct" in response.text


def test_chat_takes_as_of(http, service):
    from rag.api.routes.openai_compat import model_id

    body = http.post("/v1/chat/completions", json={
        "model": model_id(service.settings), "as_of": "1987-04-05",
        "messages": [{"role": "user", "content": "What is Citibank's latest prime rate?"}]}).json()
    assert "7-3/4 pct" in body["choices"][0]["message"]["content"]
    assert body["rag"]["as_of"].startswith("1987-04-05") and body["citations"][0]["published_at"][:10] == "1987-03-31"


def test_briefings_read_up_to_as_of_order_their_timeline_and_show_what_changed(http):
    body = http.post("/briefings", json={"topic": "Citibank prime rate since March", "as_of": "1987-10-21"}).json()
    assert body["time_window"] == {"start": "1987-03-01", "end": "1987-10-21", "phrase": "since March"}
    days = [e["date"] for e in body["timeline"]]
    assert days == sorted(days) and "1987-10-20" in days
    change = next(c for c in body["changes"] if "PRIME" in c["before"])
    assert (change["first"], change["last"]) == ("1987-03-10", "1987-10-20")
    sources = {s["n"]: s["article_id"] for s in body["sources"]}
    assert [sources[n] for n in change["citations"]] == ["rate-0310", "rate-1020"]
    before = http.post("/briefings", json={"topic": "Citibank prime rate", "as_of": "1987-04-01"}).json()
    assert {s["article_id"] for s in before["sources"]} <= {"rate-0310", "rate-0331", "fed-0402", "opec-0305", "harbour"}
    assert all(s["published_at"] is None or s["published_at"] < "1987-04-02" for s in before["sources"])
    markdown = http.post("/briefings", json={"topic": "Citibank prime rate since March", "as_of": "1987-10-21",
                                             "format": "md"}).text
    assert "## What changed (since March)" in markdown


def test_a_window_keeps_out_what_is_dated_outside_it_not_what_is_undated(http):
    body = ask(http, "How many ships did Quellan harbour handle in March?", "1987-04-08")
    assert body["time_window"]["start"] == "1987-03-01"
    assert "530" in body["answer"] and body["citations"][0]["article_id"] == "harbour"
    assert all(c["published_at"] is None or c["published_at"][:7] == "1987-03" for c in body["citations"])
