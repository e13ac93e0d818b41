"""Polled sources through the real stack: the poller against a news site of the tests' own on
127.0.0.1 (new items, 304s, changed pages, failures and backoff, a restart of the site), the
sources over HTTP and the CLI, and `rag serve` killed with -9 in the middle of a poll."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rag.api.app import create_app
from rag.config import Settings
from rag.errors import FetchRefused
from rag.service import build_service
from tests.support.news_site import NewsSite, article_page, atom, reuters_stories, rss
from tests.support.paths import RAG
from tests.support.servers import free_port, live_server


class Clock:
    """The poller's idea of now, moved by the test (the site and the fetcher keep real time)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def stories():
    return reuters_stories(10)


@pytest.fixture
def site():
    with NewsSite().start() as served:
        yield served


@pytest.fixture
def feed_service(tmp_path, embedder, pieces):
    settings = Settings(index_dir=tmp_path / "index", fetch_allow_hosts="127.0.0.1", fetch_host_delay_s=0,
                        fetch_read_timeout_s=1, poll_sources=False)
    service = build_service(settings, embedder, pieces)
    yield service
    service.close()


def poller_of(service, clock: Clock):
    poller = service.poller()
    poller.clock = clock
    return poller


def add(service, url: str, every_s: int = 60, category: str | None = None):
    source = service.add_source(url, every_s, category)
    # Due now by the test's clock.
    service.store.docstore.record_poll(replace(source, next_poll_at=datetime(2000, 1, 1, tzinfo=UTC)))
    return source


def texts_of(service, article_id: str) -> list[str]:
    return [row[0] for row in service.store.docstore._db().execute(
        "SELECT text FROM chunks WHERE article_id=? ORDER BY n", (article_id,))]


def test_a_feed_is_polled_new_items_come_in_an_unchanged_feed_costs_one_304(feed_service, site, stories):
    urls = site.publish(stories[:4])
    entries = [(u, s.title, s.published) for u, s in zip(urls, stories)]
    site.put("/feed.rss", rss(entries[:3]), "application/rss+xml")
    clock = Clock()
    poller = poller_of(feed_service, clock)
    source = add(feed_service, site.url("/feed.rss"), every_s=60, category="Markets")

    [first] = poller.poll_due()
    assert first.error is None and len(first.ingested) == 3 and not first.failed
    polled = feed_service.store.docstore.source(source.id)
    assert polled.status == "ok" and polled.last_fetched_at == clock.now == polled.last_new_article_at
    assert polled.etag and polled.next_poll_at == clock.now + timedelta(seconds=60)
    assert poller.poll_due() == []  # not due yet

    clock.advance(60)
    [unchanged] = poller.poll_due()
    assert unchanged.not_modified and site.requests[-1][1].get("If-None-Match") == polled.etag
    assert all(site.hits(u.removeprefix(site.url(""))) == 1 for u in urls[:3])  # no page fetched again

    site.put("/feed.rss", rss(entries), "application/rss+xml")  # a new item appears between polls
    clock.advance(60)
    [second] = poller.poll_due()
    assert len(second.ingested) == 1 and second.ingested[0].startswith("news-reuters-")
    assert all(site.hits(u.removeprefix(site.url(""))) == 1 for u in urls)  # each page fetched once in all
    assert feed_service.store.docstore.counts()[0] == 4
    assert {a.category for a in (feed_service.article(i) for i in first.ingested + second.ingested)} == {"markets"}
    assert feed_service.store.check().ok


def test_a_changed_page_replaces_its_articles_chunks(feed_service, site, stories):
    story = stories[4]
    url = site.publish([story])[0]
    path = url.removeprefix(site.url(""))
    site.put("/feed.atom", atom([(url, story.title, story.published, "1987-03-01T00:00:00Z")]), "application/atom+xml")
    clock = Clock()
    poller = poller_of(feed_service, clock)
    add(feed_service, site.url("/feed.atom"), every_s=30)
    page_source = add(feed_service, url, every_s=30)  # the same page, also polled on its own
    results = poller.poll_due()
    [article_id] = {i for r in results for i in r.ingested + r.unchanged}
    before = texts_of(feed_service, article_id)

    changed = replace(story, paragraphs=("Correction: the review was issued on Thursday, not Wednesday.",)
                      + story.paragraphs)
    site.put(path, article_page(changed, url))
    site.put("/feed.atom", atom([(url, story.title, story.published, "1987-03-02T09:00:00Z")]), "application/atom+xml")
    clock.advance(30)
    results = poller.poll_due()
    assert sum(len(r.ingested) for r in results) == 1  # the first poll to see it replaces it, the other finds it so
    after = texts_of(feed_service, article_id)
    assert after != before and "Correction: the review" in after[0]
    assert feed_service.store.docstore.counts()[0] == 1 and feed_service.store.check().ok
    assert feed_service.search("Correction review issued Thursday")[0].article_id == article_id

    clock.advance(30)  # the page source again: its validators give 304
    results = poller.poll_due()
    assert next(r for r in results if r.source_id == page_source.id).not_modified


def test_a_failing_source_backs_off_and_recovers_after_a_restart_of_its_server(feed_service, site, stories):
    urls = site.publish(stories[5:7])
    site.put("/feed.rss", rss([(u, s.title, s.published) for u, s in zip(urls, stories[5:7])]), "application/rss+xml")
    clock = Clock()
    poller = poller_of(feed_service, clock)
    source = add(feed_service, site.url("/feed.rss"), every_s=10)
    port = site.port
    site.stop()

    [failed] = poller.poll_due()
    assert "cannot connect" in failed.error
    down = feed_service.store.docstore.source(source.id)
    assert down.status == "failing" and down.failures == 1 and down.last_fetched_at is None
    assert down.next_poll_at == clock.now + timedelta(seconds=20)  # backing off: twice the interval
    clock.advance(20)
    poller.poll_due()
    down = feed_service.store.docstore.source(source.id)
    assert down.failures == 2 and down.next_poll_at == clock.now + timedelta(seconds=40)
    assert feed_service.health()["sources"][0]["status"] == "failing"

    site.start(port)  # the server is back, on the same port
    clock.advance(40)
    [recovered] = poller.poll_due()
    assert recovered.error is None and len(recovered.ingested) == 2
    up = feed_service.store.docstore.source(source.id)
    assert up.status == "ok" and up.failures == 0 and up.last_error is None
    assert up.next_poll_at == clock.now + timedelta(seconds=10)


def test_item_failures_are_reported_and_retried_without_failing_the_source(feed_service, site, stories):
    url = site.publish(stories[:1])[0]
    site.put("/later.html", "not yet", "text/plain", status=500)
    site.put("/mixed.rss", rss([(url, "Good", None), (site.url("/later.html"), "Later", None), (url, "Again", None)]),
             "application/rss+xml")
    clock = Clock()
    poller = poller_of(feed_service, clock)
    source = add(feed_service, site.url("/mixed.rss"), every_s=10)
    [first] = poller.poll_due()
    assert len(first.ingested) == 1 and len(first.failed) == 1
    polled = feed_service.store.docstore.source(source.id)
    assert polled.status == "ok" and "HTTP 500" in polled.last_error and polled.failures == 0
    assert polled.etag is None  # not kept: a 304 next time would never retry the failed item

    site.put("/later.html", article_page(stories[1], site.url("/later.html")))  # the feed itself is unchanged
    clock.advance(10)
    [second] = poller.poll_due()
    assert len(second.ingested) == 1 and not second.failed  # the failed item, retried; the good one not refetched
    assert site.hits(url.removeprefix(site.url(""))) == 1
    done = feed_service.store.docstore.source(source.id)
    assert done.last_error is None and done.etag
    clock.advance(10)
    assert poller.poll_due()[0].not_modified


def test_hostile_sources_are_refused_or_fail_without_harm(feed_service, site):
    from tests.support.news_site import ENTITY_BOMB

    with pytest.raises(FetchRefused, match="link-local"):
        feed_service.add_source("http://169.254.169.254/latest/meta-data/", 60)
    with pytest.raises(FetchRefused, match="only http and https"):
        feed_service.add_source("file:///etc/passwd", 60)
    site.put("/bomb.rss", ENTITY_BOMB, "application/rss+xml")
    site.put("/huge.rss", "<rss><channel>" + "<item><title>x</title></item>" * 300_000 + "</channel></rss>",
             "application/rss+xml")
    clock = Clock()
    poller = poller_of(feed_service, clock)
    bomb, huge = add(feed_service, site.url("/bomb.rss")), add(feed_service, site.url("/huge.rss"))
    results = {r.source_id: r for r in poller.poll_due()}
    assert "declares entities" in results[bomb.id].error
    assert "over the 5.0 MB limit" in results[huge.id].error
    assert feed_service.store.docstore.counts() == (0, 0)


def test_sources_over_http_need_the_admin_scope_and_show_in_health(tmp_path, embedder, pieces, site, stories):
    keys = {"reader-key-0123456789": ["read"], "admin-key-0123456789": ["admin"]}
    settings = Settings(index_dir=tmp_path / "index", fetch_allow_hosts="127.0.0.1", fetch_host_delay_s=0,
                        api_keys=json.dumps(keys))
    urls = site.publish(stories[:2])
    site.put("/feed.rss", rss([(u, s.title, s.published) for u, s in zip(urls, stories)]), "application/rss+xml")
    service = build_service(settings, embedder, pieces)
    reader, admin = ({"Authorization": "Bearer reader-key-0123456789"},
                     {"Authorization": "Bearer admin-key-0123456789"})
    try:
        with live_server(create_app(settings, service)) as http:  # the app polls in the background
            body = {"url": site.url("/feed.rss"), "every": "1s", "category": "Markets"}
            assert http.post("/sources", json=body, headers=reader).status_code == 403
            assert http.post("/sources", json=body | {"every": "soon"}, headers=admin).status_code == 422
            refused = http.post("/sources", json={"url": "http://10.1.2.3/feed"}, headers=admin)
            assert refused.status_code == 422 and "private" in refused.json()["detail"]
            created = http.post("/sources", json=body, headers=admin)
            assert created.status_code == 201, created.text
            source = created.json()
            assert source["every_s"] == 1 and source["category"] == "markets" and source["status"] == "new"
            deadline = time.monotonic() + 60
            while not (listed := http.get("/sources", headers=reader).json()["sources"])[0]["last_new_article_at"]:
                assert time.monotonic() < deadline, listed
                time.sleep(0.2)
            assert [s["id"] for s in listed] == [source["id"]] and listed[0]["status"] == "ok"
            assert service.store.docstore.counts()[0] == 2
            health = http.get("/health").json()["sources"]
            assert health[0]["id"] == source["id"] and health[0]["status"] == "ok"
            assert http.delete(f"/sources/{source['id']}", headers=reader).status_code == 403
            assert http.delete(f"/sources/{source['id']}", headers=admin).json() == {"deleted": source["id"]}
            assert http.delete(f"/sources/{source['id']}", headers=admin).status_code == 404
            assert http.get("/sources", headers=reader).json() == {"sources": []}
            assert service.store.docstore.counts()[0] == 2  # its articles stay
    finally:
        service.close()


def rag_cli(index: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return subprocess.run([RAG, "--index-dir", str(index), *args], check=False, capture_output=True, text=True,
                          env=base | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} | env, timeout=300,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_rag_sources_add_list_remove(tmp_path, request, backend):
    index = tmp_path / "index"
    env = {} if backend == "sqlite" else {
        "RAG_DOCSTORE_URL": request.getfixturevalue("postgres").create_database(f"cli_{backend}_{os.getpid()}")}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return rag_cli(index, *args, **env)

    # A public address written as one: resolving it sends no query, and nothing is fetched here.
    added = cli("sources", "add", "https://93.184.215.14/feed.rss", "--every", "1h30m", "--category", "World")
    assert added.returncode == 0, added.stderr
    source_id = added.stdout.split()[0]
    assert "every 90m" in added.stdout
    listed = cli("sources", "list", "--json")
    [source] = json.loads(listed.stdout)
    assert source["id"] == source_id and source["every_s"] == 5400 and source["category"] == "world"
    assert source["status"] == "new"
    text = cli("sources", "list").stdout
    assert "last fetched never" in text and "https://93.184.215.14/feed.rss" in text
    bad = cli("sources", "add", "https://news.example.com/x", "--every", "often")
    assert bad.returncode == 2 and "not an interval" in bad.stderr
    private = cli("sources", "add", "http://192.168.0.10/feed")
    assert private.returncode == 1 and "private" in private.stderr
    assert cli("sources", "remove", source_id).returncode == 0
    gone = cli("sources", "remove", source_id)
    assert gone.returncode == 1 and "no source with id" in gone.stderr
    assert json.loads(cli("sources", "list", "--json").stdout) == []
    # With RAG_DOCSTORE_URL the sources live in that database, not in a file of the index folder.
    assert (index / "docstore.sqlite").exists() == (backend == "sqlite")


def test_a_schema_2_docstore_is_migrated_keeping_its_articles(feed_service, tmp_path, embedder, pieces):
    """Schema 2 had no author, date_source or sources: opening it adds them and keeps every row."""
    settings = feed_service.settings
    from tests.conftest import ingest_paths
    from tests.support.paths import SEED_ARTICLE

    ingest_paths(feed_service, [SEED_ARTICLE])
    before = feed_service.store.docstore._db().execute("SELECT id, content_hash FROM articles").fetchall()
    feed_service.close()
    db = sqlite3.connect(settings.index_dir / "docstore.sqlite")
    db.executescript("""
        DROP TABLE source_items; DROP TABLE sources;
        ALTER TABLE articles DROP COLUMN author; ALTER TABLE articles DROP COLUMN date_source;
        UPDATE meta SET value = '2' WHERE key = 'schema_version';
    """)
    db.close()
    again = build_service(settings, embedder, pieces)
    try:
        docstore = again.store.docstore
        assert docstore._db().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("4",)
        assert docstore._db().execute("SELECT id, content_hash FROM articles").fetchall() == before
        assert again.store.check().ok and again.sources() == []
        report = again.ingest([again.article(before[0][0])])
        assert report.unchanged == [before[0][0]]  # the hash of an article without author is as it was
    finally:
        again.close()


@pytest.mark.slow
def test_rag_serve_killed_mid_poll_loses_nothing_acknowledged(tmp_path, stories):
    """The server polls a feed whose pages answer slowly; it is killed with -9 while articles are
    being committed, restarted, and finishes: every article committed before the kill is there,
    none twice, the index agrees with itself."""
    index = tmp_path / "index"
    many = reuters_stories(30, skip=10)
    with NewsSite().start() as site:
        urls = []
        for story in many:
            path = f"/slow/{story.slug}.html"
            site.put(path, article_page(story, site.url(path)), delay_s=0.15)
            urls.append(site.url(path))
        site.put("/feed.rss", rss([(u, s.title, s.published) for u, s in zip(urls, many)]), "application/rss+xml")
        settings = {"RAG_FETCH_ALLOW_HOSTS": "127.0.0.1", "RAG_FETCH_HOST_DELAY_S": "0",
                    "RAG_INGEST_BATCH_SIZE": "4"}  # commits every 4 articles
        added = rag_cli(index, "sources", "add", site.url("/feed.rss"), "--every", "1s", **settings)
        assert added.returncode == 0, added.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"} | settings

        def serve() -> subprocess.Popen:
            port = free_port()
            process = subprocess.Popen([RAG, "--index-dir", str(index), "serve", "--port", str(port)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       stdin=subprocess.DEVNULL, env=env)
            return process

        def stored() -> list[str]:
            with sqlite3.connect(f"file:{index / 'docstore.sqlite'}?mode=ro", uri=True, timeout=30) as db:
                return [r[0] for r in db.execute("SELECT id FROM articles")]

        process = serve()
        try:
            deadline = time.monotonic() + 300
            while len(stored()) < 1:  # the first batch is committed; more pages are being fetched
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            acknowledged = stored()
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert len(acknowledged) < len(many)  # killed in the middle
        assert set(acknowledged) <= set(stored())

        process = serve()
        try:
            deadline = time.monotonic() + 300
            while len(stored()) < len(many):
                assert process.poll() is None and time.monotonic() < deadline, len(stored())
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
        ids = stored()
        assert len(ids) == len(set(ids)) == len(many) and set(acknowledged) <= set(ids)
        checked = rag_cli(index, "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with sqlite3.connect(index / "docstore.sqlite") as db:
            assert db.execute("SELECT count(*) FROM source_items").fetchone()[0] == len(many)
