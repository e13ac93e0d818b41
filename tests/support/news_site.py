"""A news site of the tests' own, served over real HTTP on 127.0.0.1: article pages built from
Reuters stories wrapped in page furniture, RSS/Atom feeds and sitemaps over them, and the ways
sites misbehave (errors, slow answers, redirects, huge pages, malformed and hostile XML).

Routes can change while it serves (a new item, a changed page), and it can stop and start again
on the same port (a server restart). Conditional requests get 304 when the ETag or date match.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

from tests.support.paths import SHARED

REUTERS = SHARED / "corpora" / "reuters21578" / "reuters21578.jsonl"


@dataclass(frozen=True)
class Story:
    slug: str
    title: str
    paragraphs: tuple[str, ...]
    published: datetime


def reuters_stories(n: int, skip: int = 0) -> list[Story]:
    """The first `n` Reuters stories (after `skip`) with a title and a few paragraphs of text."""
    stories: list[Story] = []
    with REUTERS.open(encoding="utf-8") as lines:
        for line in lines:
            record = json.loads(line)
            # Wire copy is hard-wrapped; an indented line starts a paragraph.
            paragraphs = tuple(" ".join(p.split()) for p in record["text"].split("\n    ") if p.strip())
            if not record.get("title") or len(paragraphs) < 2 or not record.get("published_at"):
                continue
            if skip:
                skip -= 1
                continue
            stories.append(Story(slug=record["id"], title=record["title"].title(), paragraphs=paragraphs,
                                 published=datetime.fromisoformat(record["published_at"]).astimezone(UTC)))
            if len(stories) == n:
                break
    return stories


def article_page(story: Story, canonical: str, *, with_date: bool = True) -> str:
    """A scraped-looking page: navigation, a cookie banner, share buttons, related links and a
    footer around the story, with its metadata in the head."""
    body = "\n".join(f"<p>{escape(p)}</p>" for p in story.paragraphs)
    date_meta = (f'<meta property="article:published_time" content="{story.published.isoformat()}">'
                 if with_date else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(story.title)} | Wire Desk</title>
<link rel="canonical" href="{escape(canonical)}">
<meta property="og:site_name" content="Wire Desk">
<meta name="author" content="Wire Desk Staff">
{date_meta}
</head><body>
<header><nav><a href="/">Home</a> <a href="/world">World</a> <a href="/business">Business</a>
<a href="/markets">Markets</a> <a href="/sport">Sport</a></nav></header>
<div class="cookie-banner">We use cookies to improve your experience. Accept all cookies. Manage settings.</div>
<main><article>
<h1>{escape(story.title)}</h1>
<p class="byline">By Wire Desk Staff</p>
{body}
</article>
<aside><h2>Share this story</h2><ul><li>Facebook</li><li>Twitter</li><li>Email</li></ul></aside>
<section class="related"><h2>More from Markets</h2><ul><li><a href="/a">Dollar steadies</a></li>
<li><a href="/b">Oil climbs</a></li></ul></section>
</main>
<footer><p>© 1987 Wire Desk. All rights reserved. Terms of use. Privacy policy.</p></footer>
</body></html>"""


def rss(items: list[tuple[str, str, datetime | None]], title: str = "Wire Desk: Markets") -> str:
    entries = "\n".join(
        f"<item><title>{escape(t)}</title><link>{escape(u)}</link><guid>{escape(u)}</guid>"
        + (f"<pubDate>{format_datetime(d)}</pubDate>" if d else "") + "</item>"
        for u, t, d in items)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>{escape(title)}</title>'
            f"<link>http://example.invalid/</link><description>d</description>\n{entries}\n</channel></rss>")


def atom(items: list[tuple[str, str, datetime | None, str]]) -> str:
    entries = "\n".join(
        f'<entry><title>{escape(t)}</title><link rel="alternate" href="{escape(u)}"/><id>{escape(u)}</id>'
        + (f"<published>{d.isoformat()}</published>" if d else "") + f"<updated>{updated}</updated></entry>"
        for u, t, d, updated in items)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<title>Wire Desk</title><id>urn:wire</id><updated>1987-03-01T00:00:00Z</updated>\n{entries}\n</feed>")


def news_sitemap(items: list[tuple[str, str, datetime]]) -> str:
    urls = "\n".join(
        f"<url><loc>{escape(u)}</loc><news:news><news:publication><news:name>Wire Desk</news:name>"
        f"<news:language>en</news:language></news:publication>"
        f"<news:publication_date>{d.isoformat()}</news:publication_date>"
        f"<news:title>{escape(t)}</news:title></news:news></url>"
        for u, t, d in items)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
            f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">\n{urls}\n</urlset>')


ENTITY_BOMB = """<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
]>
<rss version="2.0"><channel><title>&g;</title><item><title>&g;</title><link>http://x.invalid/&g;</link></item></channel></rss>
"""


def self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    """A certificate (and its key) for `name` (a host name, or an address as `IP:127.0.0.1`),
    made with the openssl command; it is its own CA."""
    certificate, key = folder / f"{name.replace(':', '-')}.pem", folder / f"{name.replace(':', '-')}.key"
    subject = name.split(":", 1)[-1]
    san = name if ":" in name else f"DNS:{name}"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={subject}",
                    "-addext", f"subjectAltName={san}", "-keyout", str(key), "-out", str(certificate)],
                   check=True, capture_output=True, timeout=60)
    return certificate, key


@dataclass
class Route:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before answering: a slow (or timing-out) server
    validators: bool = True  # ETag and Last-Modified, and 304 to a matching conditional request
    declare_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    modified: datetime = field(default_factory=lambda: datetime(1987, 3, 1, tzinfo=UTC))


class NewsSite:
    """The server; `url(path)` is an absolute URL on it. Thread-safe route changes."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers) as received
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.tls: ssl.SSLContext | None = None  # set by start(certificate=…): serves https

    # -- content -------------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def put(self, path: str, body: str | bytes, content_type: str = "text/html; charset=utf-8", **options) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        with self._lock:
            old = self.routes.get(path)
            route = Route(data, content_type, **options)
            if old is not None and old.body != data and "modified" not in options:
                route.modified = datetime.now(UTC).replace(microsecond=0)
            self.routes[path] = route

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.put(path, b"", status=status, headers={"Location": location}, validators=False)

    def publish(self, stories: list[Story], *, prefix: str = "/news") -> list[str]:
        """Article pages for `stories`; returns their URLs."""
        urls = []
        for story in stories:
            path = f"{prefix}/{story.slug}.html"
            self.put(path, article_page(story, self.url(path)))
            urls.append(self.url(path))
        return urls

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for p, _ in self.requests if p == path)

    # -- serving -------------------------------------------------------------------------------
    def start(self, port: int = 0, certificate: tuple[Path, Path] | None = None) -> NewsSite:
        """Serve on 127.0.0.1 (`port` 0: a free one); over TLS with (certificate, key) files."""
        site = self
        if certificate is not None:
            self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls.load_cert_chain(*certificate)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                with site._lock:
                    site.requests.append((self.path, dict(self.headers)))
                    route = site.routes.get(path)
                if route is None:
                    self._answer(404, b"not found", "text/plain", {})
                    return
                if route.delay_s:
                    time.sleep(route.delay_s)
                headers = dict(route.headers)
                if route.validators and route.status == 200:
                    etag = '"' + hashlib.sha256(route.body).hexdigest()[:16] + '"'
                    modified = format_datetime(route.modified, usegmt=True)
                    headers |= {"ETag": etag, "Last-Modified": modified}
                    if self.headers.get("If-None-Match") == etag or (
                            "If-None-Match" not in self.headers and self.headers.get("If-Modified-Since") == modified):
                        self._answer(304, b"", None, headers)
                        return
                self._answer(route.status, route.body, route.content_type, headers, route.declare_length)

            def _answer(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str],
                        declare_length: bool = True) -> None:
                try:
                    self.send_response(status)
                    if content_type:
                        self.send_header("Content-Type", content_type)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    if declare_length:
                        self.send_header("Content-Length", str(len(body)))
                    else:
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    if status != 304:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading (a cut body): expected

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serving() -> Iterator[NewsSite]:
    """A started site, stopped afterwards (for fixtures)."""
    site = NewsSite().start()
    try:
        yield site
    finally:
        site.stop()
