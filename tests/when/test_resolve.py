"""The resolver, table by table: each row is a question, the asking date and the window (start, end
inclusive) it must resolve to. The asking date is Wednesday 8 April 1987 unless a row says otherwise."""

from __future__ import annotations

from datetime import date

import pytest

from rag.when import resolve, strip_spans

WED = date(1987, 4, 8)  # a Wednesday
SAT = date(1987, 4, 11)
MON = date(1987, 4, 6)
D = date


def window(question: str, today: date = WED) -> tuple[date | None, date | None] | None:
    found = resolve(question, today).window
    return (found.start, found.end) if found else None


RELATIVE_DAYS = [
    ("What happened today?", WED, (D(1987, 4, 8), D(1987, 4, 8))),
    ("What did the Fed say yesterday?", WED, (D(1987, 4, 7), D(1987, 4, 7))),
    ("What happened the day before yesterday?", WED, (D(1987, 4, 6), D(1987, 4, 6))),
    ("What did the dollar do this morning?", WED, (D(1987, 4, 8), D(1987, 4, 8))),
    ("Did anything happen on Monday?", WED, (D(1987, 4, 6), D(1987, 4, 6))),
    ("What was said last Monday?", WED, (D(1987, 4, 6), D(1987, 4, 6))),
    ("What was said last Monday?", MON, (D(1987, 3, 30), D(1987, 3, 30))),  # not today
    ("What was said on Monday?", MON, (D(1987, 4, 6), D(1987, 4, 6))),  # today
    ("What happened last Friday?", WED, (D(1987, 4, 3), D(1987, 4, 3))),
    ("What is planned for next Friday?", WED, (D(1987, 4, 10), D(1987, 4, 10))),
]

WEEKS = [  # weeks start on Monday
    ("What did the Fed do last week?", WED, (D(1987, 3, 30), D(1987, 4, 5))),
    ("What did the Fed do last week?", MON, (D(1987, 3, 30), D(1987, 4, 5))),
    ("What did OPEC say this week?", WED, (D(1987, 4, 6), D(1987, 4, 8))),  # ends on the asking date
    ("What is due next week?", WED, (D(1987, 4, 13), D(1987, 4, 19))),
    ("What happened over the past week?", WED, (D(1987, 4, 1), D(1987, 4, 8))),
    ("What happened two weeks ago?", WED, (D(1987, 3, 23), D(1987, 3, 29))),
    ("What happened 3 weeks ago?", WED, (D(1987, 3, 16), D(1987, 3, 22))),
    ("What happened earlier this week?", WED, (D(1987, 4, 6), D(1987, 4, 7))),
    ("What happened over the weekend?", WED, (D(1987, 4, 4), D(1987, 4, 5))),
    ("What happened this weekend?", SAT, (D(1987, 4, 11), D(1987, 4, 11))),
    ("What happened last weekend?", SAT, (D(1987, 4, 4), D(1987, 4, 5))),
    ("What happened last weekend?", WED, (D(1987, 4, 4), D(1987, 4, 5))),
]

MONTHS_AND_QUARTERS = [
    ("What did the Bundesbank do this month?", WED, (D(1987, 4, 1), D(1987, 4, 8))),
    ("What did the Bundesbank do last month?", WED, (D(1987, 3, 1), D(1987, 3, 31))),
    ("What did the Bundesbank do earlier this month?", WED, (D(1987, 4, 1), D(1987, 4, 7))),
    ("What did it do in March?", WED, (D(1987, 3, 1), D(1987, 3, 31))),
    ("What did it do in April?", WED, (D(1987, 4, 1), D(1987, 4, 8))),  # the April under way
    ("What did it do in May?", WED, (D(1986, 5, 1), D(1986, 5, 31))),  # the last May that has begun
    ("What did it do in October?", D(1987, 10, 20), (D(1987, 10, 1), D(1987, 10, 20))),
    ("What did it do in March 1987?", D(1987, 10, 20), (D(1987, 3, 1), D(1987, 3, 31))),
    ("What did it do in Sept. 1986?", WED, (D(1986, 9, 1), D(1986, 9, 30))),
    ("What was the trade deficit in February?", WED, (D(1987, 2, 1), D(1987, 2, 28))),
    ("What happened in early March?", WED, (D(1987, 3, 1), D(1987, 3, 10))),
    ("What happened in mid-March?", WED, (D(1987, 3, 11), D(1987, 3, 20))),
    ("What happened in late March?", WED, (D(1987, 3, 21), D(1987, 3, 31))),
    ("What was the prime rate at the end of March?", WED, (D(1987, 3, 21), D(1987, 3, 31))),
    ("What happened in Q1?", WED, (D(1987, 1, 1), D(1987, 3, 31))),
    ("What happened in Q3?", WED, (D(1986, 7, 1), D(1986, 9, 30))),
    ("What happened in the first quarter of 1987?", D(1987, 10, 1), (D(1987, 1, 1), D(1987, 3, 31))),
    ("What happened in Q2 1987?", D(1987, 10, 1), (D(1987, 4, 1), D(1987, 6, 30))),
    ("What happened this quarter?", WED, (D(1987, 4, 1), D(1987, 4, 8))),
    ("What happened last quarter?", WED, (D(1987, 1, 1), D(1987, 3, 31))),
    ("What happened two months ago?", WED, (D(1987, 2, 1), D(1987, 2, 28))),
    ("What happened in 1986?", WED, (D(1986, 1, 1), D(1986, 12, 31))),
    ("What happened last year?", WED, (D(1986, 1, 1), D(1986, 12, 31))),
    ("What happened this year?", WED, (D(1987, 1, 1), D(1987, 4, 8))),
]

DAYS_AND_RANGES = [
    ("What happened on March 3?", WED, (D(1987, 3, 3), D(1987, 3, 3))),
    ("What happened on March 3rd, 1987?", WED, (D(1987, 3, 3), D(1987, 3, 3))),
    ("What happened on 3 March 1987?", WED, (D(1987, 3, 3), D(1987, 3, 3))),
    ("What happened on 1987-03-03?", WED, (D(1987, 3, 3), D(1987, 3, 3))),
    ("What happened on December 24?", WED, (D(1986, 12, 24), D(1986, 12, 24))),  # the last one passed
    ("What has happened since April?", WED, (D(1987, 4, 1), D(1987, 4, 8))),
    ("What has happened since March 15?", WED, (D(1987, 3, 15), D(1987, 4, 8))),
    ("What has happened since last week?", WED, (D(1987, 3, 30), D(1987, 4, 8))),
    ("What happened after March 15?", WED, (D(1987, 3, 16), D(1987, 4, 8))),
    ("What happened before April?", WED, (None, D(1987, 3, 31))),
    ("What happened until March 15?", WED, (None, D(1987, 3, 15))),
    ("What happened between March 3 and March 10?", WED, (D(1987, 3, 3), D(1987, 3, 10))),
    ("What happened between 3 March and 10 March 1987?", WED, (D(1987, 3, 3), D(1987, 3, 10))),
    ("What happened from February to March?", WED, (D(1987, 2, 1), D(1987, 3, 31))),
    ("What happened between December and February?", WED, (D(1986, 12, 1), D(1987, 2, 28))),
    ("What happened over the past 10 days?", WED, (D(1987, 3, 29), D(1987, 4, 8))),
    ("What happened in the last 3 days?", WED, (D(1987, 4, 5), D(1987, 4, 8))),
    ("What happened in the past two weeks?", WED, (D(1987, 3, 25), D(1987, 4, 8))),
    ("What happened over the past few days?", WED, (D(1987, 4, 5), D(1987, 4, 8))),
    ("What happened in the past month?", WED, (D(1987, 3, 8), D(1987, 4, 8))),
    ("What happened 5 days ago?", WED, (D(1987, 4, 3), D(1987, 4, 3))),
    ("What was the rate as of March 31?", WED, (None, D(1987, 3, 31))),
    ("What happened on February 30?", WED, None),  # no such day: no window rather than a wrong one
]

NO_WINDOW = [  # no time words, or words that only look like them
    "Who bought Kidde?",
    "May the Fed raise rates?",  # "may" is a verb
    "What is Japan's current account surplus?",
    "What were the company's first quarter profits?",  # a fiscal period, not a search window
    "How many of the 1987 shares were sold?",  # a bare number is not a year
    "What did the March of Dimes raise?",
    "What did Black Monday do to stocks?",
]


@pytest.mark.parametrize(("question", "today", "expected"),
                         RELATIVE_DAYS + WEEKS + MONTHS_AND_QUARTERS + DAYS_AND_RANGES)
def test_windows(question: str, today: date, expected: tuple | None) -> None:
    assert window(question, today) == expected


@pytest.mark.parametrize("question", NO_WINDOW)
def test_no_window(question: str) -> None:
    assert window(question) is None


@pytest.mark.parametrize(("question", "latest"), [
    ("What is the latest OPEC ceiling?", True),
    ("What is Citibank's current prime rate?", True),
    ("What is the most recent figure?", True),
    ("Is the strike still on?", True),
    ("What is the prime rate now?", True),
    ("What was the prime rate at the end of March?", True),
    ("What was the rate as of March 31?", True),
    ("What is Japan's current account surplus?", False),
    ("What did the Fed do last week?", False),
    ("Who bought Kidde?", False),
])
def test_latest(question: str, latest: bool) -> None:
    assert resolve(question, WED).latest is latest


@pytest.mark.parametrize(("question", "rest", "phrase"), [
    ("What did the Fed do last week?", "What did the Fed do?", "last week"),
    ("What is the latest OPEC ceiling?", "What is the OPEC ceiling?", None),
    ("Over the past 10 days, what did Japan say?", "what did Japan say?", "Over the past 10 days"),
    ("What was the prime rate at the end of March?", "What was the prime rate?", "at the end of March"),
    ("What happened in March 1987 in Brazil?", "What happened in Brazil?", "in March 1987"),
    ("yesterday", "yesterday", "yesterday"),  # nothing left to search for: the question as written
])
def test_time_words_are_not_terms(question: str, rest: str, phrase: str | None) -> None:
    found = resolve(question, WED)
    assert found.question == rest
    assert (found.window.phrase if found.window else None) == phrase


def test_the_first_window_in_the_question_wins() -> None:
    found = resolve("What happened last week, and what in March?", WED)
    assert (found.window.start, found.window.phrase) == (D(1987, 3, 30), "last week")
    assert found.question == "What happened, and what?"


def test_a_window_has_its_offset_and_dict() -> None:
    found = resolve("Prices in March 1987?", WED).window
    assert found.offset == len("Prices ")
    assert found.as_dict() == {"start": "1987-03-01", "end": "1987-03-31", "phrase": "in March 1987"}


def test_strip_spans_tidies_spaces() -> None:
    assert strip_spans("a , b c ?", [(2, 3)]) == "a b c?"
