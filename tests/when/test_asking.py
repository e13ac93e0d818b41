"""The asking date and what it adds to a query: pure functions, no index."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from rag.answer.llm import build_prompt
from rag.errors import InvalidInput
from rag.types import Filters, Passage, Span
from rag.when.asking import asked, latest_first, parse_as_of, time_zone

NY = ZoneInfo("America/New_York")


def test_as_of_forms():
    assert parse_as_of("1987-04-01", UTC) == datetime(1987, 4, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_as_of("1987-04-01T12:00:00", NY) == datetime(1987, 4, 1, 12, tzinfo=NY)
    assert parse_as_of("1987-04-01T12:00:00Z", NY) == datetime(1987, 4, 1, 12, tzinfo=UTC)
    now = datetime(2024, 3, 22, 9, tzinfo=UTC)
    assert parse_as_of(None, NY, now=now) == now and parse_as_of(None, NY, now=now).tzinfo == NY
    with pytest.raises(InvalidInput, match="as_of: 'last Tuesday' is not an ISO 8601 date"):
        parse_as_of("last Tuesday", UTC)


def test_an_unknown_time_zone_is_named():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        time_zone("Mars/Olympus")


def test_the_window_becomes_instants_in_the_asking_zone_and_as_of_bounds_the_rest():
    as_of = parse_as_of("1987-04-08", NY)
    found = asked("What did the Fed do yesterday?", Filters(category="money"), as_of,
                  newest_stored=datetime(1987, 10, 20, tzinfo=UTC))
    assert found.query == "What did the Fed do?"
    assert (found.window.start, found.window.end, found.window.phrase) == (date(1987, 4, 7), date(1987, 4, 7), "yesterday")
    assert found.filters.category == "money"  # the request's own filters stay
    assert found.filters.window_start == datetime(1987, 4, 7, tzinfo=NY)
    assert found.filters.window_end == datetime(1987, 4, 8, tzinfo=NY)  # exclusive
    assert found.filters.as_of == as_of


def test_an_asking_date_after_everything_stored_filters_nothing():
    found = asked("Who bought Kidde?", Filters(), parse_as_of("2024-01-01", UTC),
                  newest_stored=datetime(1987, 10, 20, tzinfo=UTC))
    assert found.window is None and not found.latest
    assert found.filters.empty  # no filtered search for a question asked "now"


def test_an_asking_date_filters_nothing_when_no_article_is_dated():
    found = asked("Who bought Kidde?", Filters(category="money"), parse_as_of("1987-04-08", UTC), newest_stored=None)
    assert found.filters.as_of is None and found.filters.category == "money"
    # A caller's own bound stays, dated articles or not.
    bounded = asked("Who bought Kidde?", Filters(as_of=parse_as_of("1987-03-01", UTC)), parse_as_of("1987-04-08", UTC),
                    newest_stored=None)
    assert bounded.filters.as_of == parse_as_of("1987-03-01", UTC)


def _passage(article: str, day: int | None, score: float) -> Passage:
    return Passage(chunk_id=f"{article}:0", article_id=article, title=article, text="x", start=0, end=1,
                   sentences=(Span(0, 1),), score=score,
                   published_at=datetime(1987, 4, day, tzinfo=UTC) if day else None)


def test_latest_first_orders_only_the_passages_that_answer_by_date():
    passages = [_passage("best", 1, 1.0), _passage("newer", 3, 0.9), _passage("undated", None, 0.85),
                _passage("newest-but-off-topic", 9, 0.3)]
    assert [p.article_id for p in latest_first(passages)] == ["newer", "best", "undated", "newest-but-off-topic"]


def test_the_llm_prompt_carries_each_passage_date_and_the_asking_date():
    passage = Passage(chunk_id="a:0", article_id="a", title="Rates", text="Citibank raised its prime rate.", start=0,
                      end=31, sentences=(Span(0, 31),), score=1.0, published_at=datetime(1987, 3, 31, 15, tzinfo=UTC))
    undated = Passage(chunk_id="b:0", article_id="b", title="Other", text="Undated text here.", start=0, end=18,
                      sentences=(Span(0, 18),), score=0.5)
    prompt = build_prompt("What is the prime rate now?", [passage, undated], 3000,
                          as_of=datetime(1987, 4, 5, tzinfo=UTC))
    assert '<passage n="1" title="Rates" date="1987-03-31">' in prompt.user
    assert '<passage n="2" title="Other">' in prompt.user
    assert "Asked on: 1987-04-05" in prompt.user
    assert "latest one on or before the asking date" in prompt.system


def test_time_words_stay_in_the_query_unless_they_are_about_publication_dates():
    as_of = parse_as_of("1987-04-08", UTC)
    news = asked("What did the Fed do last week?", Filters(), as_of, newest_stored=datetime(1987, 4, 7, tzinfo=UTC),
                 dated_between=lambda start, end: True)
    assert news.query == "What did the Fed do?"
    # Nothing dated inside the window: "in 1979" is what the articles say, not when they were published.
    history = asked("What was the price of oil in 1979 now?", Filters(), as_of,
                    newest_stored=datetime(1987, 4, 7, tzinfo=UTC), dated_between=lambda start, end: False)
    assert history.query == "What was the price of oil in 1979?" and history.window.start == date(1979, 1, 1)
    # Nothing dated at all: the question as written.
    undated = asked("How many protestants live in France today?", Filters(), as_of, newest_stored=None,
                    dated_between=lambda start, end: False)
    assert undated.query == "How many protestants live in France today?"
