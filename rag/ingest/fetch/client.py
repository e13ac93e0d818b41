"""The fetcher: one GET with every limit, redirects followed by hand and each one checked again.

Built on http.client so that the socket is ours: the connection goes to an address `guard`
checked, not to whatever the name resolves to a moment later, while the Host header and TLS
(SNI, certificate check) still use the name. No proxy from the environment is used (a proxy
would resolve the name itself). Bodies are read up to a byte limit and a total deadline, so a
huge or trickling response costs bounded memory and time; a body is never decompressed
(`Accept-Encoding: identity`), so a compression bomb cannot pass the limit.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urljoin

from rag.config import Settings
from rag.errors import FetchFailed, FetchRefused
from rag.ingest.fetch.guard import IPAddress, Target, parse_target, resolve

USER_AGENT = "rag-fetch/0.1 (news ingest; polls feeds politely)"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What an article, a feed or a sitemap is served as; anything else (images, PDFs, archives,
# JSON, octet-stream) is refused before its body is read.
CONTENT_TYPES = frozenset({
    "text/html", "application/xhtml+xml", "text/xml", "application/xml", "application/rss+xml",
    "application/atom+xml", "application/rdf+xml", "text/plain",
})  # fmt: skip
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Every limit of a fetch, from the settings."""

    allow_hosts: frozenset[str] = frozenset()
    max_bytes: int = 5_000_000
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 15.0
    total_timeout_s: float = 60.0
    host_delay_s: float = 1.0
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchPolicy:
        return cls(allow_hosts=settings.allowed_fetch_hosts, max_bytes=settings.max_article_bytes,
                   connect_timeout_s=settings.fetch_connect_timeout_s,
                   read_timeout_s=settings.fetch_read_timeout_s, total_timeout_s=settings.fetch_total_timeout_s,
                   host_delay_s=settings.fetch_host_delay_s)


@dataclass(frozen=True, slots=True)
class Validators:
    """What a server said about a response's version, sent back to ask "changed since?"."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass(frozen=True, slots=True)
class Fetched:
    """A response: `url` is where it was found after redirects; `body` is empty when
    `not_modified` (a 304 to a conditional request)."""

    url: str
    status: int
    content_type: str  # media type, lower-case, without parameters
    charset: str | None
    body: bytes
    validators: Validators = field(default_factory=Validators)
    not_modified: bool = False
    seconds: float = 0.0  # from the first request to the last byte, politeness waits excluded


class Fetcher:
    """GETs URLs within a `FetchPolicy`. Thread-safe; requests to one host are spaced by
    `host_delay_s` (across threads) so that polling many items of one site stays polite."""

    def __init__(self, policy: FetchPolicy, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, tls: ssl.SSLContext | None = None) -> None:
        self.policy = policy
        self._clock = clock
        self._sleep = sleep
        self._next_slot: dict[str, float] = {}
        self._slots = threading.Lock()
        self._tls = tls or ssl.create_default_context()  # the system's CAs, host names checked

    def get(self, url: str, validators: Validators | None = None,
            accept: str = "text/html, application/xhtml+xml, application/xml;q=0.9, text/*;q=0.8") -> Fetched:
        """The response to GET `url`, redirects followed (each checked like the first, at most
        `max_redirects`). FetchRefused: the URL, a redirect or the content type is not allowed;
        FetchFailed: no usable response (the message names the URL and why)."""
        target = parse_target(url)
        hops = 0
        started = None
        referrer: str | None = None
        while True:
            try:
                addresses = resolve(target, self.policy.allow_hosts)  # before any connection
            except FetchRefused as error:
                if referrer is None:
                    raise
                raise FetchRefused(f"{referrer} redirects to a URL that is not fetched: {error}") from None
            self._wait_turn(target.host)
            started = started if started is not None else self._clock()
            headers = {"User-Agent": USER_AGENT, "Accept": accept, "Accept-Encoding": "identity",
                       **(validators or Validators()).headers()}
            connection, response = self._request(target, addresses, headers, started)
            try:
                if response.status in REDIRECTS:
                    location = response.getheader("Location")
                    if not location:
                        raise FetchFailed(f"{target.url}: HTTP {response.status} redirect without a Location")
                    hops += 1
                    if hops > self.policy.max_redirects:
                        raise FetchFailed(f"{url}: more than {self.policy.max_redirects} redirects")
                    referrer = target.url
                    try:
                        target = parse_target(urljoin(target.url, location.strip()))
                    except FetchRefused as error:
                        raise FetchRefused(f"{referrer} redirects to a URL that is not fetched: {error}") from None
                    continue
                return self._read(target, response, started)
            finally:
                connection.close()

    # -- internals -----------------------------------------------------------------------------
    def _wait_turn(self, host: str) -> None:
        """Sleep until `host` may be asked again; book the next slot for whoever comes after."""
        with self._slots:
            now = self._clock()
            slot = max(now, self._next_slot.get(host, now))
            self._next_slot[host] = slot + self.policy.host_delay_s
        if slot > now:
            self._sleep(slot - now)

    def _request(self, target: Target, addresses: list[IPAddress], headers: dict[str, str],
                 started: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        errors = []
        for address in addresses:
            connection = _PinnedConnection(target, address, self.policy, self._tls)
            try:
                connection.connect()
            except ssl.SSLError as error:  # the server answered, but not as the URL's host
                connection.close()
                raise _failure(target, error, self.policy) from None
            except TimeoutError:
                errors.append(f"{address}: no connection within {self.policy.connect_timeout_s:g} s")
                connection.close()
                continue
            except OSError as error:
                errors.append(f"{address}: {error.strerror or error}")
                connection.close()
                continue
            try:
                connection.request("GET", target.path, headers={"Host": target.host_header, **headers})
                return connection, connection.getresponse()
            except BaseException as error:  # noqa: BLE001 - closed, then re-raised as what it means
                connection.close()
                raise _failure(target, error, self.policy) from None
        raise FetchFailed(f"{target.url}: cannot connect ({'; '.join(errors)})")

    def _read(self, target: Target, response: http.client.HTTPResponse, started: float) -> Fetched:
        validators = Validators(etag=response.getheader("ETag"), last_modified=response.getheader("Last-Modified"))
        if response.status == 304:
            return Fetched(target.url, 304, "", None, b"", validators, not_modified=True,
                           seconds=self._clock() - started)
        if response.status != 200:
            raise FetchFailed(f"{target.url}: HTTP {response.status} {response.reason}".rstrip())
        media_type, charset = _content_type(response.getheader("Content-Type", ""))
        if media_type not in CONTENT_TYPES and not media_type.endswith("+xml"):
            raise FetchRefused(f"{target.url}: content type {media_type or 'missing'!r} is not an article, "
                               "feed or sitemap (HTML, XML or text)")
        encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
        if encoding != "identity":
            raise FetchFailed(f"{target.url}: the server sent a {encoding!r}-encoded body although none was asked for")
        limit = self.policy.max_bytes
        declared = response.getheader("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > limit:
            raise FetchFailed(f"{target.url}: {_size(int(declared))}, over the {_size(limit)} limit")
        parts, size = [], 0
        try:
            while chunk := response.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise FetchFailed(f"{target.url}: more than {_size(limit)}, over the {_size(limit)} limit (cut there)")
                if self._clock() - started > self.policy.total_timeout_s:
                    raise FetchFailed(f"{target.url}: not all of it arrived within "
                                      f"{self.policy.total_timeout_s:g} s (cut there)")
                parts.append(chunk)
        except FetchFailed:
            raise
        except BaseException as error:  # noqa: BLE001 - re-raised as what it means
            raise _failure(target, error, self.policy) from None
        return Fetched(target.url, 200, media_type, charset, b"".join(parts), validators,
                       seconds=self._clock() - started)


class _PinnedConnection(http.client.HTTPSConnection):
    """An HTTP(S) connection to a checked address, speaking to it as the URL's host."""

    def __init__(self, target: Target, address: IPAddress, policy: FetchPolicy, tls: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=policy.read_timeout_s, context=tls)
        self._address = str(address)
        self._connect_timeout = policy.connect_timeout_s
        self._tls_wanted = target.scheme == "https"

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self._connect_timeout)
        sock.settimeout(self.timeout)  # from now on: the read timeout, per receive
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host) if self._tls_wanted else sock


def _failure(target: Target, error: BaseException, policy: FetchPolicy) -> FetchFailed:
    if isinstance(error, TimeoutError):
        return FetchFailed(f"{target.url}: no answer within {policy.read_timeout_s:g} s (read timeout)")
    if isinstance(error, ssl.SSLError):
        why = error.verify_message if isinstance(error, ssl.SSLCertVerificationError) else error.reason
        return FetchFailed(f"{target.url}: TLS failed ({why or error})")
    if isinstance(error, http.client.HTTPException):
        return FetchFailed(f"{target.url}: malformed HTTP response ({type(error).__name__}: {error})")
    if isinstance(error, OSError):
        return FetchFailed(f"{target.url}: connection failed ({error.strerror or error})")
    if isinstance(error, Exception):
        return FetchFailed(f"{target.url}: {type(error).__name__}: {error}")
    raise error  # KeyboardInterrupt, SystemExit: not ours to turn into a message


def _content_type(header: str) -> tuple[str, str | None]:
    media_type, *params = header.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or None
    return media_type.strip().lower(), charset


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
