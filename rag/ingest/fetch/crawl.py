"""A URL → its articles: a feed's or sitemap's items each fetched and extracted, or the page itself.

Every failure is an IngestFailure naming the URL and why (refused, HTTP error, timeout, too
large, no text), and one bad item never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rag.errors import InvalidInput, RagError
from rag.ingest.fetch.client import Fetched, Fetcher, Validators
from rag.ingest.fetch.feeds import Feed, FeedItem, MalformedFeed, NotAFeed, read_feed
from rag.ingest.fetch.pages import NoArticle, page_article
from rag.types import Article, IngestFailure

FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.9, "
               "text/html;q=0.8, text/*;q=0.5")
PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, text/plain;q=0.5"
_PAGE_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/plain"})
_XML_START = (b"<?xml", b"<rss", b"<feed", b"<urlset", b"<sitemapindex", b"<rdf:RDF")
MAX_SITEMAPS = 50  # child sitemaps read from one sitemap index

Item = Article | IngestFailure


def is_url(value: str) -> bool:
    """Whether a command-line argument names a URL rather than a file (any scheme: an ftp://
    argument must be refused as a URL, not looked for as a file)."""
    head, sep, _ = value.partition("://")
    return bool(sep) and head.isalpha()


def as_feed(fetched: Fetched, max_items: int) -> Feed | None:
    """The feed or sitemap in a response, or None if it is a page. MalformedFeed when it is XML
    that cannot be read (broken, or declaring entities)."""
    start = fetched.body[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if fetched.content_type in _PAGE_TYPES and not start.startswith(_XML_START):
        return None
    try:
        return read_feed(fetched.body, fetched.url, max_items)
    except NotAFeed:
        return None  # XHTML served as XML: a page


@dataclass
class Reader:
    """Reads URLs into articles with one fetcher (its politeness is shared by every item)."""

    fetcher: Fetcher
    max_items: int = 1000

    def read(self, url: str, category: str | None = None, seen: set[str] | None = None) -> Iterator[Item]:
        """The articles at `url`. An article whose id is in `seen` (the same story reached
        through another entry, or another URL of the same run) is passed over; ids are added."""
        seen = set() if seen is None else seen
        try:
            fetched = self.fetcher.get(url, accept=FEED_ACCEPT)
            feed = as_feed(fetched, self.max_items)
        except (RagError, MalformedFeed) as error:
            yield IngestFailure(url, str(error))
            return
        if feed is None:
            page = self.page_item(fetched, url, category)
            if isinstance(page, Article):
                if page.id in seen:
                    return
                seen.add(page.id)
            yield page
            return
        for origin, item, date_source in self.items(url, feed):
            if isinstance(item, IngestFailure):
                yield item
                continue
            article = self.item_article(item, category, origin, date_source)[0]
            if isinstance(article, Article):
                if article.id in seen:  # two entries for one story (a tracking link and the page)
                    continue
                seen.add(article.id)
            yield article

    def page(self, url: str, category: str | None = None) -> Article:
        """One article page; raises what went wrong (FetchRefused, FetchFailed, InvalidInput)."""
        fetched = self.fetcher.get(url, accept=PAGE_ACCEPT)
        try:
            feed = as_feed(fetched, self.max_items)
        except MalformedFeed as error:
            raise InvalidInput(f"{fetched.url}: {error}") from None
        if feed is not None:
            raise InvalidInput(f"{url} is a {feed.kind.replace('-', ' ')}, not an article page: add it as a source "
                               "(POST /sources) or ingest it with `rag ingest URL`")
        item = self.page_item(fetched, url, category)
        if isinstance(item, IngestFailure):
            raise InvalidInput(item.reason)
        return item

    def items(self, url: str, feed: Feed) -> Iterator[tuple[str, FeedItem | IngestFailure, str]]:
        """(origin, item or why an entry was skipped, date source) of a feed; a sitemap index's
        child sitemaps are read in turn (one level; at most MAX_SITEMAPS and `max_items` in all)."""
        for reason in feed.skipped:
            yield url, IngestFailure(url, reason), feed.date_source
        if feed.kind != "sitemap-index":
            for n, item in enumerate(feed.items, start=1):
                yield f"{url} item {n}", item, feed.date_source
            return
        budget = self.max_items
        for child in feed.items[:MAX_SITEMAPS]:
            if budget <= 0:
                break
            try:
                fetched = self.fetcher.get(child.url, accept=FEED_ACCEPT)
                sitemap = as_feed(fetched, budget)
                if sitemap is None or sitemap.kind == "sitemap-index":
                    raise MalformedFeed("not a sitemap (a sitemap index lists sitemaps, one level deep)")
            except (RagError, MalformedFeed) as error:
                yield child.url, IngestFailure(f"{url} sitemap {child.url}", str(error)), feed.date_source
                continue
            budget -= len(sitemap.items)
            yield from self.items(child.url, sitemap)
        if len(feed.items) > MAX_SITEMAPS:
            yield url, IngestFailure(url, f"sitemaps past the first {MAX_SITEMAPS} were not read"), feed.date_source

    def item_article(self, item: FeedItem, category: str | None, origin: str, date_source: str,
                     validators: Validators | None = None) -> tuple[Item | None, Fetched | None]:
        """The article of one feed item (None if the page is unchanged since `validators`), and
        the response it came from."""
        try:
            fetched = self.fetcher.get(item.url, validators, accept=PAGE_ACCEPT)
        except RagError as error:
            return IngestFailure(origin, str(error)), None
        if fetched.not_modified:
            return None, fetched
        if fetched.content_type not in _PAGE_TYPES:
            return IngestFailure(origin, f"{fetched.url}: {fetched.content_type} is not a page"), fetched
        return self.page_item(fetched, origin, category, item, date_source), fetched

    def page_item(self, fetched: Fetched, origin: str, category: str | None, item: FeedItem | None = None,
                  date_source: str = "feed") -> Item:
        """The article on a fetched page (dated by `item` when the page carries no date), or why not."""
        try:
            return page_article(fetched, category=category, origin=origin,
                                feed_date=item.published if item else None, feed_date_source=date_source,
                                feed_title=item.title if item else None)
        except NoArticle as error:
            return IngestFailure(origin, f"{fetched.url}: {error}")
        except Exception as error:  # noqa: BLE001 - an extractor's own bug must fail one page, not the feed
            return IngestFailure(origin, f"{fetched.url}: cannot extract the page: {type(error).__name__}: {error}")


def read_url(fetcher: Fetcher, url: str, category: str | None = None, max_items: int = 1000) -> Iterator[Item]:
    """The articles at `url` (a feed's or sitemap's items, or the page), failures included."""
    return Reader(fetcher, max_items).read(url, category)
