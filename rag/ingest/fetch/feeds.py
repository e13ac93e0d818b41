"""Feeds and sitemaps → the URLs of their items, with the dates they give.

Read: RSS 2.0 (and RSS 1.0/RDF), Atom 1.0, sitemaps (`<urlset>`, with `<lastmod>`), Google news
sitemaps (`<news:publication_date>`, `<news:title>`) and sitemap indexes (`<sitemapindex>`,
whose entries are sitemaps). XML is parsed with lxml with entity expansion, DTD loading and
network access off, and a document that declares entities is refused outright: nothing a feed
needs is declared that way, and the billion-laughs and external-entity attacks are (OWASP XXE
cheat sheet; defusedxml refuses the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urljoin

import lxml.etree

from rag.ingest.cleaning import one_line

ATOM = "http://www.w3.org/2005/Atom"
RSS1 = "http://purl.org/rss/1.0/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC = "http://purl.org/dc/elements/1.1/"
SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS = "http://www.google.com/schemas/sitemap-news/0.9"

Kind = Literal["rss", "atom", "rdf", "sitemap", "sitemap-index"]


class NotAFeed(ValueError):
    """The document is not a feed or sitemap (or not XML at all); the message says what it is."""


class MalformedFeed(ValueError):
    """The document is XML that cannot be read safely or at all; the message says why."""


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One entry: the page it links to, and what the feed says of it."""

    url: str
    title: str | None = None
    published: datetime | None = None  # RSS pubDate, Atom published, news:publication_date
    updated: str | None = None  # the entry's change marker as given (Atom updated, lastmod)

    @property
    def signature(self) -> str:
        """Changes when the feed says the page changed: a poller fetches it again then."""
        return f"{self.published.isoformat() if self.published else ''}|{self.updated or ''}"


@dataclass(frozen=True, slots=True)
class Feed:
    kind: Kind
    items: tuple[FeedItem, ...]
    skipped: tuple[str, ...] = ()  # why entries were left out (no link, not http(s))
    date_source: str = "feed"  # how an item's `published` is named as a date source


_DOCTYPE = re.compile(rb"<!DOCTYPE[^\[>]*(?:\[.*?\]\s*)?>", re.DOTALL)
_ENTITIES_REFUSED = ("the XML declares entities in its DOCTYPE: refused, as entity expansion is how XML bombs "
                     "(billion laughs) and external-entity reads work")


def parse_xml(data: bytes) -> lxml.etree._Element:
    """The root element; MalformedFeed if the XML is broken or declares entities."""
    doctype = _DOCTYPE.search(data[:65536])
    if doctype and b"<!ENTITY" in doctype.group(0):
        raise MalformedFeed(_ENTITIES_REFUSED)  # said before libxml2's own amplification guard trips
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                                  remove_comments=True, remove_pis=True)
    try:
        root = lxml.etree.fromstring(data, parser)
    except lxml.etree.XMLSyntaxError as error:
        raise MalformedFeed(f"malformed XML ({error})") from None
    if root is None:
        raise MalformedFeed("malformed XML (no root element)")
    dtd = root.getroottree().docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        raise MalformedFeed(_ENTITIES_REFUSED)
    return root


def read_feed(data: bytes, base_url: str, max_items: int) -> Feed:
    """A feed or sitemap's items, relative links resolved against `base_url`, at most `max_items`.
    NotAFeed for XML of another kind (e.g. XHTML), MalformedFeed for broken XML."""
    root = parse_xml(data)
    tag = lxml.etree.QName(root).localname.lower()
    namespace = lxml.etree.QName(root).namespace
    if tag == "rss":
        channel = root.find("channel")
        entries = channel.findall("item") if channel is not None else []
        return _collect("rss", (_rss_item(e, base_url) for e in entries), max_items)
    if tag == "feed" and namespace == ATOM:
        base = _base(root, base_url)
        return _collect("atom", (_atom_entry(e, base) for e in root.iter(f"{{{ATOM}}}entry")), max_items)
    if tag == "rdf" and namespace == RDF:
        entries = root.findall(f"{{{RSS1}}}item")
        return _collect("rdf", (_rdf_item(e, base_url) for e in entries), max_items)
    if tag == "urlset":
        ns = namespace or ""
        items = _collect("sitemap", (_sitemap_url(e, ns, base_url) for e in root.iter(_q(ns, "url"))), max_items)
        news = root.find(f".//{{{NEWS}}}publication_date") is not None
        return Feed(items.kind, items.items, items.skipped, date_source="sitemap" if news else "feed")
    if tag == "sitemapindex":
        ns = namespace or ""
        return _collect("sitemap-index", (_sitemap_url(e, ns, base_url) for e in root.iter(_q(ns, "sitemap"))),
                        max_items)
    raise NotAFeed(f"XML whose root is <{tag}>, not an RSS or Atom feed or a sitemap")


def _collect(kind: Kind, entries, max_items: int) -> Feed:
    items: list[FeedItem] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, start=1):
        if isinstance(entry, str):
            skipped.append(f"entry {n}: {entry}")
            continue
        if entry.url in seen:
            continue
        if len(items) == max_items:
            skipped.append(f"entries past the first {max_items} (RAG_FEED_MAX_ITEMS) were not read")
            break
        seen.add(entry.url)
        items.append(entry)
    return Feed(kind, tuple(items), tuple(skipped))


def _rss_item(item: lxml.etree._Element, base_url: str) -> FeedItem | str:
    link = _text(item.find("link"))
    guid = item.find("guid")
    if not link and guid is not None and guid.get("isPermaLink", "true").lower() != "false":
        link = _text(guid)
    date = _rfc822(_text(item.find("pubDate"))) or _iso8601(_text(item.find(f"{{{DC}}}date")))
    return _item(link, base_url, _text(item.find("title")), date, None)


def _rdf_item(item: lxml.etree._Element, base_url: str) -> FeedItem | str:
    link = _text(item.find(f"{{{RSS1}}}link")) or item.get(f"{{{RDF}}}about")
    return _item(link, base_url, _text(item.find(f"{{{RSS1}}}title")),
                 _iso8601(_text(item.find(f"{{{DC}}}date"))), None)


def _atom_entry(entry: lxml.etree._Element, base_url: str) -> FeedItem | str:
    base = _base(entry, base_url)
    link = None
    for candidate in entry.findall(f"{{{ATOM}}}link"):
        if candidate.get("rel", "alternate") == "alternate" and candidate.get("href"):
            link = candidate.get("href")
            break
    updated = _text(entry.find(f"{{{ATOM}}}updated"))
    published = _iso8601(_text(entry.find(f"{{{ATOM}}}published")))
    return _item(link, base, _text(entry.find(f"{{{ATOM}}}title")), published, updated)


def _sitemap_url(entry: lxml.etree._Element, ns: str, base_url: str) -> FeedItem | str:
    news = entry.find(f"{{{NEWS}}}news")
    title = published = None
    if news is not None:
        title = _text(news.find(f"{{{NEWS}}}title"))
        published = _iso8601(_text(news.find(f"{{{NEWS}}}publication_date")))
    return _item(_text(entry.find(_q(ns, "loc"))), base_url, title, published, _text(entry.find(_q(ns, "lastmod"))))


def _item(link: str | None, base_url: str, title: str | None, published: datetime | None,
          updated: str | None) -> FeedItem | str:
    if not link:
        return "no link"
    url = urljoin(base_url, link.strip())
    if not url.lower().startswith(("http://", "https://")):
        return f"link {link.strip()[:200]!r} is not an http(s) URL"
    return FeedItem(url=url, title=one_line(title) if title else None, published=published, updated=updated)


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}" if namespace else name


def _base(element: lxml.etree._Element, base_url: str) -> str:
    base = element.get("{http://www.w3.org/XML/1998/namespace}base")
    return urljoin(base_url, base) if base else base_url


def _text(element: lxml.etree._Element | None) -> str | None:
    if element is None:
        return None
    text = "".join(element.itertext()).strip()
    return text or None


def _rfc822(value: str | None) -> datetime | None:
    """RSS dates ("Tue, 03 Jun 2003 09:39:21 GMT"); a feed's bad date is a missing hint, not an error."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return _iso8601(value)  # some feeds put ISO dates in pubDate
    return _utc(parsed)


def _iso8601(value: str | None) -> datetime | None:
    """W3C datetimes (Atom, sitemaps): 2024-03-22, 2024-03-22T10:00Z, with an offset."""
    if not value:
        return None
    try:
        return _utc(datetime.fromisoformat(value.strip()))
    except ValueError:
        return None


def _utc(value: datetime) -> datetime | None:
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
