"""rag.ingest.records: JSON records checked field by field and normalised."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rag.errors import InvalidInput
from rag.ingest import article_from_record
from tests.support.ingest_samples import record


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": 7}, "title: expected a string, got number"),
        ({"text": None}, "text: missing"),
        ({"text": ["a"]}, "text: expected a string, got array"),
        ({"html": "<p>x</p>"}, "text, html: give one of them, not both"),
        ({"text": " \n\t "}, "text: no article text after cleaning"),
        ({"id": "bad id!"}, "id: 'bad id!' is not a valid article id"),
        ({"id": "-starts-with-dash"}, "id: '-starts-with-dash' is not a valid article id"),
        ({"id": "x" * 129}, "id: 'xxxxxxxx"),
        ({"id": 12}, "id: expected a string, got number"),
        ({"published_at": "22/03/2024"}, "published_at: '22/03/2024' is not an ISO 8601"),
        ({"published_at": 2024}, "published_at: expected an ISO 8601 string, got number"),
        ({"source": ["BBC"]}, "source: expected a string, got array"),
        ({"url": 5}, "url: expected a string, got number"),
        ({"category": True}, "category: expected a string, got boolean"),
        ({"text": "Body \ud800."}, "text: not valid Unicode (an unpaired surrogate at character 5)"),
        ({"url": "http://[bad-ipv6/news/1"}, "url: 'http://[bad-ipv6/news/1' is not a valid URL"),
        ({"published_at": "0001-01-01T00:00:00+05:00"}, "published_at: '0001-01-01T00:00:00+05:00' is out of range"),
    ],
)
def test_record_errors_name_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        article_from_record(record(**fields), origin="request item 0")
    assert str(raised.value).startswith(message), str(raised.value)


def test_record_needs_an_object() -> None:
    with pytest.raises(InvalidInput, match="expected a JSON object, got array"):
        article_from_record(["x"], origin="request item 0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-22", datetime(2024, 3, 22, tzinfo=UTC)),
        ("2024-03-22T10:00:00Z", datetime(2024, 3, 22, 10, tzinfo=UTC)),
        ("2024-03-22T12:00:00+02:00", datetime(2024, 3, 22, 10, tzinfo=UTC)),
        ("2024-03-22T10:00:00", datetime(2024, 3, 22, 10, tzinfo=UTC)),
        (None, None),
    ],
)
def test_published_at_is_utc(value: str | None, expected: datetime | None) -> None:
    article = article_from_record(record(published_at=value), origin="x")
    assert article.published_at == expected
    if expected is not None:
        assert article.published_at is not None and article.published_at.utcoffset() is not None


def test_record_fields_are_normalised() -> None:
    article = article_from_record(
        {
            "id": "wpp-1",
            "title": "  Ad firm\nWPP  ",
            "text": "Profits rose.\r\n\r\n\r\nBy 15%.",
            "source": " BBC News ",
            "url": "",
            "category": "Business",
        },
        origin="request item 3",
    )
    assert (article.title, article.text) == ("Ad firm WPP", "Profits rose.\n\nBy 15%.")
    assert (article.source, article.url, article.category) == ("BBC News", None, "business")
    assert article.origin == "request item 3"


def test_record_without_title_gets_one_from_its_text() -> None:
    article = article_from_record(
        {"text": "Ethiopia produced 14.27 million tonnes. More."}, origin="x"
    )
    assert article.title == "Ethiopia produced 14.27 million tonnes."


# --- ids -----------------------------------------------------------------------------------
