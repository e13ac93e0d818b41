"""rag.ingest.fetch without the model: the fetcher's limits (SSRF, redirects, size, time, types),
feeds and sitemaps, and page extraction, against a news site of the tests' own on 127.0.0.1."""

from __future__ import annotations

import pytest

from rag.errors import FetchFailed, FetchRefused
from rag.ingest.fetch import Fetcher, FetchPolicy, Validators, read_url
from rag.ingest.fetch.feeds import MalformedFeed, read_feed
from rag.ingest.ids import id_from_url
from rag.types import Article, IngestFailure
from tests.support.news_site import ENTITY_BOMB, NewsSite, atom, news_sitemap, reuters_stories, rss

FURNITURE = ("cookies", "All rights reserved", "Share this story", "More from Markets", "Home", "Privacy policy")
LOOPBACK = frozenset({"127.0.0.1"})


@pytest.fixture(scope="module")
def stories():
    return reuters_stories(6)


@pytest.fixture
def site():
    with NewsSite().start() as served:
        yield served


def fetcher(**limits) -> Fetcher:
    return Fetcher(FetchPolicy(**{"allow_hosts": LOOPBACK, "host_delay_s": 0, **limits}))


def feed_of(site: NewsSite, stories, path: str = "/markets.rss") -> list[str]:
    urls = site.publish(stories)
    site.put(path, rss([(u, s.title, s.published) for u, s in zip(urls, stories)]), "application/rss+xml")
    return urls


def articles(items) -> list[Article]:
    items = list(items)
    assert all(isinstance(i, Article) for i in items), [i for i in items if isinstance(i, IngestFailure)]
    return items


def test_an_rss_feed_of_pages_gives_each_story_without_its_page_furniture(site, stories):
    urls = feed_of(site, stories)
    found = articles(read_url(fetcher(), site.url("/markets.rss"), category="Markets"))
    assert [a.url for a in found] == urls
    for article, story in zip(found, stories):
        assert article.id == id_from_url(article.url)
        assert article.title == story.title
        assert story.paragraphs[0] in article.text and story.paragraphs[-1] in article.text
        assert not [word for word in FURNITURE if word in article.text], article.text
        assert article.author == "Wire Desk Staff" and article.source == "Wire Desk"
        assert article.category == "markets"
        # The page's own metadata gives the moment (its article:published_time, to the second).
        assert article.published_at == story.published
        assert article.date_source == "meta"


def test_atom_and_a_second_feed_reach_the_same_articles(site, stories):
    urls = feed_of(site, stories)
    site.put("/all.atom", atom([(u, s.title, s.published, "1987-03-01T00:00:00Z") for u, s in zip(urls, stories)]),
             "application/atom+xml")
    # A tracking link that redirects to the page: its canonical URL makes it the same story.
    site.redirect("/t/1", urls[0])
    site.put("/other.rss", rss([(site.url("/t/1"), "Tracked", None)]), "application/rss+xml")
    by_rss = articles(read_url(fetcher(), site.url("/markets.rss")))
    by_atom = articles(read_url(fetcher(), site.url("/all.atom")))
    by_other = articles(read_url(fetcher(), site.url("/other.rss")))
    assert [a.id for a in by_atom] == [a.id for a in by_rss]
    assert [a.content_hash for a in by_atom] == [a.content_hash for a in by_rss]
    assert by_other[0].id == by_rss[0].id and by_other[0].url == urls[0]


def test_a_news_sitemap_dates_pages_that_carry_none(site, stories):
    from tests.support.news_site import article_page

    listed = []
    for story in stories[:3]:
        path = f"/undated/{story.slug}.html"
        site.put(path, article_page(story, site.url(path), with_date=False))
        listed.append((site.url(path), story.title, story.published))
    site.put("/news-sitemap.xml", news_sitemap(listed), "application/xml")
    found = articles(read_url(fetcher(), site.url("/news-sitemap.xml")))
    assert [a.published_at for a in found] == [s.published for s in stories[:3]]  # to the second, with the time
    assert {a.date_source for a in found} == {"sitemap"}


def test_a_sitemap_index_is_read_one_level_down(site, stories):
    urls = site.publish(stories[:4])
    site.put("/sitemap-1.xml", '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             + "".join(f"<url><loc>{u}</loc><lastmod>1987-03-01</lastmod></url>" for u in urls[:2]) + "</urlset>",
             "application/xml")
    site.put("/sitemap-2.xml", '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             + "".join(f"<url><loc>{u}</loc></url>" for u in urls[2:]) + "</urlset>", "text/xml")
    site.put("/sitemap.xml", '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
             '<sitemap><loc>/sitemap-1.xml</loc></sitemap><sitemap><loc>/sitemap-2.xml</loc></sitemap>'
             '<sitemap><loc>/missing.xml</loc></sitemap></sitemapindex>', "application/xml")
    items = list(read_url(fetcher(), site.url("/sitemap.xml")))
    assert [i.url for i in items if isinstance(i, Article)] == urls
    failures = [i for i in items if isinstance(i, IngestFailure)]
    assert len(failures) == 1 and "missing.xml" in failures[0].reason and "HTTP 404" in failures[0].reason


# -- SSRF ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1:{port}/page.html", "loopback"),
    ("http://localhost:{port}/page.html", "loopback"),
    ("http://[::1]:{port}/page.html", "loopback"),
    ("http://0.0.0.0:{port}/page.html", "unspecified"),
    ("http://[::ffff:127.0.0.1]:{port}/page.html", "loopback"),
    ("http://2130706433:{port}/page.html", "loopback"),  # 127.0.0.1 as one number
])
def test_addresses_inside_the_network_are_refused_unless_allow_listed(site, stories, url, reason):
    site.publish(stories[:1])
    site.put("/page.html", "<html><body><p>Inside.</p></body></html>")
    url = url.format(port=site.port)
    with pytest.raises(FetchRefused, match=reason) as refused:
        fetcher(allow_hosts=frozenset()).get(url)
    assert "RAG_FETCH_ALLOW_HOSTS" in str(refused.value)
    assert site.hits("/page.html") == 0  # refused before connecting


@pytest.mark.parametrize("target, reason", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),  # the cloud metadata service
    ("http://10.0.0.1/admin", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[fd00::1]/", "private"),
    ("http://100.64.0.1/", "special-purpose"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://0.0.0.0:{port}/secret", "unspecified"),  # would reach this very site if not checked
    ("http://[::ffff:127.0.0.1]:{port}/secret", "loopback"),  # the same, spelled in IPv6
])
def test_a_redirect_to_a_private_address_is_refused_before_any_connection(site, target, reason):
    """Only 127.0.0.1 is allow-listed: the redirect's target is checked like the first URL."""
    site.put("/secret", "<html><body><p>Internal only.</p></body></html>")
    site.redirect("/go", target.format(port=site.port))
    with pytest.raises(FetchRefused, match=reason) as refused:
        fetcher().get(site.url("/go"))
    assert "redirects to" in str(refused.value)
    assert site.hits("/secret") == 0


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/feed.xml", "file:///etc/passwd", "gopher://127.0.0.1:70/",
                                 "//127.0.0.1/x", "http://user:secret@127.0.0.1/", "http://a b/", "http://a..b/"])
def test_only_plain_http_and_https_urls_are_fetched(url):
    with pytest.raises(FetchRefused):
        fetcher().get(url)


def test_a_redirect_to_another_scheme_is_refused(site):
    site.redirect("/go", "file:///etc/passwd")
    with pytest.raises(FetchRefused, match="only http and https"):
        fetcher().get(site.url("/go"))


def test_five_redirects_are_followed_and_a_sixth_is_not(site, stories):
    url = site.publish(stories[:1])[0]
    for n in range(6):
        site.redirect(f"/r{n}", site.url(f"/r{n + 1}") if n < 5 else url)
    assert fetcher().get(site.url("/r1")).url == url  # five hops
    with pytest.raises(FetchFailed, match="more than 5 redirects"):
        fetcher().get(site.url("/r0"))  # six


# -- TLS ----------------------------------------------------------------------------------------
def test_https_goes_to_the_checked_address_with_the_certificate_checked(tmp_path, stories):
    """The connection is pinned to the address checked, but TLS still verifies the certificate
    against the URL's host: trusted and matching passes, untrusted or for another name fails."""
    import ssl

    from tests.support.news_site import self_signed

    good, other = self_signed(tmp_path, "IP:127.0.0.1"), self_signed(tmp_path, "other.example")
    with NewsSite().start(certificate=good) as site:
        url = site.publish(stories[:1])[0]
        assert url.startswith("https://127.0.0.1:")
        trusting = Fetcher(FetchPolicy(allow_hosts=LOOPBACK, host_delay_s=0),
                           tls=ssl.create_default_context(cafile=str(good[0])))
        [article] = articles(read_url(trusting, url))
        assert article.title == stories[0].title and article.url == url
        with pytest.raises(FetchFailed, match="TLS failed"):
            fetcher().get(url)  # the system's CAs do not know it
    with NewsSite().start(certificate=other) as site:
        url = site.publish(stories[:1])[0]
        wrong_name = Fetcher(FetchPolicy(allow_hosts=LOOPBACK, host_delay_s=0),
                             tls=ssl.create_default_context(cafile=str(other[0])))
        with pytest.raises(FetchFailed, match="TLS failed"):
            wrong_name.get(url)


# -- limits -------------------------------------------------------------------------------------
@pytest.mark.parametrize("declare_length", [True, False])
def test_a_huge_page_is_cut_at_the_byte_limit(site, declare_length):
    site.put("/huge.html", "<html><body>" + "<p>Words and more words.</p>" * 40_000 + "</body></html>",
             declare_length=declare_length)
    with pytest.raises(FetchFailed, match="over the 100.0 KB limit"):
        fetcher(max_bytes=100_000).get(site.url("/huge.html"))


def test_a_server_that_does_not_answer_in_time_fails_with_a_timeout(site):
    site.put("/slow.html", "<html><body><p>Late.</p></body></html>", delay_s=3)
    with pytest.raises(FetchFailed, match="read timeout"):
        fetcher(read_timeout_s=0.5).get(site.url("/slow.html"))


def test_a_server_error_names_the_url_and_status(site):
    site.put("/broken.html", "oops", "text/plain", status=500)
    with pytest.raises(FetchFailed, match=r"/broken.html: HTTP 500"):
        fetcher().get(site.url("/broken.html"))


def test_a_closed_port_fails_cleanly(site):
    port = site.port
    site.stop()
    with pytest.raises(FetchFailed, match="cannot connect"):
        fetcher().get(f"http://127.0.0.1:{port}/feed.xml")


@pytest.mark.parametrize("content_type", ["image/png", "application/json", "application/octet-stream",
                                          "application/pdf", None])
def test_content_types_other_than_html_xml_or_text_are_refused(site, content_type):
    site.put("/thing", b"\x89PNG....", content_type)
    with pytest.raises(FetchRefused, match="is not an article, feed or sitemap"):
        fetcher().get(site.url("/thing"))


def test_a_conditional_request_gets_not_modified(site, stories):
    url = site.publish(stories[:1])[0]
    first = fetcher().get(url)
    assert first.validators.etag and first.validators.last_modified
    again = fetcher().get(url, first.validators)
    assert again.not_modified and again.body == b""
    assert fetcher().get(url, Validators(last_modified=first.validators.last_modified)).not_modified


def test_requests_to_one_host_are_spaced_by_the_politeness_delay(site, stories):
    urls = site.publish(stories[:3])
    clock = [0.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    polite = Fetcher(FetchPolicy(allow_hosts=LOOPBACK, host_delay_s=2.0), clock=lambda: clock[0], sleep=sleep)
    for url in urls:
        polite.get(url)
    assert waits == [2.0, 2.0]


# -- hostile and broken XML ---------------------------------------------------------------------
def test_an_entity_bomb_is_refused_without_expanding_it(site):
    site.put("/bomb.rss", ENTITY_BOMB, "application/rss+xml")
    [failure] = list(read_url(fetcher(), site.url("/bomb.rss")))
    assert isinstance(failure, IngestFailure) and "declares entities" in failure.reason


def test_an_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("the password")
    xml = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]>'
           '<rss><channel><item><title>&x;</title><link>http://a.example/1</link></item></channel></rss>')
    with pytest.raises(MalformedFeed, match="declares entities"):
        read_feed(xml.encode(), "http://a.example/", 10)


def test_a_malformed_feed_is_one_clear_failure(site):
    site.put("/broken.rss", "<?xml version='1.0'?><rss><channel><item><title>Half", "application/rss+xml")
    [failure] = list(read_url(fetcher(), site.url("/broken.rss")))
    assert failure.origin == site.url("/broken.rss") and "malformed XML" in failure.reason


def test_one_bad_item_never_stops_a_feed(site, stories):
    good = site.publish(stories[:2])
    site.put("/500.html", "down", "text/plain", status=500)
    site.put("/slow.html", "<p>late</p>", delay_s=3)
    site.redirect("/to-metadata", "http://169.254.169.254/latest/meta-data/")
    site.put("/huge.html", "<p>" + "x" * 200_000 + "</p>")
    site.put("/image.png", b"\x89PNG", "image/png")
    site.put("/empty.html", "<html><body><script>var page = 1;</script></body></html>")
    bad = ["/500.html", "/slow.html", "/to-metadata", "/huge.html", "/image.png", "/empty.html"]
    entries = [(good[0], "Good", None)] + [(site.url(p), p, None) for p in bad] + [(good[1], "Good", None),
                                                                                   ("javascript:alert(1)", "JS", None)]
    site.put("/mixed.rss", rss(entries), "application/rss+xml")
    items = list(read_url(fetcher(max_bytes=100_000, read_timeout_s=0.5), site.url("/mixed.rss")))
    assert [i.url for i in items if isinstance(i, Article)] == good
    reasons = [i.reason for i in items if isinstance(i, IngestFailure)]
    assert len(reasons) == 7, reasons
    for expected in ("not an http(s) URL", "HTTP 500", "read timeout", "link-local", "over the 100.0 KB limit",
                     "'image/png' is not an article", "no article text"):
        assert any(expected in r for r in reasons), (expected, reasons)


def test_a_page_may_not_claim_another_sites_canonical_url(site, stories):
    from tests.support.news_site import article_page

    site.put("/copy.html", article_page(stories[0], "https://victim.example/news/story.html"))
    [article] = articles(read_url(fetcher(), site.url("/copy.html")))
    assert article.url == site.url("/copy.html") and article.id == id_from_url(site.url("/copy.html"))
