"""`rag ingest URL` and `POST /articles {"url"}` through the real stack: the `rag` process or the
HTTP API, the model, the index, and a news site of the tests' own on 127.0.0.1."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from rag.api.app import create_app
from rag.config import Settings
from rag.service import build_service
from tests.support.news_site import NewsSite, article_page, reuters_stories, rss
from tests.support.paths import RAG
from tests.support.servers import live_server

ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "RAG_FETCH_ALLOW_HOSTS": "127.0.0.1",
       "RAG_FETCH_HOST_DELAY_S": "0", "RAG_FETCH_READ_TIMEOUT_S": "1"}


@pytest.fixture(scope="module")
def stories():
    return reuters_stories(8)


@pytest.fixture
def site():
    with NewsSite().start() as served:
        yield served


def rag(index: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | ENV
    return subprocess.run([RAG, "--index-dir", str(index), *args], check=False, capture_output=True, text=True,
                          env=env, timeout=600, stdin=subprocess.DEVNULL)


def test_rag_ingest_a_feed_url_stores_each_page_once_and_reports_bad_items(tmp_path, site, stories):
    urls = site.publish(stories[:6])
    site.put("/500.html", "down", "text/plain", status=500)
    site.redirect("/meta", "http://169.254.169.254/latest/meta-data/")
    items = [(u, s.title, s.published) for u, s in zip(urls, stories)]
    site.put("/feed.rss", rss(items[:3] + [(site.url("/500.html"), "Down", None), (site.url("/meta"), "M", None)]
                              + items[3:]), "application/rss+xml")
    index = tmp_path / "index"
    first = rag(index, "ingest", site.url("/feed.rss"), "--category", "Markets")
    assert first.returncode == 1  # some items failed
    assert first.stdout.strip() == "ingested 6, unchanged 0, failed 2"
    assert f"failed: {site.url('/feed.rss')} item 4: {site.url('/500.html')}: HTTP 500" in first.stderr
    assert "169.254.169.254" in first.stderr and "link-local" in first.stderr
    with sqlite3.connect(index / "docstore.sqlite") as db:
        rows = db.execute("SELECT url, title, category, author, date_source FROM articles ORDER BY url").fetchall()
    assert [r[0] for r in rows] == sorted(urls)
    assert {r[2] for r in rows} == {"markets"} and {r[3] for r in rows} == {"Wire Desk Staff"}
    assert {r[4] for r in rows} == {"meta"}
    # A second feed and a page URL reaching the same stories: nothing new, each story once.
    site.put("/other.rss", rss(list(reversed(items))), "application/rss+xml")
    again = rag(index, "ingest", site.url("/other.rss"), urls[0], "--category", "markets")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "ingested 0, unchanged 6, failed 0"
    asked = rag(index, "ask", stories[1].paragraphs[0].split(",")[0] + "?", "--json")
    assert asked.returncode == 0, asked.stderr


def test_rag_ingest_refuses_urls_it_may_not_fetch(tmp_path):
    result = rag(tmp_path / "index", "ingest", "http://127.0.0.2:9/feed.xml", "ftp://example.com/feed.xml")
    assert result.returncode == 1
    assert "127.0.0.2" in result.stderr and "loopback" in result.stderr
    assert "only http and https" in result.stderr


@pytest.fixture
def url_service(tmp_path, embedder, pieces):
    settings = Settings(index_dir=tmp_path / "index", fetch_allow_hosts="127.0.0.1", fetch_host_delay_s=0,
                        fetch_read_timeout_s=1, poll_sources=False)
    service = build_service(settings, embedder, pieces)
    yield service
    service.close()


def test_post_articles_with_a_url_fetches_and_extracts_the_page(url_service, site, stories):
    url = site.publish(stories[:1])[0]
    site.redirect("/short/1", url)
    with live_server(create_app(url_service.settings, url_service)) as http:
        response = http.post("/articles", json={"url": site.url("/short/1"), "category": "Markets"})
        assert response.status_code == 200, response.text
        [article_id] = response.json()["ingested"]
        article = http.get(f"/articles/{article_id}").json()
        assert article["url"] == url and article["title"] == stories[0].title
        assert article["author"] == "Wire Desk Staff" and article["date_source"] == "meta"
        assert article["category"] == "markets" and article["published_at"].startswith("1987-02-26")
        assert "cookies" not in article["text"] and stories[0].paragraphs[0] in article["text"]
        again = {"url": url, "category": "markets"}
        assert http.post("/articles", json=again).json()["unchanged"] == [article_id]

        # Changed text replaces the article's chunks.
        changed = stories[0].__class__(stories[0].slug, stories[0].title,
                                       stories[0].paragraphs + ("A late paragraph about cocoa futures.",),
                                       stories[0].published)
        site.put("/news/" + stories[0].slug + ".html", article_page(changed, url))
        assert http.post("/articles", json=again).json()["ingested"] == [article_id]
        assert "late paragraph" in http.get(f"/articles/{article_id}").json()["text"]
        assert url_service.store.check().ok


@pytest.mark.parametrize("setup, status, words", [
    (lambda site: site.put("/x", "down", "text/plain", status=500), 502, "HTTP 500"),
    (lambda site: site.redirect("/x", "http://10.0.0.1/"), 422, "private"),
    (lambda site: site.put("/x", b"\x89PNG", "image/png"), 422, "'image/png' is not an article"),
    (lambda site: site.put("/x", rss([]), "application/rss+xml"), 422, "is a rss, not an article page"),
    (lambda site: site.put("/x", "<html><body><script>1</script></body></html>"), 422, "no article text"),
    (lambda site: site.put("/x", "<p>slow</p>", delay_s=3), 502, "read timeout"),
])
def test_post_articles_with_a_bad_url_says_why_and_stores_nothing(url_service, site, setup, status, words):
    setup(site)
    with live_server(create_app(url_service.settings, url_service)) as http:
        response = http.post("/articles", json={"url": site.url("/x")})
        assert response.status_code == status, response.text
        assert words in response.json()["detail"]
    assert url_service.store.docstore.counts() == (0, 0)


def test_post_articles_refuses_metadata_beside_a_url_to_fetch(url_service, site):
    with live_server(create_app(url_service.settings, url_service)) as http:
        response = http.post("/articles", json={"url": site.url("/x"), "title": "Mine"})
        assert response.status_code == 422 and "title" in response.json()["detail"]
        # In a list, a bad URL is one failure among stored articles.
        listed = http.post("/articles", json=[{"url": "http://127.0.0.3/"}, {"text": "Cocoa rose. Sugar fell."}])
        assert listed.status_code == 200
        assert len(listed.json()["ingested"]) == 1 and "loopback" in listed.json()["failed"][0]["reason"]
