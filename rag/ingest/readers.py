"""Files and folders → Articles, or IngestFailures that say which file (and line) and why.

Readers never raise for bad content: one broken file must not stop a folder of good ones. Nor
may one hang the run, which holds the writer lock: only regular files are read (a FIFO blocks its
reader until someone writes to it), each within a read timeout (a hung network or FUSE mount).
Inside a folder, a symbolic link is followed only to a regular file inside that same folder; one
leading outside it is reported and not read (`ln -s /etc/passwd folder/x.txt` must not become an
article that any reader can fetch), and links to folders are not walked.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

from rag.errors import InvalidInput
from rag.ingest.cleaning import clean_text, fallback_title
from rag.ingest.dates import find_date
from rag.ingest.html import read_html
from rag.ingest.ids import id_from_path, id_from_upload, type_name
from rag.ingest.records import article_from_record
from rag.types import Article, IngestFailure

SUFFIXES = (".txt", ".html", ".htm", ".json", ".jsonl")

Item = Article | IngestFailure
T = TypeVar("T")


def find_files(paths: Sequence[Path]) -> tuple[list[Path], list[IngestFailure]]:
    """The article files named by `paths`, in the order given, each folder's files sorted.

    Folders are walked recursively, skipping dot-named files and folders and README* files
    (the BBC corpus ships a README.TXT); only `SUFFIXES` are kept, case-insensitively, and only
    regular files, or symbolic links to regular files inside the folder named. A path that does
    not exist, a named file with another suffix, and a FIFO, device, socket or link leading
    outside the folder are failures naming them. A file named on its own is read wherever a link
    leads: the user named it.
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
            failures.append(IngestFailure(str(path), f"not a regular file ({_kind(path.stat().st_mode)}): not read"))
        else:
            failures.append(IngestFailure(str(path), "no such file or folder"))
    return found, list(dict.fromkeys(failures))  # a path named and also walked: reported once


def read_file(path: Path, *, max_bytes: int, timeout_s: float = 30.0) -> list[Item]:
    """One file → its articles (a .json/.jsonl file may hold many) or failures; never raises
    for bad content, never blocks past `timeout_s`. Only a regular file is read; its size is
    checked before reading, so a huge file costs nothing."""
    origin = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        return [IngestFailure(origin, _unsupported(path))]
    try:
        data = with_deadline(lambda: _read_regular(path, max_bytes), timeout_s)
    except TimeoutError:
        return [IngestFailure(origin, f"not read within the {timeout_s:g} s read timeout "
                                      "(RAG_FILE_READ_TIMEOUT_S); a hung mount?")]
    except NotRegular as ex:
        return [IngestFailure(origin, str(ex))]
    except OSError as ex:
        return [IngestFailure(origin, f"cannot read the file: {ex.strerror or ex}")]
    if isinstance(data, int):
        return [IngestFailure(origin, f"file is {_size(data)}, over the {_size(max_bytes)} limit")]
    return _read(path, data, _Naming(origin, lambda item=None: id_from_path(path, item=item)))


def read_upload(name: str, data: bytes, *, max_bytes: int) -> list[Item]:
    """A file sent over HTTP → its articles or failures, read as `read_file` reads one from disk.
    Only the base name counts (a folder in it is dropped, never resolved); ids derive from it
    (`id_from_upload`), so sending the same file again replaces its articles."""
    base = PurePosixPath(name.replace("\\", "/")).name.strip()
    origin = f"upload {base!r}"
    path = Path(base or "unnamed")
    if path.suffix.lower() not in SUFFIXES:
        return [IngestFailure(origin, _unsupported(path))]
    if len(data) > max_bytes:
        return [IngestFailure(origin, f"file is {_size(len(data))}, over the {_size(max_bytes)} limit")]
    return _read(path, data, _Naming(origin, lambda item=None: id_from_upload(base, item=item)))


@dataclass(frozen=True)
class _Naming:
    """How a file's articles are named: `origin` in messages, `id_of(item)` for derived ids."""

    origin: str
    id_of: Callable[..., str]


def _read(path: Path, data: bytes, naming: _Naming) -> list[Item]:
    try:
        text = decode(data)
    except ValueError as ex:
        return [IngestFailure(naming.origin, str(ex))]
    if not text.strip():
        return [IngestFailure(naming.origin, "empty file")]
    try:
        return _parse(path, path.suffix.lower(), text, naming)
    except Exception as ex:  # noqa: BLE001 - a parser's own bug must fail one file, not the run
        return [IngestFailure(naming.origin, f"cannot parse the file: {type(ex).__name__}: {ex}")]


class NotRegular(OSError):
    """The path is a FIFO, a device, a socket or a folder: nothing to read as an article."""


def _read_regular(path: Path, max_bytes: int) -> bytes | int:
    """The bytes of the regular file at `path`, or its size when over `max_bytes`. Opened without
    blocking (opening a FIFO for reading otherwise waits for a writer), then checked on the open
    descriptor, so a file swapped for a FIFO after `find_files` looked is still refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(f"not a regular file ({_kind(info.st_mode)}): not read")
        if info.st_size > max_bytes:
            return info.st_size
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(max_bytes + 1)
        return len(data) if len(data) > max_bytes else data  # it grew since fstat
    finally:
        os.close(fd)


def with_deadline(work: Callable[[], T], seconds: float) -> T:
    """`work()`'s result or exception, or TimeoutError after `seconds`. The work runs in a daemon
    thread: a system call stuck in a hung mount cannot be interrupted, so it is left behind (and
    ends with the process) while the caller goes on."""
    outcome: list = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as error:  # noqa: BLE001 - handed to the caller as is
            outcome.append((False, error))

    thread = threading.Thread(target=run, name="rag-read", daemon=True)
    thread.start()
    thread.join(seconds)
    if not outcome:
        raise TimeoutError(f"not done within {seconds:g} s")
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a file"


def _parse(path: Path, suffix: str, text: str, naming: _Naming) -> list[Item]:
    if suffix == ".txt":
        return [_txt_article(path, text, naming)]
    if suffix in (".html", ".htm"):
        return [_html_article(text, naming)]
    if suffix == ".json":
        return list(_json_articles(text, naming))
    return list(_jsonl_articles(text, naming))


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


def _txt_article(path: Path, text: str, naming: _Naming) -> Item:
    title, body = clean_text(text)
    if not body:
        return IngestFailure(naming.origin, "no article text after cleaning")
    # BBC layout: `business/001.txt` belongs to the category of its folder.
    category = path.parent.name.lower() if path.stem.isdigit() and path.parent.name else None
    dated = find_date(text=body)
    return Article(
        id=naming.id_of(),
        title=title or fallback_title(body),
        text=body,
        category=category,
        origin=naming.origin,
        published_at=dated.published_at,
        date_source=dated.source,
    )


def _html_article(html: str, naming: _Naming) -> Item:
    page = read_html(html)
    if not page.text:
        return IngestFailure(naming.origin, "no article text after cleaning")
    # A page's own date metadata is a hint: one it cannot parse is skipped, not worth refusing it for.
    dated = find_date(meta=page.published_at, url=page.url, text=page.text)
    return Article(
        id=naming.id_of(),
        title=page.title or fallback_title(page.text),
        text=page.text,
        source=page.source,
        url=page.url,
        published_at=dated.published_at,
        date_source=dated.source,
        origin=naming.origin,
    )


def _json_articles(text: str, naming: _Naming) -> Iterator[Item]:
    origin = naming.origin
    try:
        value = _load_json(text)
    except ValueError as ex:
        yield IngestFailure(origin, str(ex))
        return
    if isinstance(value, dict):
        yield _record(value, origin=origin, default_id=naming.id_of())
    elif isinstance(value, list):
        if not value:
            yield IngestFailure(origin, "empty JSON list: no articles")
        items = [
            _record(item, origin=f"{origin} item {n}", default_id=naming.id_of(item=n))
            for n, item in enumerate(value, start=1)
        ]
        yield from _unique(items)
    else:
        yield IngestFailure(
            origin, f"expected a JSON object or a list of objects, got {type_name(value)}"
        )


def _jsonl_articles(text: str, naming: _Naming) -> Iterator[Item]:
    items: list[Item] = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        origin = f"{naming.origin} line {n}"
        try:
            value = _load_json(line)
        except ValueError as ex:
            items.append(IngestFailure(origin, str(ex)))
            continue
        items.append(_record(value, origin=origin, default_id=naming.id_of(item=n)))
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

    root = folder.resolve()
    files = []
    # followlinks=False: a link to a folder is listed in `dirs` but not walked (its files inside
    # the folder are reached by their real path; outside it, they are not ours to read).
    for parent, dirs, names in os.walk(folder, onerror=report):
        for name in dirs:
            link = Path(parent, name)
            if link.is_symlink() and not _inside(link.resolve(), root):
                failures.append(IngestFailure(str(link), f"symbolic link to a folder outside {folder}: not followed"))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith(".") or name.upper().startswith("README"):
                continue
            if os.path.splitext(name)[1].lower() not in SUFFIXES:
                continue
            file = Path(parent, name)
            if problem := _unreadable(file, root, folder):
                failures.append(IngestFailure(str(file), problem))
            else:
                files.append(file)
    return sorted(files)


def _unreadable(file: Path, root: Path, folder: Path) -> str | None:
    """Why a file found in a folder is not to be read, or None: it must be a regular file, or a
    symbolic link to one inside the folder (`root` is the folder's real path)."""
    try:
        info = file.lstat()
        if stat.S_ISLNK(info.st_mode):
            target = file.resolve(strict=True)
            if not _inside(target, root):
                return f"symbolic link to a file outside {folder}: not followed"
            info = target.stat()
    except FileNotFoundError:
        return "broken symbolic link"
    except (OSError, RuntimeError) as error:  # RuntimeError: a loop of links
        return f"cannot follow: {getattr(error, 'strerror', None) or error}"
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file ({_kind(info.st_mode)}): not read"
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _unsupported(path: Path) -> str:
    kind = f"'{path.suffix}'" if path.suffix else "without a suffix"
    return f"unsupported file type {kind} (expected {', '.join(SUFFIXES)})"


def _size(n: int) -> str:
    """Sizes in the units people use for them: 12.3 MB, 4.0 KB, 512 bytes."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
