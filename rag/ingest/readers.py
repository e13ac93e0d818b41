"""Files and folders → Articles, or IngestFailures that say which file (and line) and why.

Readers never raise for bad content: one broken file must not stop a folder of good ones.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path

from rag.errors import InvalidInput
from rag.ingest.cleaning import clean_text, fallback_title
from rag.ingest.dates import find_date
from rag.ingest.html import read_html
from rag.ingest.ids import id_from_path, type_name
from rag.ingest.records import article_from_record
from rag.types import Article, IngestFailure

SUFFIXES = (".txt", ".html", ".htm", ".json", ".jsonl")

Item = Article | IngestFailure


def find_files(paths: Sequence[Path]) -> tuple[list[Path], list[IngestFailure]]:
    """The article files named by `paths`, in the order given, each folder's files sorted.

    Folders are walked recursively, skipping dot-named files and folders and README* files
    (the BBC corpus ships a README.TXT); only `SUFFIXES` are kept, case-insensitively. A path
    that does not exist, or a named file with another suffix, is a failure naming it.
    """
    found: list[Path] = []
    failures: list[IngestFailure] = []
    seen: set[Path] = set()

    def keep(file: Path) -> None:
        key = file.resolve()
        if key not in seen:
            seen.add(key)
            found.append(file)

    for path in map(Path, paths):
        if path.is_dir():
            for file in _walk(path, failures):
                keep(file)
        elif path.is_file():
            if path.suffix.lower() in SUFFIXES:
                keep(path)
            else:
                failures.append(IngestFailure(str(path), _unsupported(path)))
        elif path.is_symlink() and not path.exists():
            failures.append(IngestFailure(str(path), "broken symbolic link"))
        elif path.exists():
            failures.append(IngestFailure(str(path), "not a regular file or folder"))
        else:
            failures.append(IngestFailure(str(path), "no such file or folder"))
    return found, list(dict.fromkeys(failures))  # a path named and also walked: reported once


def read_file(path: Path, *, max_bytes: int) -> list[Item]:
    """One file → its articles (a .json/.jsonl file may hold many) or failures; never raises
    for bad content. The size is checked before reading, so a huge file costs nothing."""
    origin = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        return [IngestFailure(origin, _unsupported(path))]
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return [
                IngestFailure(origin, f"file is {_size(size)}, over the {_size(max_bytes)} limit")
            ]
        data = path.read_bytes()
    except OSError as ex:
        return [IngestFailure(origin, f"cannot read the file: {ex.strerror or ex}")]
    try:
        text = decode(data)
    except ValueError as ex:
        return [IngestFailure(origin, str(ex))]
    if not text.strip():
        return [IngestFailure(origin, "empty file")]
    try:
        return _parse(path, suffix, text)
    except Exception as ex:  # noqa: BLE001 - a parser's own bug must fail one file, not the run
        return [IngestFailure(origin, f"cannot parse the file: {type(ex).__name__}: {ex}")]


def _parse(path: Path, suffix: str, text: str) -> list[Item]:
    if suffix == ".txt":
        return [_txt_article(path, text)]
    if suffix in (".html", ".htm"):
        return [_html_article(path, text)]
    if suffix == ".json":
        return list(_json_articles(path, text))
    return list(_jsonl_articles(path, text))


def decode(data: bytes) -> str:
    """UTF-8 text (a BOM is allowed); ValueError says why not. The one other encoding accepted is
    cp1252 with a sprinkle of non-ASCII typography (a £ or an é in an English article, as in one
    BBC file); anything denser is refused rather than guessed, which could index wrong characters."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError("not UTF-8 text (UTF-16 byte order mark); save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"binary file, not text (NUL byte at offset {nul})")
    bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[bom:].decode("utf-8")
    except UnicodeDecodeError as ex:
        offset = bom + ex.start
        legacy = _sparse_cp1252(data)
        if legacy is not None:
            return legacy
        raise ValueError(
            f"not UTF-8 text (invalid byte 0x{data[offset]:02x} at offset {offset})"
        ) from None


def _sparse_cp1252(data: bytes) -> str | None:
    """`data` as cp1252 if at most 1 byte in 200 is non-ASCII and each decodes to a printable
    letter, currency sign or punctuation; else None."""
    high = sum(b >= 0x80 for b in data)
    if high * 200 > len(data):
        return None
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    printable = ("L", "P", "S", "N", "Z")
    if any(ord(ch) >= 0x80 and unicodedata.category(ch)[0] not in printable for ch in text):
        return None
    return text


def _txt_article(path: Path, text: str) -> Item:
    title, body = clean_text(text)
    if not body:
        return IngestFailure(str(path), "no article text after cleaning")
    # BBC layout: `business/001.txt` belongs to the category of its folder.
    category = path.parent.name.lower() if path.stem.isdigit() and path.parent.name else None
    dated = find_date(text=body)
    return Article(
        id=id_from_path(path),
        title=title or fallback_title(body),
        text=body,
        category=category,
        origin=str(path),
        published_at=dated.published_at,
        date_source=dated.source,
    )


def _html_article(path: Path, html: str) -> Item:
    page = read_html(html)
    if not page.text:
        return IngestFailure(str(path), "no article text after cleaning")
    # A page's own date metadata is a hint: one it cannot parse is skipped, not worth refusing it for.
    dated = find_date(meta=page.published_at, url=page.url, text=page.text)
    return Article(
        id=id_from_path(path),
        title=page.title or fallback_title(page.text),
        text=page.text,
        source=page.source,
        url=page.url,
        published_at=dated.published_at,
        date_source=dated.source,
        origin=str(path),
    )


def _json_articles(path: Path, text: str) -> Iterator[Item]:
    try:
        value = _load_json(text)
    except ValueError as ex:
        yield IngestFailure(str(path), str(ex))
        return
    if isinstance(value, dict):
        yield _record(value, origin=str(path), default_id=id_from_path(path))
    elif isinstance(value, list):
        if not value:
            yield IngestFailure(str(path), "empty JSON list: no articles")
        items = [
            _record(item, origin=f"{path} item {n}", default_id=id_from_path(path, item=n))
            for n, item in enumerate(value, start=1)
        ]
        yield from _unique(items)
    else:
        yield IngestFailure(
            str(path), f"expected a JSON object or a list of objects, got {type_name(value)}"
        )


def _jsonl_articles(path: Path, text: str) -> Iterator[Item]:
    items: list[Item] = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        origin = f"{path} line {n}"
        try:
            value = _load_json(line)
        except ValueError as ex:
            items.append(IngestFailure(origin, str(ex)))
            continue
        items.append(_record(value, origin=origin, default_id=id_from_path(path, item=n)))
    yield from _unique(items)


def _load_json(text: str) -> object:
    """Parsed JSON, or ValueError with the reason."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as ex:
        raise ValueError(f"invalid JSON: {ex}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None


def _record(value: object, *, origin: str, default_id: str) -> Item:
    if not isinstance(value, dict):
        return IngestFailure(origin, f"expected a JSON object, got {type_name(value)}")
    try:
        return article_from_record(value, origin=origin, default_id=default_id)
    except InvalidInput as ex:
        return IngestFailure(origin, str(ex))


def _unique(items: list[Item]) -> Iterator[Item]:
    """A second record with an id already used in the same file would silently replace the
    first: it is a failure instead."""
    first_origin: dict[str, str] = {}
    for item in items:
        if isinstance(item, Article):
            if item.id in first_origin:
                yield IngestFailure(
                    item.origin, f"duplicate id {item.id!r} (first used at {first_origin[item.id]})"
                )
                continue
            first_origin[item.id] = item.origin
        yield item


def _walk(folder: Path, failures: list[IngestFailure]) -> list[Path]:
    def report(error: OSError) -> None:
        failures.append(
            IngestFailure(str(error.filename or folder), f"cannot list: {error.strerror}")
        )

    files = []
    for root, dirs, names in os.walk(folder, onerror=report):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith(".") or name.upper().startswith("README"):
                continue
            if os.path.splitext(name)[1].lower() not in SUFFIXES:
                continue
            file = Path(root, name)
            if file.is_symlink() and not file.exists():
                failures.append(IngestFailure(str(file), "broken symbolic link"))
            else:
                files.append(file)
    return sorted(files)


def _unsupported(path: Path) -> str:
    kind = f"'{path.suffix}'" if path.suffix else "without a suffix"
    return f"unsupported file type {kind} (expected {', '.join(SUFFIXES)})"


def _size(n: int) -> str:
    """Sizes in the units people use for them: 12.3 MB, 4.0 KB, 512 bytes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
