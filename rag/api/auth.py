"""API keys and scopes. Every route declares what it needs with one dependency:

    @router.post("/ask", dependencies=[Depends(require_scope("read"))])

    @router.post("/ask", dependencies=READ, responses=ERROR_RESPONSES)  # the same, shorter
    router = APIRouter(dependencies=INGEST)                              # a whole router

Keys come from `RAG_API_KEYS` (or the file `RAG_API_KEYS_FILE`), a JSON object mapping each key
to its scopes: `read` (ask, search, briefings, chat, article reads), `ingest` (add and delete
articles), `admin` (everything). They are sent as `Authorization: Bearer KEY` or `X-API-Key: KEY`.
Missing or unknown key: 401; a key without the scope: 403. With no keys configured every request
is let in, which is why `rag serve` then binds to loopback only.

Keys are held as SHA-256 digests and compared with `hmac.compare_digest` against every key, so
neither the answer time nor anything logged tells a caller how close a guess came. Logs and
rate-limit buckets name a key by its label (`key-` + 8 hex digits of its digest), never by itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from rag.api.schemas import ErrorResponse
from rag.config import Settings
from rag.errors import BadSettings

SCOPES = ("read", "ingest", "admin")

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


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def require_scope(scope: str | None) -> Callable[..., Awaitable[ApiKey | None]]:
    """A dependency admitting requests whose key has `scope` (or `admin`; any known key for None),
    then counting them against the key's rate limit. Returns the key (None when authentication
    is off)."""
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r} (known: {', '.join(SCOPES)})")

    async def dependency(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key_header)],
    ) -> ApiKey | None:
        ring: KeyRing = request.app.state.keyring
        key = None
        client = request.client.host if request.client else "unknown"
        if ring.enabled:
            token = bearer.credentials if bearer is not None else header_key
            if not token:
                raise _unauthorized("missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
            key = ring.identify(token)
            if key is None:
                log.warning("refused a request from %s to %s: unknown API key", client, request.url.path)
                raise _unauthorized("unknown API key")
            if scope is not None and not key.allows(scope):
                log.warning("refused %s from %s to %s: no %r scope", key.label, client, request.url.path, scope)
                raise HTTPException(403, f"this API key lacks the {scope!r} scope")
        request.state.api_key = key
        wait = request.app.state.rate_limiter.hit(key.label if key else f"client-{client}")
        if wait:
            raise HTTPException(
                429, f"rate limit of {request.app.state.rate_limiter.per_minute} requests per minute "
                     f"reached; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        return key

    dependency.__name__ = f"require_{scope or 'key'}"
    return dependency


ANY_KEY = [Depends(require_scope(None))]
READ = [Depends(require_scope("read"))]
INGEST = [Depends(require_scope("ingest"))]
ADMIN = [Depends(require_scope("admin"))]

# What a route may answer besides its own result, for the OpenAPI document (and so for clients
# and fuzzers). 422 is redefined: domain errors put a message in `detail`, FastAPI a list.
ERROR_RESPONSES: dict[int | str, dict] = {
    code: {"model": ErrorResponse, "description": text} for code, text in (
        (400, "The body is not valid JSON text"), (401, "Missing or unknown API key"),
        (403, "The API key lacks the scope"), (413, "Request body too large"),
        (422, "Invalid request: a message, or a list of field errors"),
        (429, "Rate limit reached (see Retry-After)"),
        (503, "Busy, loading or index unusable (see Retry-After)"), (504, "Request timeout"))
}
NOT_FOUND: dict[int | str, dict] = {404: {"model": ErrorResponse, "description": "No article with that id"}}
