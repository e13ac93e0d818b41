"""Dates with their source: each source table by table, the readers wiring them, the docstore
keeping `date_source` (and migrating an index from before it), the API returning it."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime

import lxml.html
import pytest

from rag.api.app import create_app
from rag.ingest import article_from_record, read_file
from rag.ingest.dates import date_from_dateline, date_from_meta, date_from_url, find_date
from rag.service import build_service
from tests.support.paths import SHARED
from tests.support.servers import live_server


def day(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, tzinfo=UTC)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://news.example/2024/03/22/fed-holds-rates", day(2024, 3, 22)),
    ("https://news.example/world/2024-03-22-fed-holds", day(2024, 3, 22)),
    ("https://news.example/20240322/fed.html", day(2024, 3, 22)),
    ("/2019/12/31/", day(2019, 12, 31)),
    ("https://news.example/2024/13/45/x", None),  # no such day
    ("https://2024.example/03/22/x", None),  # the host is not the path
    ("https://news.example/story?date=2024/03/22", None),  # nor the query
    ("https://news.example/article/123456789", None),
    (None, None),
])
def test_dates_from_urls(url, expected):
    assert date_from_url(url) == expected


REF = date(1987, 10, 20)


@pytest.mark.parametrize(("text", "expected"), [
    ("LONDON, March 3 - The Bank of England said on Tuesday...", day(1987, 3, 3)),
    ("NEW YORK, Feb. 26 - Shares rose.", day(1987, 2, 26)),
    ("DAYTON, Ohio, March 5 - Mead Corp said its 1988 profit would rise.", day(1987, 3, 5)),
    ("TOKYO, March 3 - Japan's 1986 surplus was the largest ever.", day(1987, 3, 3)),  # named years are no guide
    ("TOKYO, Dec 24 - Nothing else dated here.", day(1986, 12, 24)),  # the last Dec 24 by the reference date
    ("TOKYO, Oct 21 - A day ahead of UTC.", day(1987, 10, 21)),
    ("PARIS, June 2, 1985 - Year in the dateline.", day(1985, 6, 2)),
    ("The Bank of England said on March 3 - nothing like a dateline.", None),
    ("LONDON, March 33 - no such day", None),
])
def test_dates_from_datelines(text, expected):
    assert date_from_dateline(text, REF) == expected


@pytest.mark.parametrize(("head", "expected"), [
    ('<meta property="article:published_time" content="2024-03-22T10:00:00+01:00">', datetime(2024, 3, 22, 9, tzinfo=UTC)),
    (('<script type="application/ld+json">{"@graph": [{"@type": "NewsArticle", "datePublished": "2024-03-21"}]}'
      '</script>'), day(2024, 3, 21)),
    ('<meta itemprop="datePublished" content="2024-03-20">', day(2024, 3, 20)),
    ('<meta name="pubdate" content="2024-03-19T08:00:00.000+0000">', datetime(2024, 3, 19, 8, tzinfo=UTC)),
    ('<meta name="description" content="2024-03-19">', None),
])
def test_dates_from_page_metadata(head, expected):
    root = lxml.html.document_fromstring(f"<html><head>{head}</head><body><p>Text.</p></body></html>")
    assert date_from_meta(root) == expected


def test_a_time_element_marked_as_published_wins_over_an_earlier_one():
    root = lxml.html.document_fromstring(
        '<html><body><time datetime="2020-01-01">then</time><p>x</p>'
        '<time itemprop="datePublished" datetime="2024-03-22">now</time></body></html>')
    assert date_from_meta(root) == day(2024, 3, 22)


def test_the_most_trusted_source_wins():
    assert find_date(record=day(2024, 1, 1), meta=day(2024, 2, 2), url="/2024/03/03/",
                     text="LONDON, April 4 -").source == "record"
    assert find_date(meta=day(2024, 2, 2), url="/2024/03/03/").source == "meta"
    assert find_date(url="/2024/03/03/x", text="LONDON, April 4 - x").source == "url"
    assert find_date(text="LONDON, April 4, 2024 - x").published_at == day(2024, 4, 4)
    assert find_date(text="No date here.") == find_date()
    assert find_date().source == "none" and find_date().published_at is None


PAGE = """<html><head><title>Fed holds</title>
<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": "2024-03-22T14:00:00Z"}</script>
</head><body><article><h1>Fed holds</h1><p>The Federal Reserve held its benchmark rate steady on Wednesday,
its chairman said after the two-day meeting of its policy committee in Washington.</p></article></body></html>"""


def test_readers_attach_dates_and_their_source(tmp_path):
    (tmp_path / "page.html").write_text(PAGE)
    (tmp_path / "wire.txt").write_text("Cocoa review\n\nSALVADOR, Feb 26 - Showers continued throughout "
                                       "the week in the Bahia cocoa zone in 1987.\n")
    (tmp_path / "plain.txt").write_text("A title\n\nA body with no date in it at all.\n")
    found = {a.origin.rsplit("/", 1)[1]: a for p in sorted(tmp_path.iterdir())
             for a in read_file(p, max_bytes=100_000)}
    assert (found["page.html"].date_source, found["page.html"].published_at) == ("meta", datetime(2024, 3, 22, 14, tzinfo=UTC))
    wire = found["wire.txt"]  # its year: the last 26 February by the ingest date, today
    assert wire.date_source == "dateline" and (wire.published_at.month, wire.published_at.day) == (2, 26)
    assert 0 <= (datetime.now(UTC) - wire.published_at).days < 367
    assert (found["plain.txt"].date_source, found["plain.txt"].published_at) == ("none", None)


def test_records_attach_dates_and_their_source():
    record = article_from_record({"text": "Body.", "published_at": "1987-03-03"}, origin="t")
    assert (record.date_source, record.published_at) == ("record", day(1987, 3, 3))
    from_url = article_from_record({"text": "Body.", "url": "https://x.example/2024/03/22/a"}, origin="t")
    assert (from_url.date_source, from_url.published_at) == ("url", day(2024, 3, 22))
    from_html = article_from_record({"html": PAGE}, origin="t")
    assert from_html.date_source == "meta" and from_html.published_at.date() == date(2024, 3, 22)


def test_date_source_is_stored_returned_and_cited(service):
    report = service.ingest([
        article_from_record({"id": "wire", "title": "Cocoa", "text": "SALVADOR, Feb 26 - Showers continued in "
                             "the Bahia cocoa zone in 1987, Comissaria Smith said in its weekly review."}, origin="t"),
        article_from_record({"id": "rec", "title": "Rates", "published_at": "1987-04-01",
                             "text": "Citibank raised its prime rate to 7.75 pct from 7.50 pct."}, origin="t"),
    ])
    assert report.ok
    with live_server(create_app(service.settings, service)) as http:
        wire = http.get("/articles/wire").json()
        assert (wire["date_source"], wire["published_at"][5:10]) == ("dateline", "02-26")
        assert http.get("/articles/rec").json()["date_source"] == "record"
        body = http.post("/ask", json={"question": "What did Citibank raise its prime rate to?"}).json()
        citation = body["citations"][0]
        assert citation["article_id"] == "rec"
        assert (citation["published_at"][:10], citation["date_source"]) == ("1987-04-01", "record")


def test_an_index_from_before_date_sources_is_migrated(settings, embedder, tmp_path):
    """Schema 2 had no date_source: opening it adds the column and fills it from what could have
    given the date then (a record's field, or an HTML page's metadata)."""
    service = build_service(settings, embedder)
    (tmp_path / "page.html").write_text(PAGE)
    service.ingest([*read_file(tmp_path / "page.html", max_bytes=100_000),
                    article_from_record({"id": "rec", "text": "Dated body.", "published_at": "1987-03-03"}, origin="x.jsonl"),
                    article_from_record({"id": "bare", "text": "Undated body."}, origin="y.jsonl")])
    service.close()
    db = sqlite3.connect(settings.index_dir / "docstore.sqlite")
    db.executescript("ALTER TABLE articles DROP COLUMN date_source; UPDATE meta SET value = '2' WHERE key = 'schema_version';")
    db.close()
    again = build_service(settings, embedder)
    try:
        page_id = next(i for i in again.store.docstore._db().execute("SELECT id FROM articles").fetchall()
                       if i[0] not in ("rec", "bare"))[0]
        assert [again.article(i).date_source for i in (page_id, "rec", "bare")] == ["meta", "record", "none"]
        assert again.store.docstore._db().execute(
            "SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "4"
        assert again.store.check().ok
    finally:
        again.close()


def test_reuters_records_carry_their_dates():
    """Every Reuters record but one (which has none) is dated from its record."""
    path = SHARED / "corpora/reuters21578/reuters21578.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    with path.open() as lines:
        head = [json.loads(next(lines)) for _ in range(200)]
    articles = [article_from_record(r, origin="reuters") for r in head]
    assert {a.date_source for a in articles} == {"record"}
