"""URLs → Articles: an SSRF-safe fetcher, RSS/Atom feeds and sitemaps, pages, and polled sources.

`read_url` is the one entry point for `rag ingest URL` and `POST /articles {"url"}`: a feed or
sitemap yields each item's page, a page yields itself; every failure names its URL and never
stops the other items. `Poller` keeps the sources of the docstore up to date in `rag serve`.
"""

from rag.ingest.fetch.client import Fetched, Fetcher, FetchPolicy, Validators
from rag.ingest.fetch.crawl import is_url, read_url

__all__ = ["FetchPolicy", "Fetched", "Fetcher", "Validators", "is_url", "read_url"]
