"""Feeds on loopback: a 200-item RSS feed, Atom feed and news sitemap over Reuters pages (wrapped
in page furniture) served by the tests' own news site on 127.0.0.1, read the way `rag ingest URL`
reads them; the peer in the same run is the same pages read as .html files (`rag ingest FOLDER`'s
reader), so the ratio is what fetching costs over extraction alone.

    .venv/bin/python bench/feeds.py [--items 200] [--ingest]

Prints, per source: items/s, fetch and extraction time per page (mean/p95), dates found by source
(`meta`: the page's own metadata; `feed`/`sitemap`: the entry that listed it; none), then each
failure case and what it produced. `--ingest` also polls the RSS feed as a source through the
whole write path (chunk, embed, store): the first poll's items/s, and the next poll (a 304). No
politeness delay: one host, loopback.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import ROOT, log, terminate_on_sigterm

sys.path.insert(0, str(ROOT))  # the tests' news site: the same pages the tests fetch

from rag.config import Settings
from rag.ingest import read_file
from rag.ingest.fetch import Fetcher, FetchPolicy
from rag.ingest.fetch.crawl import Reader
from rag.types import Article, IngestFailure
from tests.support.news_site import (
    ENTITY_BOMB,
    NewsSite,
    article_page,
    atom,
    news_sitemap,
    reuters_stories,
    rss,
)


class TimedFetcher(Fetcher):
    """Records each page response's seconds (first byte asked → last byte read)."""

    def __init__(self, policy: FetchPolicy) -> None:
        super().__init__(policy)
        self.seconds: list[float] = []

    def get(self, url, validators=None, accept="text/html"):
        fetched = super().get(url, validators, accept)
        self.seconds.append(fetched.seconds)
        return fetched


def ms(values: list[float]) -> str:
    if not values:
        return "–"
    # The mean, not the median: page times here are bimodal (most pages a few ms, some tens), so
    # the median hides where the time goes.
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"{1000 * statistics.mean(ordered):.1f} / {1000 * p95:.1f}"


def timed_extract(reader: Reader, calls: list[float]):
    """Wrap the reader's extraction to time it apart from fetching."""
    original = reader.page_item

    def page_item(fetched, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(fetched, *args, **kwargs)
        finally:
            calls.append(time.perf_counter() - start)

    reader.page_item = page_item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--ingest", action="store_true", help="Also ingest the RSS feed with the model")
    args = parser.parse_args()
    terminate_on_sigterm()
    stories = reuters_stories(args.items)
    policy = FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), host_delay_s=0)
    rows = []
    with NewsSite().start() as site, tempfile.TemporaryDirectory(prefix="rag-bench-feeds-") as folder:
        # Every third page carries no date of its own; the RSS feed dates every other entry.
        urls = []
        for n, story in enumerate(stories):
            path = f"/news/{story.slug}.html"
            html = article_page(story, site.url(path), with_date=n % 3 != 0)
            site.put(path, html)
            Path(folder, f"{story.slug}.html").write_text(html, encoding="utf-8")
            urls.append(site.url(path))
        site.put("/feed.rss", rss([(u, s.title, s.published if n % 2 else None)
                                   for n, (u, s) in enumerate(zip(urls, stories))]), "application/rss+xml")
        site.put("/feed.atom", atom([(u, s.title, None, "1987-03-01T00:00:00Z") for u, s in zip(urls, stories)]),
                 "application/atom+xml")
        site.put("/news-sitemap.xml", news_sitemap([(u, s.title, s.published) for u, s in zip(urls, stories)]),
                 "application/xml")

        # The peer: the same pages as files, through the file reader (extraction alone), after one
        # page read untimed (trafilatura's first call imports and builds its tables).
        read_file(next(Path(folder).glob("*.html")), max_bytes=5_000_000)

        def read_files() -> tuple[list, list[float], float]:
            files, each = [], []
            start = time.perf_counter()
            for page in sorted(Path(folder).glob("*.html")):
                began = time.perf_counter()
                files.extend(read_file(page, max_bytes=5_000_000))
                each.append(time.perf_counter() - began)
            return files, each, time.perf_counter() - start

        # Read before and after the feeds (the machine's load drifts): the peer is the mean.
        files, each, before_s = read_files()
        feed_rows = []
        for name, path in (("RSS 2.0", "/feed.rss"), ("Atom", "/feed.atom"), ("news sitemap", "/news-sitemap.xml")):
            fetcher = TimedFetcher(policy)
            reader = Reader(fetcher)
            extract: list[float] = []
            timed_extract(reader, extract)
            start = time.perf_counter()
            items = list(reader.read(site.url(path)))
            wall = time.perf_counter() - start
            found = [i for i in items if isinstance(i, Article)]
            failed = [i for i in items if isinstance(i, IngestFailure)]
            feed_rows.append((name, len(found), len(failed), len(found) / wall, ms(fetcher.seconds[1:]), ms(extract),
                              Counter(a.date_source or "none" for a in found)))
            log(f"{name}: {len(found)} articles in {wall:.1f} s")
        _, after, after_s = read_files()
        peer_rate = 2 * len(files) / (before_s + after_s)
        rows.append(("files (peer)", len(files), 0, peer_rate, "–", ms(each + after),
                     Counter(a.date_source or "none" for a in files if isinstance(a, Article)), 1.0))
        rows.extend((*row, row[3] / peer_rate) for row in feed_rows)

        print(f"\n{args.items} items on loopback, no politeness delay\n")
        print("| source | articles | failed | items/s | fetch ms mean / p95 | extract ms mean / p95 | dates by source "
              "| items/s ÷ files |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, n, bad, rate, fetch, extract, dates, ratio in rows:
            dates_text = ", ".join(f"{k} {v}" for k, v in sorted(dates.items()))
            print(f"| {name} | {n} | {bad} | {rate:.1f} | {fetch} | {extract} | {dates_text} | {ratio:.2f} |")

        if args.ingest:
            from dataclasses import replace
            from datetime import UTC, datetime

            from rag.service import build_service

            with tempfile.TemporaryDirectory(prefix="rag-bench-feeds-index-") as index:
                settings = Settings(index_dir=Path(index), fetch_allow_hosts="127.0.0.1", fetch_host_delay_s=0)
                service = build_service(settings)
                try:
                    poller = service.poller()
                    source = service.add_source(site.url("/feed.rss"), 900)
                    start = time.perf_counter()
                    first = poller.poll(source)
                    first_s = time.perf_counter() - start
                    source = replace(service.store.docstore.source(source.id), next_poll_at=datetime.now(UTC))
                    start = time.perf_counter()
                    again = poller.poll(source)
                    again_s = time.perf_counter() - start
                finally:
                    service.close()
            print(f"\nPolled source, first poll (fetch, extract, chunk, embed, store, in batches of 50): "
                  f"{len(first.ingested)} articles in {first_s:.1f} s, {len(first.ingested) / first_s:.1f} items/s; "
                  f"the next poll: {'304' if again.not_modified else 'not a 304'} in {1000 * again_s:.0f} ms")

        print("\n| failure case | what it produced |")
        print("| --- | --- |")
        site.put("/500.html", "down", "text/plain", status=500)
        site.put("/slow.html", "<p>late</p>", delay_s=3)
        site.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/")
        site.redirect("/to-private", "http://10.0.0.1/admin")
        site.put("/huge.html", "<p>" + "x" * 6_000_000 + "</p>", declare_length=False)
        site.put("/image.png", b"\x89PNG", "image/png")
        site.put("/bomb.rss", ENTITY_BOMB, "application/rss+xml")
        site.put("/broken.rss", "<rss><channel><item><title>Half", "application/rss+xml")
        cases = [("HTTP 500", "/500.html"), ("timeout (read 1 s)", "/slow.html"),
                 ("redirect to 169.254.169.254", "/to-metadata"), ("redirect to 10.0.0.1", "/to-private"),
                 ("6 MB page, no Content-Length", "/huge.html"), ("image/png", "/image.png"),
                 ("entity bomb", "/bomb.rss"), ("malformed feed", "/broken.rss")]
        reader = Reader(Fetcher(FetchPolicy(allow_hosts=frozenset({"127.0.0.1"}), host_delay_s=0,
                                            read_timeout_s=1)))
        for name, path in cases:
            start = time.perf_counter()
            [result] = list(reader.read(site.url(path)))
            took = time.perf_counter() - start
            what = result.reason if isinstance(result, IngestFailure) else f"article {result.id}"
            print(f"| {name} | {what.replace(site.url(''), '')} ({took:.2f} s) |")


if __name__ == "__main__":
    main()
