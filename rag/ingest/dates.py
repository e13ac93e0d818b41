"""An article's publication date, and where it came from.

Sources, in the order trusted (the first that gives a date wins):
- `record`: the `published_at` field of a JSON record or request;
- `meta`: the page's own metadata: `<meta property="article:published_time">` (Open Graph),
  JSON-LD `datePublished`, `itemprop="datePublished"`, `<time datetime>`, the common `pubdate` /
  `dc.date` meta names, then trafilatura's metadata date (htmldate reading meta tags only);
- `url`: a date in the URL's path, `/2024/03/22/` or `/2024-03-22/` or `/20240322/`;
- `dateline`: a wire dateline opening the text, "LONDON, March 3 -", the year the dateline
  writes, else the one that puts the date last on or before the reference date (the ingest date);
- `none`: nothing found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import lxml.html

from rag.when.resolve import MONTHS

DateSource = Literal["record", "meta", "url", "dateline", "none", "feed", "sitemap"]
DATE_SOURCES: tuple[DateSource, ...] = ("record", "meta", "url", "dateline", "feed", "sitemap", "none")


@dataclass(frozen=True, slots=True)
class Dated:
    published_at: datetime | None
    source: DateSource


UNDATED = Dated(None, "none")


def parse_iso(value: str) -> datetime | None:
    """An ISO 8601 date or datetime → aware UTC datetime (naive = UTC); None if it is not one."""
    text = value.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # Pages write "2024-03-22T10:00:00.000+0000" and the like: try the date part alone.
        m = re.match(r"(\d{4}-\d\d-\d\d)", text)
        if not m:
            return None
        try:
            parsed = datetime.fromisoformat(m.group(1))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        return None


# -- meta -------------------------------------------------------------------------------------
_META_NAMES = ("article:published_time", "og:article:published_time", "datepublished", "pubdate",
               "publishdate", "publish-date", "publication_date", "sailthru.date", "dc.date.issued",
               "dc.date", "dcterms.created", "date")


def date_from_meta(root: lxml.html.HtmlElement) -> datetime | None:
    """The publication date a page declares; read before hidden elements (JSON-LD scripts) go."""
    by_name: dict[str, str] = {}
    for meta in root.iter("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        if key and key not in by_name and meta.get("content"):
            by_name[key] = meta.get("content", "")
    for key in _META_NAMES[:2]:
        if key in by_name and (found := parse_iso(by_name[key])):
            return found
    for value in _json_ld_dates(root):
        if found := parse_iso(value):
            return found
    for key in _META_NAMES[2:]:
        if key in by_name and (found := parse_iso(by_name[key])):
            return found
    times = list(root.iter("time"))
    # A <time> marked as the publication date first, then the first one with a datetime.
    times.sort(key=lambda t: not (t.get("pubdate") is not None or t.get("itemprop") == "datePublished"))
    for element in times:
        if element.get("datetime") and (found := parse_iso(element.get("datetime", ""))):
            return found
    return None


def _json_ld_dates(root: lxml.html.HtmlElement) -> Iterator[str]:
    for script in root.iter("script"):
        if (script.get("type") or "").strip().lower() != "application/ld+json":
            continue
        try:
            data = json.loads(script.text_content())
        except (ValueError, RecursionError):
            continue
        yield from _find_key(data, "datePublished", depth=0)


def _find_key(data: object, key: str, depth: int) -> Iterator[str]:
    if depth > 6:
        return
    if isinstance(data, dict):
        if isinstance(data.get(key), str):
            yield data[key]
        for value in data.values():
            yield from _find_key(value, key, depth + 1)
    elif isinstance(data, list):
        for value in data:
            yield from _find_key(value, key, depth + 1)


# -- url --------------------------------------------------------------------------------------
_URL_DATE = re.compile(r"/((?:19|20)\d\d)([/-]?)([01]\d)\2([0-3]\d)(?=[/._-]|$)")


def date_from_url(url: str | None) -> datetime | None:
    """A date written in a URL's path (`/2024/03/22/`, `/2024-03-22-title`, `/20240322/`)."""
    if not url:
        return None
    path = re.sub(r"^[a-z][a-z0-9+.-]*://[^/]*", "", url.split("?", 1)[0].split("#", 1)[0], flags=re.IGNORECASE)
    for m in _URL_DATE.finditer(path):
        try:
            return datetime(int(m[1]), int(m[3]), int(m[4]), tzinfo=UTC)
        except ValueError:
            continue
    return None


# -- dateline ---------------------------------------------------------------------------------
_MONTH_WORD = "|".join(sorted((re.escape(m) for m in MONTHS), key=len, reverse=True))
# "LONDON, March 3 -", "NEW YORK, Feb. 26 -", "DAYTON, Ohio, March 5 -": a capitalised place (one
# or two commas), a month and day, a dash; at the very start of the text.
_DATELINE = re.compile(
    rf"\A\s*[A-Z][A-Za-z.'&\- ]{{1,40}}(?:,\s*[A-Z][A-Za-z.'\- ]{{1,30}})?,\s*(?P<m>(?i:{_MONTH_WORD}))\.?\s+"
    r"(?P<d>[0-3]?\d)(?:,\s*(?P<y>(?:19|20)\d\d))?\s*(?:-|–|—|\()")


def date_from_dateline(text: str, reference: date) -> datetime | None:
    """The date of a dateline opening `text`. Datelines give no year: it is the one the dateline
    writes, else the one that puts the date last on or before `reference` (the day after it too: a
    dateline is local time, and may run a day ahead of UTC). The years a story names are no guide:
    of the 6,948 Reuters-21578 stories that name a year, 1,816 name 1987 as their latest (earnings
    stories name last year's figures, forecasts the years ahead), and 12,095 name none."""
    m = _DATELINE.match(text[:200])
    if not m:
        return None
    month, day = MONTHS[m["m"].lower()], int(m["d"])
    if m["y"]:
        year = int(m["y"])
    else:
        ahead = reference + timedelta(days=1)
        year = ahead.year if (month, day) <= (ahead.month, ahead.day) else ahead.year - 1
    try:
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return None


def find_date(*, record: datetime | None = None, meta: datetime | None = None, url: str | None = None,
              text: str = "", reference: date | None = None) -> Dated:
    """The article's date from the most trusted source that has one."""
    if record is not None:
        return Dated(record, "record")
    if meta is not None:
        return Dated(meta, "meta")
    if (found := date_from_url(url)) is not None:
        return Dated(found, "url")
    if (found := date_from_dateline(text, reference or datetime.now(UTC).date())) is not None:
        return Dated(found, "dateline")
    return UNDATED
