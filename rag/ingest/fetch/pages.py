"""A fetched page → Article: main text, title, author and date by trafilatura (through
`rag.ingest.html`, which first strips hidden text), the id from the canonical URL.

The canonical URL (`<link rel=canonical>`, og:url) names the story whichever feed or tracking
link led to it, so the same story seen through two feeds is one article. It is believed only on
the host that served the page (or its www. twin): a page may not claim another site's URL, which
would let it replace that site's article.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urljoin, urlsplit

from rag.ingest.cleaning import clean_text, fallback_title
from rag.ingest.dates import Dated, find_date
from rag.ingest.fetch.client import Fetched
from rag.ingest.html import read_html
from rag.ingest.ids import id_from_url, normalize_url
from rag.ingest.readers import decode
from rag.types import Article

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


class NoArticle(ValueError):
    """The page holds no article text (or cannot be decoded); the message says why."""


def page_text(fetched: Fetched) -> str:
    """The body as text: the charset the server names, else the page's <meta charset>, else
    UTF-8 (or sparse cp1252, as for files)."""
    charset = fetched.charset
    if charset is None and fetched.content_type in ("text/html", "application/xhtml+xml"):
        found = _META_CHARSET.search(fetched.body[:4096])
        charset = found.group(1).decode("ascii").lower() if found else None
    if charset:
        try:
            return fetched.body.decode(charset, errors="replace")
        except LookupError:
            pass  # a charset Python does not know: try UTF-8
    try:
        return decode(fetched.body)
    except ValueError as error:
        raise NoArticle(str(error)) from None


def page_article(fetched: Fetched, *, category: str | None = None, feed_date: datetime | None = None,
                 feed_date_source: str = "feed", feed_title: str | None = None, origin: str | None = None) -> Article:
    """The article on a fetched page. Its date is the page's own metadata (`date_source` "meta"),
    else the date the feed or sitemap gave for it; NoArticle if there is no text."""
    text = page_text(fetched)
    if fetched.content_type == "text/plain":
        title, body = clean_text(text)
        author = source = canonical = None
        meta = None
    else:
        page = read_html(text)
        title, body, author, source = page.title, page.text, page.author, page.source
        canonical = _same_site(page.canonical or page.url, fetched.url)
        meta = page.published_at  # a page's date metadata it cannot parse is a hint lost, not a refusal
    if not body:
        raise NoArticle("no article text after cleaning")
    url = canonical or normalize_url(fetched.url)
    # The page's own metadata first, then the date the feed or sitemap gave, then its URL or dateline.
    dated = find_date(meta=meta, url=url, text=body)
    if dated.source not in ("meta",) and feed_date is not None:
        dated = Dated(feed_date, feed_date_source)
    published, date_source = dated.published_at, dated.source
    return Article(
        id=id_from_url(url),
        title=title or feed_title or fallback_title(body),
        text=body,
        source=source or urlsplit(url).hostname,
        url=url,
        published_at=published,
        category=category.lower() if category else None,
        origin=origin or fetched.url,
        author=author,
        date_source=date_source,
    )


def _same_site(canonical: str | None, fetched_url: str) -> str | None:
    """The canonical URL, absolute, if it is on the host that served the page; else None."""
    if not canonical:
        return None
    absolute = urljoin(fetched_url, canonical.strip())
    try:
        claimed, served = urlsplit(absolute), urlsplit(fetched_url)
    except ValueError:
        return None
    if claimed.scheme not in ("http", "https") or not claimed.hostname:
        return None
    if (claimed.hostname or "").removeprefix("www.") != (served.hostname or "").removeprefix("www."):
        return None
    if _port(claimed) != _port(served) and not (claimed.port is None and served.port is None):
        return None  # another port is another site (http → https on default ports is the same one)
    return normalize_url(absolute)


def _port(parts) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)
