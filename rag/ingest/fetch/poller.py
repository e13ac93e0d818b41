"""Polled sources: each due source is fetched with its validators (ETag / Last-Modified, so an
unchanged feed costs one 304), its new or changed items are fetched and ingested, and how it
went is saved on the source (last fetched, last new article, last error). A failing source backs
off exponentially; requests to one host are spaced by the fetcher's politeness delay.

Nothing acknowledged is lost and nothing is ingested twice: an item is remembered as seen only
after its article is committed, so a crash in between means fetching it again next time, when
its unchanged content hash makes it a no-op. An item is fetched again when the feed's entry for
it changes (its date or Atom <updated> / sitemap <lastmod>), with the page's own validators; a
page source is fetched again every poll (conditionally), and a changed page replaces its
article's chunks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from rag.errors import FetchFailed, InvalidInput, RagError
from rag.ingest.fetch.client import Validators
from rag.ingest.fetch.crawl import FEED_ACCEPT, Reader, as_feed
from rag.ingest.fetch.feeds import MalformedFeed
from rag.ingest.fetch.guard import parse_target, resolve
from rag.ingest.ids import id_from_url, normalize_url
from rag.store.docstore import Docstore
from rag.types import Article, IngestFailure, IngestReport, Source, SourceItem

log = logging.getLogger(__name__)

Ingest = Callable[[Iterable[Article | IngestFailure]], IngestReport]
MAX_BACKOFF_S = 6 * 3600  # a failing source is still tried four times a day (or at its own interval, if longer)
BATCH = 50  # articles committed per ingest call at most: a long first poll keeps what it finished


@dataclass
class PollResult:
    source_id: str
    not_modified: bool = False
    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[IngestFailure] = field(default_factory=list)
    error: str | None = None  # the source itself could not be read


def parse_every(value: str) -> int:
    """`15m`, `1h`, `30s`, `1h30m`, `2d` or bare seconds → seconds (at least 1). ValueError says why."""
    text = value.strip().lower()
    if text.isdigit():
        seconds = int(text)
    else:
        seconds, number = 0, ""
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
        for ch in text:
            if ch.isdigit():
                number += ch
            elif ch in units and number:
                seconds += int(number) * units[ch]
                number = ""
            else:
                number = "bad"
                break
        if number or not text:
            raise ValueError(f"{value!r} is not an interval (e.g. 15m, 1h, 90s, 1h30m)")
    if seconds < 1:
        raise ValueError(f"{value!r}: the interval must be at least 1 second")
    return seconds


def new_source(url: str, every_s: int, category: str | None, allow_hosts: frozenset[str]) -> Source:
    """A source to store for `url`, due at once. Refused now if it could never be fetched (not
    http(s), or a private address); a name that does not resolve yet is the poller's to report."""
    target = parse_target(url)
    try:
        resolve(target, allow_hosts)
    except FetchFailed:
        pass
    if every_s < 1:
        raise InvalidInput(f"every: must be at least 1 second, got {every_s}")
    now = datetime.now(UTC)
    normalized = normalize_url(url)
    return Source(id=id_from_url(normalized), url=normalized, every_s=every_s,
                  category=category.strip().lower() or None if category else None, added_at=now, next_poll_at=now)


class Poller:
    """Polls the docstore's due sources; `poll_due` once, or `start` a background thread."""

    def __init__(self, docstore: Docstore, reader: Reader, ingest: Ingest,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), tick_s: float = 1.0,
                 batch: int = BATCH) -> None:
        self.docstore = docstore
        self.batch = batch
        self.reader = reader
        self.ingest = ingest
        self.clock = clock
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the loop ------------------------------------------------------------------------------
    def start(self) -> Poller:
        self._thread = threading.Thread(target=self._run, name="rag-poller", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_due()
            except Exception:  # the loop outlives any one bad poll (a docstore busy, a bug); it is logged
                log.exception("polling sources failed; trying again")
            self._stop.wait(self.tick_s)

    def poll_due(self) -> list[PollResult]:
        results = []
        for source in self.docstore.due_sources(self.clock()):
            if self._stop.is_set():
                break
            try:
                results.append(self.poll(source))
            except Exception as error:  # a bug or a docstore error: the source backs off, the others go on
                log.exception("polling source %s failed", source.id)
                result = PollResult(source.id, error=f"{type(error).__name__}: {error}")
                self._record(source, result, validators=None)
                results.append(result)
        return results

    # -- one source ----------------------------------------------------------------------------
    def poll(self, source: Source) -> PollResult:
        result = PollResult(source.id)
        try:
            fetched = self.reader.fetcher.get(source.url, Validators(source.etag, source.last_modified),
                                              accept=FEED_ACCEPT)
            feed = None if fetched.not_modified else as_feed(fetched, self.reader.max_items)
        except (RagError, MalformedFeed) as error:
            result.error = str(error)
            self._record(source, result, validators=None)
            return result
        if fetched.not_modified:
            result.not_modified = True
            self._record(source, result, validators=fetched.validators)
            return result
        pending: list[tuple[Article | IngestFailure | None, SourceItem | None]] = []
        interrupted = False
        if feed is None:  # the source is a page
            pending.append((self.reader.page_item(fetched, source.url, source.category), None))
        else:
            known = self.docstore.source_items(source.id)
            ids: set[str] = set()  # articles of this poll: two entries for one story store it once
            for origin, item, date_source in self.reader.items(source.url, feed):
                if self._stop.is_set():
                    interrupted = True
                    break
                if isinstance(item, IngestFailure):
                    result.failed.append(item)
                    continue
                seen = known.get(item.url)
                if seen is not None and seen.article_id and seen.signature == item.signature:
                    continue  # the feed says nothing changed
                validators = Validators(seen.etag, seen.last_modified) if seen and seen.article_id else None
                article, response = self.reader.item_article(item, source.category, origin, date_source, validators)
                if article is None:  # 304: the page is as it was
                    pending.append((None, replace(seen, signature=item.signature)))
                elif isinstance(article, IngestFailure):
                    result.failed.append(article)
                else:
                    state = SourceItem(item.url, item.signature, response.validators.etag,
                                       response.validators.last_modified, article.id)
                    pending.append((None if article.id in ids else article, state))
                    ids.add(article.id)
                if len(pending) >= self.batch:
                    self._commit(source, pending, result)
                    pending = []
        self._commit(source, pending, result)
        if feed is None and not (result.ingested or result.unchanged) and result.failed:
            result.error = result.failed[0].reason
        # The feed's validators are kept only when all of it was read: otherwise the next poll
        # would get a 304 and never retry the items that failed (or were not reached).
        complete = not (result.failed or interrupted)
        self._record(source, result, validators=fetched.validators if complete else Validators())
        return result

    def _commit(self, source: Source, pending: list, result: PollResult) -> None:
        """Ingest the articles, then remember the items whose article is stored (only those)."""
        articles = [article for article, _ in pending if article is not None]
        stored: set[str] = set()
        if articles:
            report = self.ingest(articles)
            result.ingested += report.ingested
            result.unchanged += report.unchanged
            result.failed += report.failed
            stored = set(report.ingested) | set(report.unchanged)
        items = [item for article, item in pending if item is not None and (article is None or item.article_id in stored)]
        if items:
            self.docstore.put_source_items(source.id, items)

    def _record(self, source: Source, result: PollResult, validators: Validators | None) -> None:
        now = self.clock()
        if result.error is not None:
            failures = source.failures + 1
            delay = min(source.every_s * 2 ** min(failures, 20), max(source.every_s, MAX_BACKOFF_S))
            updated = replace(source, last_error=result.error, last_error_at=now, failures=failures,
                              next_poll_at=now + timedelta(seconds=delay))
            log.warning("source %s failed (%d in a row; next try in %d s): %s", source.id, failures, delay,
                        result.error)
        else:
            problem = _summary(result.failed)
            updated = replace(
                source, etag=validators.etag, last_modified=validators.last_modified,
                last_fetched_at=now, last_new_article_at=now if result.ingested else source.last_new_article_at,
                last_error=problem, last_error_at=now if problem else source.last_error_at, failures=0,
                next_poll_at=now + timedelta(seconds=source.every_s))
        self.docstore.record_poll(updated)


def _summary(failures: list[IngestFailure]) -> str | None:
    if not failures:
        return None
    first = str(failures[0])
    return first if len(failures) == 1 else f"{len(failures)} items failed; the first: {first}"
