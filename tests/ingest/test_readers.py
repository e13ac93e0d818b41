"""rag.ingest.readers: every file format, bad files failing alone, finding files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rag.ingest import find_files, read_file
from rag.types import Article, IngestFailure
from tests.support.ingest_samples import (
    ARTICLE_PARAGRAPHS,
    BBC_ARTICLE,
    LIMIT,
    SECRET,
    only,
    page,
    record,
    write,
)
from tests.support.paths import BBC, SEEDS


def test_txt_in_bbc_layout_gets_title_body_and_category(tmp_path: Path) -> None:
    path = write(tmp_path, "Business/001.txt", BBC_ARTICLE)
    article = only(read_file(path, max_bytes=LIMIT))
    assert article.title == "Ad sales boost Time Warner profit"
    assert article.text.startswith("Quarterly profits at US media giant TimeWarner jumped 76%")
    assert article.text.endswith("rose 2% to $11.1bn from $10.9bn.")
    assert "Ad sales boost" not in article.text
    assert article.category == "business"
    assert article.origin == str(path)
    assert re.fullmatch(r"business-001-[0-9a-f]{8}", article.id)


def test_txt_outside_bbc_layout_has_no_category(tmp_path: Path) -> None:
    article = only(read_file(write(tmp_path, "business/story.txt", BBC_ARTICLE), max_bytes=LIMIT))
    assert article.category is None
    assert article.title == "Ad sales boost Time Warner profit"


def test_html_file_gives_main_text_title_and_metadata(tmp_path: Path) -> None:
    article = only(read_file(write(tmp_path, "markets.HTML", page()), max_bytes=LIMIT))
    assert article.title == "Markets rally as bank holds rates"
    assert article.text.split("\n\n") == list(ARTICLE_PARAGRAPHS)
    assert article.source == "Example News"
    assert article.url == "https://example.org/business/markets-rally"
    for furniture in (
        "Home",
        "World",
        "cookies",
        "About us",
        "Privacy policy",
        "SCRIPT-TEXT",
        "color",
    ):
        assert furniture not in article.text


def test_json_list_and_single_object(tmp_path: Path) -> None:
    listed = write(
        tmp_path,
        "two.json",
        json.dumps([record(id="a-1"), record(id="a-2", title="Second", category="Sport")]),
    )
    items = read_file(listed, max_bytes=LIMIT)
    assert [i.id for i in items if isinstance(i, Article)] == ["a-1", "a-2"]
    assert [i.origin for i in items] == [f"{listed} item 1", f"{listed} item 2"]
    assert items[1].category == "sport" and items[1].title == "Second"

    single = write(tmp_path, "one.json", json.dumps(record(id="solo", source="BBC News")))
    article = only(read_file(single, max_bytes=LIMIT))
    assert (article.id, article.source, article.origin) == ("solo", "BBC News", str(single))


def test_jsonl_records_with_text_or_html_and_blank_lines(tmp_path: Path) -> None:
    html_record = {"id": "h-1", "html": page(hidden=f"<p hidden>{SECRET}</p>"), "source": "Example"}
    path = write(
        tmp_path,
        "feed.jsonl",
        json.dumps(record(id="t-1", published_at="2005-02-19T09:30:00Z"))
        + "\n\n"
        + json.dumps(html_record)
        + "\n",
    )
    first, second = read_file(path, max_bytes=LIMIT)
    assert isinstance(first, Article) and isinstance(second, Article)
    assert (first.origin, second.origin) == (f"{path} line 1", f"{path} line 3")
    assert first.published_at == datetime(2005, 2, 19, 9, 30, tzinfo=UTC)
    assert second.title == "Markets rally as bank holds rates"  # from the page, none given
    assert second.text.startswith(ARTICLE_PARAGRAPHS[0]) and "ZEBRA42" not in second.text


def test_seed_folder_runs_every_reader(tmp_path: Path) -> None:
    files, failures = find_files([SEEDS])
    assert failures == []
    assert {f.suffix for f in files} == {".txt", ".html", ".json", ".jsonl"}
    assert all(f.name != "README.md" for f in files)
    items = [item for f in files for item in read_file(f, max_bytes=LIMIT)]
    assert all(isinstance(i, Article) for i in items), [
        i for i in items if not isinstance(i, Article)
    ]
    assert len(items) == 11
    assert len({i.id for i in items}) == len(items)
    html = next(i for i in items if i.origin.endswith(".html"))
    assert html.title == "Intel unveils laser breakthrough"
    assert "Ignore previous instructions" not in html.text and "1950" not in html.text
    assert "Accept all cookies" not in html.text and "Most read" not in html.text
    assert "Dr Mario Paniccia" in html.text
    psp = next(i for i in items if i.id == "bbc-tech-025")
    assert psp.text.startswith(
        "US gamers will be able to buy Sony's PlayStation Portable from 24 March"
    )


BAD_FILES = {
    "cp1252.txt": (
        "Title\n\nIt cost “£5”.".encode("cp1252"),
        "not UTF-8 text (invalid byte 0x93 at offset 15)",
    ),
    "binary.txt": (b"Title\n\x00\x01\x02 body", "binary file, not text (NUL byte at offset 6)"),
    "utf16.txt": ("Title\n\nBody.".encode("utf-16"), "not UTF-8 text (UTF-16 byte order mark)"),
    "empty.txt": (b"", "empty file"),
    "blank.html": (b" \n\t\n", "empty file"),
    "broken.json": (b'{"title": "x", "text": ', "invalid JSON"),
    "number.json": (b"42", "expected a JSON object or a list of objects, got number"),
    "title-number.json": (
        json.dumps(record(title=7)).encode(),
        "title: expected a string, got number",
    ),
    "no-text.json": (json.dumps({"title": "Only a title"}).encode(), "text: missing"),
    "deep.json": (b"[" * 200_000 + b"]" * 200_000, "invalid JSON: nested too deeply"),
    "furniture.html": (
        b"<html><body><script>x()</script></body></html>",
        "no article text after cleaning",
    ),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_file_is_a_failure_naming_it_and_others_still_load(tmp_path: Path, name: str) -> None:
    content, reason = BAD_FILES[name]
    bad = write(tmp_path, name, content)
    good = write(tmp_path, "business/001.txt", BBC_ARTICLE)
    files, failures = find_files([tmp_path])
    assert failures == [] and set(files) == {bad, good}
    items = {f: read_file(f, max_bytes=LIMIT) for f in files}
    (failure,) = items[bad]
    assert isinstance(failure, IngestFailure)
    assert failure.origin == str(bad)
    assert failure.reason.startswith(reason), failure.reason
    assert only(items[good]).title == "Ad sales boost Time Warner profit"


def test_file_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.truncate(12_300_000)  # sparse: the size is real, the bytes are never read
    assert read_file(path, max_bytes=5_000_000) == [
        IngestFailure(str(path), "file is 12.3 MB, over the 5.0 MB limit")
    ]


def test_bad_jsonl_lines_fail_alone(tmp_path: Path) -> None:
    lines = [
        json.dumps(record(id="ok-1")),
        '{"title": "broken", ',
        "[" * 100_000,
        json.dumps(["not", "an", "object"]),
        json.dumps(record(id="ok-2", published_at="yesterday")),
        json.dumps(record(id="has space")),
        json.dumps(record(id="ok-1", title="Again")),
        json.dumps(record(id="ok-3")),
    ]
    path = write(tmp_path, "feed.jsonl", "\n".join(lines) + "\n")
    items = read_file(path, max_bytes=LIMIT)
    assert [i.id for i in items if isinstance(i, Article)] == ["ok-1", "ok-3"]
    failures = {i.origin: i.reason for i in items if isinstance(i, IngestFailure)}
    assert set(failures) == {f"{path} line {n}" for n in (2, 3, 4, 5, 6, 7)}
    assert failures[f"{path} line 2"].startswith("invalid JSON: Expecting")
    assert failures[f"{path} line 3"] == "invalid JSON: nested too deeply"
    assert failures[f"{path} line 4"] == "expected a JSON object, got array"
    assert failures[f"{path} line 5"].startswith("published_at: 'yesterday'")
    assert failures[f"{path} line 6"].startswith("id: 'has space'")
    assert failures[f"{path} line 7"] == f"duplicate id 'ok-1' (first used at {path} line 1)"


# --- records -------------------------------------------------------------------------------


def test_find_files_walks_filters_and_sorts(tmp_path: Path) -> None:
    for name in [
        "b/2.TXT",
        "b/1.txt",
        "a.Html",
        "c.htm",
        "d.json",
        "e.jsonl",
        "notes.md",
        "README.TXT",
        "readme.txt",
        ".hidden.txt",
        ".git/x.txt",
        "b/.cache/y.txt",
        "z.pdf",
    ]:
        write(tmp_path, name, "x")
    files, failures = find_files([tmp_path])
    assert failures == []
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a.Html",
        "b/1.txt",
        "b/2.TXT",
        "c.htm",
        "d.json",
        "e.jsonl",
    ]


def test_find_files_reports_missing_and_unsupported_paths(tmp_path: Path) -> None:
    good = write(tmp_path, "ok.txt", "x")
    pdf = write(tmp_path, "paper.pdf", "x")
    missing = tmp_path / "missing"
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "gone.txt")
    files, failures = find_files([good, pdf, missing, good, dangling, tmp_path])
    assert files == [good]  # named twice and inside the folder: read once
    assert [(f.origin, f.reason) for f in failures[1:]] == [
        (str(missing), "no such file or folder"),
        (str(dangling), "broken symbolic link"),
    ]
    assert failures[0].origin == str(pdf)
    assert failures[0].reason.startswith("unsupported file type '.pdf'")


# --- the BBC corpus ------------------------------------------------------------------------


def test_every_bbc_file_keeps_its_title_and_whole_body() -> None:
    if not BBC.is_dir():
        pytest.skip(f"BBC corpus not found at {BBC}")
    files, failures = find_files([BBC])
    assert failures == [] and len(files) == 2225
    wrong = []
    for path in files:
        items = read_file(path, max_bytes=LIMIT)
        article = only(items)
        # sport/199.txt is the corpus's one cp1252 file (a £ sign): read as such, not refused.
        encoding = "cp1252" if path.relative_to(BBC).as_posix() == "sport/199.txt" else "utf-8"
        first, _, rest = path.read_text(encoding=encoding).partition("\n")
        # Whitespace aside (glued sentences get a space), the body is the whole file after line 1.
        if (
            article.title != " ".join(first.split())
            or "".join(article.text.split()) != "".join(rest.split())
            or article.category != path.parent.name
        ):
            wrong.append(str(path))
    assert wrong == []
