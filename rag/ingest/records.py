"""JSON records (from .json/.jsonl files and from POST /articles) → Article, validated field by field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from rag.errors import InvalidInput
from rag.ingest.cleaning import fallback_title, normalize_text, one_line
from rag.ingest.dates import find_date
from rag.ingest.html import read_html
from rag.ingest.ids import id_from_content, id_from_url, type_name, validate_article_id
from rag.types import Article

FIELDS = ("id", "title", "text", "html", "source", "url", "published_at", "category")


def article_from_record(
    record: Mapping[str, Any], *, origin: str, default_id: str | None = None
) -> Article:
    """A record → Article; raises InvalidInput naming the field.

    Fields: `text` or `html` (exactly one), and optionally `id`, `title`, `source`, `url`,
    `published_at` (ISO 8601), `category`; others are ignored. Without an `id` the article's id
    comes from `url`, else `default_id` (readers pass one derived from the file and line), else
    the content, so re-sending the same record never makes a second article.
    """
    if not isinstance(record, Mapping):
        raise InvalidInput(f"expected a JSON object, got {type_name(record)}")
    text_field, html_field = _string(record, "text"), _string(record, "html")
    if text_field is not None and html_field is not None:
        raise InvalidInput("text, html: give one of them, not both")
    if text_field is None and html_field is None:
        raise InvalidInput("text: missing (give the article as text or as html)")
    declared = None  # the page's own date metadata, for an html record
    if html_field is not None:
        page = read_html(html_field)
        page_title, text, declared = page.title, page.text, page.published_at
        field = "html"
    else:
        page_title, text = None, normalize_text(text_field or "")
        field = "text"
    if not text:
        raise InvalidInput(f"{field}: no article text after cleaning")

    title = one_line(_string(record, "title") or "") or page_title or fallback_title(text)
    url = _optional(record, "url")
    if url:
        try:
            urlsplit(url)
        except ValueError as error:  # "http://[bad-ipv6/…"
            raise InvalidInput(f"url: {url!r} is not a valid URL ({error})") from None
    if "id" in record and record["id"] is not None:
        article_id = validate_article_id(record["id"])
    elif url:
        article_id = id_from_url(url)
    else:
        article_id = default_id or id_from_content(title, text)
    category = _optional(record, "category")
    dated = find_date(record=parse_published_at(record.get("published_at")), meta=declared, url=url, text=text)
    return Article(
        id=article_id,
        title=title,
        text=text,
        source=_optional(record, "source"),
        url=url,
        published_at=dated.published_at,
        category=category.lower() if category else None,
        origin=origin,
        date_source=dated.source,
    )


def parse_published_at(value: object) -> datetime | None:
    """`2024-03-22`, `2024-03-22T10:00:00Z` or with an offset → aware UTC datetime; naive
    values are taken as UTC; empty → None."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"published_at: expected an ISO 8601 string, got {type_name(value)}")
    text = value.strip()
    try:
        # Python 3.11's fromisoformat reads the ISO 8601 forms, including `Z` and plain dates.
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"published_at: {value!r} is not an ISO 8601 date or datetime "
            "(e.g. 2024-03-22 or 2024-03-22T10:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 falls before the first representable instant
        raise InvalidInput(f"published_at: {value!r} is out of range in UTC") from None


def _string(record: Mapping[str, Any], field: str) -> str | None:
    value = record.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a string, got {type_name(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:  # JSON's "\ud800": a half of a surrogate pair, no character
        raise InvalidInput(f"{field}: not valid Unicode (an unpaired surrogate at character {error.start})"
                           ) from None
    return value


def _optional(record: Mapping[str, Any], field: str) -> str | None:
    """A metadata string, stripped; empty means absent."""
    value = _string(record, field)
    return one_line(value) or None if value is not None else None
