"""rag.ingest.cleaning: page furniture removed, text normalised, glued sentences repaired."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.ingest import clean_text, read_file
from rag.ingest.cleaning import normalize_text
from rag.types import IngestFailure
from tests.support.ingest_samples import (
    LIMIT,
    SCRAPED_LINES,
    SCRAPED_PAGE,
    SEED_PAGE,
    only,
    write,
)

# --- cleaning ------------------------------------------------------------------------------

SEED_INTERFACE_LINES = [
    "Get Updates",
    "Get notified of breaking news, exclusive insights, and must-see stories!",
    "Notifications",
    "Settings",
    "Clear Notifications",
    "Use the toggle to switch on notifications",
    "• Block for 8 hours",
    "Block for 8 hours",
    "Block for 12 hours",
    "Don't block",
    "Gender",
    "Select your Gender",
    "Male",
    "Female",
    "Others",
    "Age",
    "Select your Age Range",
    "Under 18",
    "18 to 25",
    "55+",
    "Netanyahu Rejects US Rafah Plea",
]


def test_seed_page_loses_its_interface_and_keeps_its_article() -> None:
    article = only(read_file(SEED_PAGE, max_bytes=LIMIT))
    assert article.title == (
        "Netanyahu Dismisses US Appeal to End Rafah Offensive Ahead of Washington Talks"
    )
    lines = set(article.text.split("\n"))
    for interface in SEED_INTERFACE_LINES:
        assert interface not in lines
        if len(interface.split()) > 2:
            assert interface not in article.text
    assert "Notification" not in article.text and "Gender" not in article.text
    assert article.text.startswith(
        "On Friday, US Secretary of State Antony Blinken left the Middle East empty-handed"
    )
    assert article.text.endswith(
        "said it was not a direct demand to end fighting that much of the world seeks."
    )
    assert article.title not in article.text
    assert "humanitarian crisis. Israel says Rafah" in article.text  # glued sentences repaired


def test_scraped_page_with_blank_lines() -> None:
    title, body = clean_text(SCRAPED_PAGE)
    assert title == "Markets rally as central bank holds rates"
    assert body.split("\n\n") == [
        (
            "Shares in London rose sharply on Tuesday after the Bank of England held interest rates "
            "at 4.75% for a sixth month."
        ),
        "The FTSE 100 index closed up 1.2% at 4,950 points, its highest level since September 2001.",
        '"No surprise."',  # short quoted paragraph inside the article: kept
        "What analysts said",  # sub-heading inside the article: kept
        (
            "Economists at Example Bank said the decision had been widely expected and that a rise "
            "in May was still possible."
        ),
    ]


def test_scraped_page_copied_line_by_line() -> None:
    title, body = clean_text(SCRAPED_LINES)
    assert title == "Council approves new tram line for city centre"
    assert body.startswith("The city council voted 34 to 12 on Monday night")
    assert body.endswith("warned that traffic would suffer during the works.")
    for furniture in ("MENU", "Sign in", "Share it", "Facebook", "top stories", "Cookie settings"):
        assert furniture not in body


def test_bbc_style_page_keeps_short_lines_at_both_ends() -> None:
    raw = (
        "Chelsea win Carling Cup\n\nCardiff\n\nSunday, 27 February\n\n"
        "Chelsea beat Liverpool 3-2 after extra time in a thrilling final at the Millennium Stadium.\n\n"
        "Subs Not Used: Pidgeley, Tiago.\n\n78,000\n\nS Bennett (Kent).\n"
    )
    title, body = clean_text(raw)
    assert title == "Chelsea win Carling Cup"
    assert body.split("\n\n")[:2] == ["Cardiff", "Sunday, 27 February"]
    assert body.endswith("Subs Not Used: Pidgeley, Tiago.\n\n78,000\n\nS Bennett (Kent).")


def test_page_of_only_furniture_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "menu.txt", "Home\nNews\nSport\n\nAbout us\nContact\n")
    assert read_file(path, max_bytes=LIMIT) == [
        IngestFailure(str(path), "no article text after cleaning")
    ]


def test_normalisation() -> None:
    raw = "Cafe\u0301\r\nline\x07 two\t\t has   gaps  \n\n\n\n  next\u00a0para \u200bhere  \r\n"
    assert normalize_text(raw) == "Café\nline two has gaps\n\nnext para here"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("worsening humanitarian crisis.Israel says", "worsening humanitarian crisis. Israel says"),
        ("fighting in Gaza.At the UN", "fighting in Gaza. At the UN"),
        ("Really?Yes", "Really? Yes"),
        ("the U.S.Army said", "the U.S.Army said"),
        ("rose 3.5 Percent", "rose 3.5 Percent"),
        ("e.g.The example", "e.g.The example"),
        ("firms such as One.Tel, which", "firms such as One.Tel, which"),
        ("fansite Halo.Bungie.Org, said", "fansite Halo.Bungie.Org, said"),
    ],
)
def test_glued_sentences(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


# --- hidden HTML ---------------------------------------------------------------------------
