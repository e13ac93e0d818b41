"""Which URLs may be fetched: OWASP's SSRF prevention, resolve first and check every address.

A URL is fetched only over http or https, without credentials in it, and only if every address
its host resolves to is a public unicast one: loopback, private (RFC 1918, ULA), link-local (the
cloud metadata service at 169.254.169.254), multicast, reserved, unspecified and shared (CGNAT)
addresses are refused, as are IPv6 spellings of them (IPv4-mapped, 6to4, Teredo), unless the host
is named in RAG_FETCH_ALLOW_HOSTS. The fetcher connects to an address returned here, never
resolving the name again, so a DNS answer that changes between check and use (DNS rebinding)
cannot slip a private address in.
(https://cheatsheetseries.owasp.org/cheatsheets/Server_Side_Request_Forgery_Prevention_Cheat_Sheet.html)
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from rag.errors import FetchFailed, FetchRefused

SCHEMES = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,62})?(\.[a-z0-9_]([a-z0-9_-]{0,62})?)*\.?")  # labels, or IPv4


@dataclass(frozen=True, slots=True)
class Target:
    """A URL taken apart for one request: where to connect and what to ask for."""

    url: str
    scheme: str
    host: str  # lower-case, IDNA-encoded; IPv6 without brackets
    port: int
    path: str  # path and query, as sent in the request line

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def parse_target(url: str) -> Target:
    """The URL checked for what can be seen without resolving it (scheme, host, credentials)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise FetchRefused(f"{url!r} is not a valid URL ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise FetchRefused(f"{url!r}: only http and https URLs are fetched, not {scheme or 'a URL without a scheme'}")
    if not parts.hostname:
        raise FetchRefused(f"{url!r}: the URL names no host")
    if parts.username is not None or parts.password is not None:
        raise FetchRefused(f"{url!r}: URLs with a user name or password in them are not fetched")
    try:
        host = parts.hostname.encode("idna").decode("ascii") if not parts.hostname.isascii() else parts.hostname
    except UnicodeError:
        raise FetchRefused(f"{url!r}: the host name is not a valid international domain name") from None
    host = host.lower()
    if not _HOST_NAME.fullmatch(host):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise FetchRefused(f"{url!r}: {host!r} is not a host name or address") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in path):  # no header injection through the request line
        path = "".join(f"%{ord(ch):02X}" if ord(ch) <= 0x20 or ord(ch) == 0x7F else ch for ch in path)
    if not path.isascii():
        path = "".join(ch if ch.isascii() else "".join(f"%{b:02X}" for b in ch.encode("utf-8")) for ch in path)
    return Target(url=url.strip(), scheme=scheme, host=host, port=port or SCHEMES[scheme], path=path)


def forbidden_reason(address: IPAddress) -> str | None:
    """Why the address may not be fetched from, or None if it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            reason = forbidden_reason(embedded)
            return f"{reason} (inside {address})" if reason else None
    for reason, flag in (("loopback", address.is_loopback), ("unspecified", address.is_unspecified),
                         ("link-local", address.is_link_local), ("multicast", address.is_multicast),
                         ("reserved", address.is_reserved), ("private", address.is_private)):
        if flag:
            return f"a {reason} address"
    if not address.is_global:  # 100.64.0.0/10 (shared, CGNAT) and other special-purpose blocks
        return "a special-purpose address"
    return None


def resolve(target: Target, allow_hosts: frozenset[str]) -> list[IPAddress]:
    """The addresses to connect to for `target`, every one checked; FetchRefused if any is not
    allowed (a name that resolves to one public and one private address is refused: which one a
    connection would use is not ours to choose), FetchFailed if the name does not resolve."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise FetchFailed(f"{target.url}: cannot resolve host {target.host!r} ({error.strerror})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
    if not addresses:
        raise FetchFailed(f"{target.url}: host {target.host!r} has no address")
    if target.host in allow_hosts:
        return addresses
    for address in addresses:
        reason = forbidden_reason(address)
        if reason:
            where = f"is {reason}" if target.host == str(address) else f"resolves to {address}, {reason}"
            raise FetchRefused(
                f"{target.url}: refused: host {target.host!r} {where} (addresses inside the network are not "
                f"fetched; RAG_FETCH_ALLOW_HOSTS names hosts that may be)")
    return addresses
