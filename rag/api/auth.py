"""API keys and scopes. Every route declares what it needs with one dependency:

    @router.post("/ask", dependencies=[Depends(require_scope("read"))])

    @router.post("/ask", dependencies=READ, responses=ERROR_RESPONSES)  # the same, shorter
    router = APIRouter(dependencies=INGEST)                              # a whole router

`Authenticate`, the outermost middleware, enforces the declarations from the headers alone,
before the body is read and before a concurrency slot is taken (a keyless client that trickles a
body must not hold what authorised clients need).

Keys come from `RAG_API_KEYS` (or the file `RAG_API_KEYS_FILE`), a JSON object mapping each key
to its scopes: `read` (ask, search, briefings, chat, article reads), `ingest` (add and delete
articles), `admin` (everything). They are sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`,
never in the URL. Missing or unknown key: 401; a key without the scope: 403. With no keys
configured every request is let in, which is why `rag serve` then binds to loopback only.

Keys are held as SHA-256 digests and compared with `hmac.compare_digest` against every key, so
neither the answer time nor anything logged tells a caller how close a guess came. Logs and
rate-limit buckets name a key by its label (`key-` + 8 hex digits of its digest), never by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, HTTPException, Request
from fastapi.routing import RouteContext, iter_route_contexts
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from rag.api.limits import RateLimiter, send_error
from rag.api.schemas import ErrorResponse
from rag.config import Settings
from rag.errors import BadSettings

SCOPES = ("read", "ingest", "admin")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")

log = logging.getLogger(__name__)

# auto_error=False: this module answers 401 itself, with one message; declaring both schemes puts
# them in the OpenAPI document, so /docs offers "Authorize" and fuzzers know where a key goes.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer KEY")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: KEY")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True)
class ApiKey:
    label: str  # safe to log
    digest: bytes
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class KeyRing:
    """The configured keys; empty means authentication is off (loopback-only serving)."""

    def __init__(self, keys: Mapping[str, Iterable[str]]) -> None:
        self._keys: list[ApiKey] = []
        for n, (key, scopes) in enumerate(keys.items(), start=1):
            # Messages name a key by its position, never by its value: they may reach a log.
            if not isinstance(key, str) or len(key) < 16:
                raise BadSettings(f"API key #{n} is shorter than 16 characters; use a long random string")
            if not _VISIBLE_ASCII.fullmatch(key):
                # HTTP header values arrive as Latin-1 bytes and clients encode them as ASCII (httpx,
                # browsers' fetch): a key with other characters, or spaces, could never be sent.
                raise BadSettings(f"API key #{n} holds characters other than visible ASCII (letters, digits, "
                                  "punctuation; no spaces): clients cannot send it in a header")
            if isinstance(scopes, str) or not isinstance(scopes, Iterable):
                raise BadSettings(f"API key #{n}: scopes must be a list such as [\"read\"], got {scopes!r}")
            scopes = frozenset(scopes)
            if unknown := scopes - set(SCOPES):
                raise BadSettings(f"API key #{n}: unknown scope(s) {sorted(unknown)} (known: {', '.join(SCOPES)})")
            if not scopes:
                raise BadSettings(f"API key #{n} has no scopes")
            digest = _digest(key)
            self._keys.append(ApiKey(f"key-{digest.hex()[:8]}", digest, scopes))

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        if settings.api_keys is not None and settings.api_keys_file is not None:
            raise BadSettings("set RAG_API_KEYS or RAG_API_KEYS_FILE, not both")
        if settings.api_keys_file is not None:
            try:
                text, origin = settings.api_keys_file.read_text(), f"RAG_API_KEYS_FILE ({settings.api_keys_file})"
            except OSError as error:
                raise BadSettings(f"cannot read RAG_API_KEYS_FILE {settings.api_keys_file}: {error.strerror}") from None
        elif settings.api_keys is not None:
            keys = settings.api_keys  # a plain str when set by model_copy(update=...), as tests do
            text = keys.get_secret_value() if isinstance(keys, SecretStr) else str(keys)
            origin = "RAG_API_KEYS"
        else:
            return cls({})
        try:
            keys = json.loads(text)
        except json.JSONDecodeError as error:  # the message holds a position, not the text
            raise BadSettings(f"{origin} is not valid JSON ({error.msg} at position {error.pos})") from None
        if not isinstance(keys, dict):
            raise BadSettings(f"{origin} must be a JSON object mapping each key to its scopes")
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def identify(self, key: str) -> ApiKey | None:
        """The key's entry, or None. Every key is compared (no early exit), in constant time."""
        digest = _digest(key)
        found = None
        for entry in self._keys:
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        return found


# Query parameters that look like a key: refused with a hint, never used (a URL is logged, by us,
# by proxies and in browser histories; headers are not).
_KEY_PARAMS = frozenset({"api_key", "apikey", "api-key", "key", "token", "access_token", "x-api-key"})
ANY_SCOPE = "any"  # a path that needs a valid key, whatever its scopes (docs, unknown paths)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def require_scope(scope: str) -> Callable[..., Awaitable[ApiKey | None]]:
    """A route's declaration that it needs a key with `scope` (or `admin`; any known key for
    `ANY_SCOPE`). `Authenticate` reads
    it from the route and enforces it from the headers alone, before the body is read; this
    dependency hands the route the key (None when authentication is off) and refuses again if
    the middleware was ever left out. Its two header parameters put both ways to send a key in the
    OpenAPI document."""
    if scope not in SCOPES and scope != ANY_SCOPE:
        raise ValueError(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key_header)],
    ) -> ApiKey | None:
        key = request_key(request)
        if request.app.state.keyring.enabled:
            if key is None:
                raise _unauthorized("missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
            if scope != ANY_SCOPE and not key.allows(scope):
                raise HTTPException(403, f"this API key lacks the {scope!r} scope")
        return key

    dependency.__name__ = f"require_{scope}"
    dependency.required_scope = scope  # type: ignore[attr-defined]  # read by Authenticate
    return dependency


def route_scope(route: RouteContext) -> str | None:
    """The scope a route declared with `require_scope` (on itself or its router), or None."""
    dependant = getattr(route, "dependant", None)
    pending = list(dependant.dependencies) if dependant is not None else []
    while pending:
        dependency = pending.pop()
        if (scope := getattr(dependency.call, "required_scope", None)) is not None:
            return scope
        pending.extend(dependency.dependencies)
    return None


def key_from_headers(headers: Headers) -> str | None:
    """The key sent as `Authorization: Bearer KEY` (first) or `X-API-Key: KEY`, as FastAPI's
    HTTPBearer and APIKeyHeader read them."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key") or None


class Authenticate:
    """Pure ASGI middleware, outermost: who is asking and may they, from the request line and
    headers alone, before any byte of the body is read and before a concurrency slot is taken, so
    a client without a valid key costs a header parse and is cut off (its refusal closes the
    connection when a body may follow: slow clients cannot hold anything).

    Per request: the route's scope (declared with `require_scope`); no scope declared (/health,
    Slack's signed commands, the docs when public) → open. With keys configured: a client address
    over its budget of failed authentications → 429 without looking at the key; missing or unknown
    key → 401 (counted against that budget; logged at the first failure of a window and when the
    budget runs out, never once per failure); key without the scope → 403; key over its request
    budget → 429. Then 405 with every method the path has (Starlette's router names only one
    route's). The key is left in `scope["state"]["api_key"]` for `require_scope`."""

    def __init__(self, app: ASGIApp, *, router: Router, keyring: KeyRing, rate_limiter: RateLimiter,
                 failures: RateLimiter, private_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.router = router
        self.keyring = keyring
        self.rate_limiter = rate_limiter
        self.failures = failures
        self.private_paths = private_paths  # open routes that still need a key (the docs)
        self._routes: list[tuple[RouteContext, str | None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared, allowed = self._match(scope)
        if self.keyring.enabled:
            needed = ANY_SCOPE if declared is False or scope["path"] in self.private_paths else declared
            if needed is not None and not await self._admit(scope, send, needed):
                return
        if declared is False and allowed:
            await send_error(send, 405, "method not allowed", close=_has_body(scope),
                             headers=[(b"allow", ", ".join(sorted(allowed)).encode())])
            return
        await self.app(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[str | None | bool, set[str]]:
        """The scope the route taking the request declared (None: none; False: no route takes
        it), and every method of the routes whose path matches."""
        if self._routes is None:  # every route is there by the first request
            self._routes = [(route, route_scope(route)) for route in iter_route_contexts(self.router.routes)]
        allowed: set[str] = set()
        for route, declared in self._routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return declared, allowed
            if match is Match.PARTIAL:
                allowed |= set(route.methods or ())
        return False, allowed

    async def _admit(self, scope: Scope, send: Send, needed: str) -> bool:
        close = _has_body(scope)
        client = scope["client"][0] if scope.get("client") else "unknown"
        path = scope["path"]
        wait = self.failures.wait(client)
        if wait:
            await send_error(send, 429, f"too many failed authentications from {client}; retry in {wait} s",
                             retry_after=wait, close=close)
            return False
        headers = Headers(scope=scope)
        token = key_from_headers(headers)
        key = self.keyring.identify(token) if token else None
        if key is None:
            self.failures.hit(client)
            failures = self.failures.count(client)
            if token is None:
                detail = "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
                query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
                if _KEY_PARAMS & {name.lower() for name, _ in query}:
                    detail += " (a key in the URL is refused: URLs are logged)"
            else:
                detail = "unknown API key"
            if failures == 1:
                log.warning("refused a request from %s to %s: %s", client, path, detail.partition(":")[0])
            elif failures == self.failures.per_minute:
                log.warning("%s failed authentication %d times in %g s: refusing it until the window has room",
                            client, failures, self.failures.WINDOW_S)
            await send_error(send, 401, detail, close=close, headers=[(b"www-authenticate", b"Bearer")])
            return False
        if needed != ANY_SCOPE and not key.allows(needed):
            log.warning("refused %s from %s to %s: no %r scope", key.label, client, path, needed)
            await send_error(send, 403, f"this API key lacks the {needed!r} scope", close=close)
            return False
        wait = self.rate_limiter.hit(key.label)
        if wait:
            await send_error(send, 429, f"rate limit of {self.rate_limiter.per_minute} requests per minute "
                                        f"reached; retry in {wait} s", retry_after=wait, close=close)
            return False
        scope.setdefault("state", {})["api_key"] = key
        return True


def _has_body(scope: Scope) -> bool:
    """Whether the request may still send a body (a refusal then closes the connection rather than
    wait for it)."""
    headers = dict(scope.get("headers") or ())
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in headers or length not in (b"", b"0")


def request_key(request: Request) -> ApiKey | None:
    """The key `Authenticate` admitted the request with; None when keys are off."""
    return request.scope.get("state", {}).get("api_key")


ANY_KEY = [Depends(require_scope(ANY_SCOPE))]
READ = [Depends(require_scope("read"))]
INGEST = [Depends(require_scope("ingest"))]
ADMIN = [Depends(require_scope("admin"))]

# What a route may answer besides its own result, for the OpenAPI document (and so for clients
# and fuzzers). 422 is redefined: domain errors put a message in `detail`, FastAPI a list.
ERROR_RESPONSES: dict[int | str, dict] = {
    code: {"model": ErrorResponse, "description": text} for code, text in (
        (400, "The body is not valid JSON text"), (401, "Missing or unknown API key"),
        (403, "The API key lacks the scope"), (408, "The body did not arrive within the body timeout"),
        (413, "Request body too large"),
        (422, "Invalid request: a message, or a list of field errors"),
        (429, "Rate limit, or failed-authentication limit, reached (see Retry-After)"),
        (503, "Busy, loading or index unusable (see Retry-After)"), (504, "Request timeout"))
}
NOT_FOUND: dict[int | str, dict] = {404: {"model": ErrorResponse, "description": "No article with that id"}}
UPSTREAM: dict[int | str, dict] = {
    502: {"model": ErrorResponse, "description": "A URL to fetch: its server failed (HTTP error, timeout, too large)"}}
