"""What the staff page and the feed poller read and write in the docstore, the same on SQLite
and PostgreSQL: articles' author and date source, the article list and its facets, polled
sources with the items they listed; and the articles a filtered search may return."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from rag.chunking import Chunker
from rag.errors import SourceNotFound
from rag.indexer import embedded, sentences_of
from rag.store.snapshot import Indexes
from rag.types import Article, Filters, Source, SourceItem

DIM = 8
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _put(docstore, *articles: Article) -> None:
    items = []
    for article in articles:
        chunks = Chunker(budget=40, overlap=8).chunk(article)
        vectors = np.random.default_rng(0).normal(size=(len(sentences_of(chunks)), DIM)).astype(np.float32)
        items.append(embedded(article, chunks, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))
    docstore.put(items)


def _article(id: str, title: str, **fields) -> Article:
    return Article(id=id, title=title, text=f"{title}. It happened today. More was said later.", **fields)


ARTICLES = [
    _article("a1", "Rates rise by 50% in March", category="business", source="wire", published_at=T0,
             author="Ann Example", date_source="meta"),
    _article("a2", "Élan wins the cup", category="sport", source="wire", published_at=T0 + timedelta(days=2),
             date_source="feed"),
    _article("a3", "rates stay put", category="business", source="daily", published_at=T0 - timedelta(days=40)),
    _article("a4", "Budget talks", category="business"),  # undated
    _article("a5", "Apple results"),  # undated, no category, no source
]


def test_author_and_date_source_are_stored_and_read_back(docstore):
    _put(docstore, *ARTICLES)
    article = docstore.get_article("a1")
    assert (article.author, article.date_source, article.published_at) == ("Ann Example", "meta", T0)
    assert docstore.get_article("a3").author is None and docstore.get_article("a3").date_source == "none"
    [(read, spans)] = docstore.articles_with_sentences(["a2"])
    assert read == dataclasses.replace(ARTICLES[1], origin="") and len(spans) == 3
    assert read.content_hash == ARTICLES[1].content_hash  # what was stored is what re-ingest compares


def test_articles_are_listed_newest_first_searched_filtered_and_paged(docstore):
    _put(docstore, *ARTICLES)
    everything = docstore.list_articles(Filters())
    assert everything.total == 5
    assert [a.id for a in everything.articles] == ["a2", "a1", "a3", "a5", "a4"]  # undated last, by title
    assert everything.articles[0].published_at == T0 + timedelta(days=2)
    assert everything.articles[0].ingested_at.tzinfo == UTC
    assert [a.id for a in docstore.list_articles(Filters(), "RATES").articles] == ["a1", "a3"]  # any case
    assert [a.id for a in docstore.list_articles(Filters(), "50%").articles] == ["a1"]  # % is no wildcard
    assert docstore.list_articles(Filters(), "5_%").total == 0
    assert [a.id for a in docstore.list_articles(Filters(), " a4 ").articles] == ["a4"]  # ids too
    business = docstore.list_articles(Filters(category="Business"), "rates")
    assert [a.id for a in business.articles] == ["a1", "a3"]
    dated = docstore.list_articles(Filters(since=T0.date()))
    assert [a.id for a in dated.articles] == ["a2", "a1"]  # undated articles fail a date filter
    page = docstore.list_articles(Filters(), limit=2, offset=2)
    assert (page.total, page.offset, [a.id for a in page.articles]) == (5, 2, ["a3", "a5"])


def test_facets_count_values_most_first_and_span_the_dates(docstore):
    _put(docstore, *ARTICLES)
    facets = docstore.facets()
    assert facets.categories == (("business", 3), ("sport", 1))
    assert facets.sources == (("wire", 2), ("daily", 1))
    assert facets.first_published == T0 - timedelta(days=40) and facets.last_published == T0 + timedelta(days=2)
    assert (facets.articles, facets.undated) == (5, 2)
    empty = docstore.list_articles(Filters(category="none"))
    assert (empty.total, empty.articles) == (0, ())


def _source(n: int, **fields) -> Source:
    return Source(id=f"s{n}", url=f"https://news{n}.example.com/feed", every_s=60 * n, added_at=T0 + timedelta(n),
                  next_poll_at=T0 + timedelta(n), **fields)


def test_sources_round_trip_and_keep_their_state_when_added_again(docstore):
    generation = docstore.generation()
    assert docstore.sources() == []
    second = docstore.add_source(_source(2, category="world"))
    first = docstore.add_source(_source(1))
    assert first == _source(1) and second.category == "world" and second.status == "new"
    assert [s.id for s in docstore.sources()] == ["s1", "s2"]  # by the time they were added
    polled = dataclasses.replace(
        second, etag='"v1"', last_modified="Fri, 01 Mar 2024 12:00:00 GMT", last_fetched_at=T0 + timedelta(3),
        last_new_article_at=T0 + timedelta(3), last_error="HTTP 500 for one item", last_error_at=T0 + timedelta(3),
        failures=1, next_poll_at=T0 + timedelta(hours=80))
    docstore.record_poll(polled)
    assert docstore.source("s2") == polled and docstore.source("s2").status == "failing"
    # Added again under its URL: a new interval and category, its history kept.
    again = docstore.add_source(dataclasses.replace(_source(2), id="other", every_s=5, category=None))
    assert again == dataclasses.replace(polled, every_s=5, category=None)
    assert len(docstore.sources()) == 2
    with pytest.raises(SourceNotFound, match="'nope'"):
        docstore.source("nope")
    docstore.record_poll(_source(9))  # a source removed meanwhile stays removed
    assert [s.id for s in docstore.sources()] == ["s1", "s2"]
    assert docstore.generation() == generation  # sources are not indexed


def test_due_sources_are_those_whose_time_has_come_soonest_first(docstore):
    for n in (3, 1, 2):
        docstore.add_source(_source(n))
    assert docstore.due_sources(T0) == []
    assert [s.id for s in docstore.due_sources(T0 + timedelta(2))] == ["s1", "s2"]
    docstore.record_poll(dataclasses.replace(_source(1), next_poll_at=T0 + timedelta(days=2, microseconds=1)))
    assert [s.id for s in docstore.due_sources(T0 + timedelta(2))] == ["s2"]  # a microsecond later: not due
    assert [s.id for s in docstore.due_sources(T0 + timedelta(5))] == ["s2", "s1", "s3"]


def test_source_items_are_upserted_and_forgotten_with_their_source(docstore):
    docstore.add_source(_source(1))
    docstore.add_source(_source(2))
    assert docstore.source_items("s1") == {}
    docstore.put_source_items("s1", [SourceItem("https://x/1", "d1", '"e1"', None, "a1"),
                                     SourceItem("https://x/2", "d2")])
    docstore.put_source_items("s2", [SourceItem("https://x/1", "other")])
    docstore.put_source_items("s1", [SourceItem("https://x/2", "d2b", None, "Mon, 04 Mar 2024", "a2")])
    assert docstore.source_items("s1") == {
        "https://x/1": SourceItem("https://x/1", "d1", '"e1"', None, "a1"),
        "https://x/2": SourceItem("https://x/2", "d2b", None, "Mon, 04 Mar 2024", "a2")}
    docstore.remove_source("s1")
    assert docstore.source_items("s1") == {} and [s.id for s in docstore.sources()] == ["s2"]
    docstore.put_source_items("s1", [SourceItem("https://x/3", "d3")])  # removed while polled: dropped
    assert docstore.source_items("s1") == {}
    assert docstore.source_items("s2") == {"https://x/1": SourceItem("https://x/1", "other")}
    with pytest.raises(SourceNotFound, match="'s1'"):
        docstore.remove_source("s1")


def test_articles_mentioning_a_term_are_found_inside_the_filters_any_case(docstore):
    """What a refusal checks before it says a term is missing: every article, not the passages read."""
    _put(docstore, *ARTICLES)
    assert sorted(row[0] for row in docstore.mentioning("RATES", Filters())) == ["a1", "a3"]
    assert [row[0] for row in docstore.mentioning("rates", Filters(source="daily"))] == ["a3"]
    assert [row[:2] for row in docstore.mentioning("said later", Filters(category="sport"))] == [("a2", "Élan wins the cup")]
    assert docstore.mentioning("50%", Filters()) == [("a1", ARTICLES[0].title, ARTICLES[0].text)]
    assert docstore.mentioning("5_%", Filters()) == []  # LIKE's wildcards are matched as themselves
    assert docstore.mentioning("quellan", Filters()) == []
    assert len(docstore.mentioning("happened", Filters(), limit=2)) == 2


def test_the_holder_of_a_text_is_found_whatever_its_id(docstore):
    _put(docstore, *ARTICLES[:2])
    copy = dataclasses.replace(ARTICLES[0], id="z9", title=ARTICLES[0].title.upper(), source="other")
    assert copy.text_key == ARTICLES[0].text_key  # case and spacing aside, and only title and text
    assert docstore.holders([copy.text_key, ARTICLES[1].text_key, "absent"]) == {
        copy.text_key: "a1", ARTICLES[1].text_key: "a2"}


@pytest.mark.parametrize(("filters", "passing"), [
    (Filters(category="business"), ["a1", "a3", "a4"]),
    (Filters(source="wire", since=(T0 - timedelta(days=1)).date()), ["a1", "a2"]),
    (Filters(as_of=T0 + timedelta(days=1)), ["a1", "a3", "a4", "a5"]),  # undated articles pass
    (Filters(window_start=T0 - timedelta(days=50), window_end=T0), ["a3", "a4", "a5"]),  # the end is excluded
    (Filters(category="weather"), []),
])
def test_a_filtered_search_reads_the_rows_of_the_articles_the_filters_pass(docstore, filters, passing):
    _put(docstore, *ARTICLES)
    assert sorted(docstore.article_ids_matching(filters)) == passing
    # Only the row maps are read: the snapshot's vectors and BM25 play no part in which rows pass.
    snapshot = Indexes(0, None, None, docstore.sentence_chunks(), docstore.chunk_articles())
    chunks, sentences = snapshot.rowids_of(docstore.article_ids_matching(filters))
    assert sorted(chunks.tolist()) == sorted(c for c, a in docstore.chunk_articles().items() if a in passing)
    assert sorted(sentences.tolist()) == sorted(docstore.sentence_rowids_matching(filters).tolist())


def test_a_filter_that_passes_every_article_selects_no_rows_to_search_among(docstore):
    _put(docstore, *ARTICLES)
    snapshot = Indexes(0, None, None, docstore.sentence_chunks(), docstore.chunk_articles())
    everything = docstore.article_ids_matching(Filters(as_of=T0 + timedelta(days=30)))
    assert sorted(everything) == sorted(a.id for a in ARTICLES)
    assert snapshot.rowids_of(everything) == (None, None)  # searched without an id filter
