"""Article ids: given ones are validated, derived ones are readable and stable across runs.

A derived id is a slug of what a person would recognise (`business-001`, `news-world-12345`)
plus the first 8 hex digits of a SHA-256 over the full resolved path, normalised URL or content,
so two files named `001.txt` in different folders never collide, and the same file always gets
the same id: citations survive a rebuild.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rag.errors import InvalidInput

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_SLUG_CHARS = 48
_HASH_CHARS = 8
_DEFAULT_PORTS = {"http": 80, "https": 443}


def validate_article_id(value: object) -> str:
    """A caller-given id: 1-128 characters of `[A-Za-z0-9._:-]`, starting alphanumeric."""
    if not isinstance(value, str):
        raise InvalidInput(f"id: expected a string, got {type_name(value)}")
    if not ID_PATTERN.fullmatch(value):
        raise InvalidInput(
            f"id: {value!r} is not a valid article id "
            "(1-128 characters of A-Z a-z 0-9 . _ : -, starting with a letter or digit)"
        )
    return value


def id_from_path(path: Path, *, item: int | None = None) -> str:
    """`business/001.txt` → `business-001-3f2a9c1b`; `item` numbers the records of one file."""
    resolved = str(path.resolve())
    words = [path.parent.name, path.stem] + ([str(item)] if item is not None else [])
    key = resolved if item is None else f"{resolved}#{item}"
    return _derived(words, key)


def id_from_upload(name: str, *, item: int | None = None) -> str:
    """A file sent over HTTP, by its base name: `001.txt` → `upload-001-3f2a9c1b`. The same name
    gives the same id, so sending a file again replaces its articles instead of copying them."""
    words = ["upload", posixpath.splitext(name)[0]] + ([str(item)] if item is not None else [])
    key = f"upload:{name}" if item is None else f"upload:{name}#{item}"
    return _derived(words, key)


def id_from_url(url: str) -> str:
    """`https://www.bbc.co.uk/news/business-4123.stm` → `news-business-4123-1a2b3c4d`."""
    normalized = normalize_url(url)
    parts = urlsplit(normalized)
    segments = [s for s in parts.path.split("/") if s]
    if segments:
        segments[-1] = posixpath.splitext(segments[-1])[0] or segments[-1]
    words = segments[-2:] or [parts.netloc or normalized]
    return _derived(words, normalized)


def id_from_content(title: str, text: str) -> str:
    """For a record with neither id nor url: the title's words and a hash of title and text."""
    return _derived([title], f"{title}\n{text}")


def normalize_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, no trailing slash: the spellings
    of one page share one id."""
    url = url.strip()
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:  # a port that is not a number: keep the URL as given
        return url
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    path = parts.path.rstrip("/") if parts.path not in ("", "/") else ""
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def type_name(value: object) -> str:
    """JSON's name for a value's type, for messages about records."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _derived(words: list[str], key: str) -> str:
    slug = _NOT_SLUG.sub("-", "-".join(words).lower()).strip("-")[:_SLUG_CHARS].strip("-")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    return f"{slug}-{digest}" if slug else digest
