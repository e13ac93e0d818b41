"""One article, one copy: the same title and text arriving by two paths (two folders, a file and
a record) is stored once, and the README's steps (seeds, then the BBC folder) never duplicate."""

from __future__ import annotations

import shutil
import sqlite3

from rag.api.app import create_app
from rag.config import Settings
from rag.ingest import find_files, read_file
from rag.service import build_service
from tests.support.paths import BBC, SEEDS
from tests.support.servers import live_server


def _ingest(service, *paths):
    files, missing = find_files(list(paths))
    return service.ingest([*missing, *(item for f in files for item in read_file(f, max_bytes=5_000_000))])


def _stored(index):
    with sqlite3.connect(index / "docstore.sqlite") as db:
        return db.execute("SELECT id, title FROM articles ORDER BY id").fetchall()


def test_one_story_by_two_folders_and_a_record_is_stored_once(tmp_path, embedder):
    story = BBC / "business" / "047.txt"
    for folder in ("a", "b"):
        (tmp_path / folder / "business").mkdir(parents=True)
        shutil.copy(story, tmp_path / folder / "business" / "047.txt")
    title, text = story.read_text(encoding="utf-8").split("\n", 1)
    service = build_service(Settings(index_dir=tmp_path / "index"), embedder)
    try:
        first = _ingest(service, tmp_path / "a")
        assert len(first.ingested) == 1 and not first.duplicates
        kept = first.ingested[0]
        again = _ingest(service, tmp_path / "b")
        assert again.ingested == [] and again.duplicates == [(again.duplicates[0][0], kept)]
        with live_server(create_app(service.settings, service)) as http:
            # the same story as a record, with other spacing and its own id
            body = http.post("/articles", json={"id": "wire-ryanair", "title": title.upper(),
                                                "text": "  " + text.replace("\n\n", "\n")}).json()
            assert body["ingested"] == [] and body["duplicates"] == [{"id": "wire-ryanair", "duplicate_of": kept}]
            assert http.get("/articles/wire-ryanair").status_code == 404
            assert http.get("/health").json()["articles"] == 1
            # a different story is stored as usual
            body = http.post("/articles", json={"id": "wire-2", "title": title, "text": text + " One more line."})
            assert body.json()["ingested"] == ["wire-2"]
    finally:
        service.close()
    assert [row[0] for row in _stored(tmp_path / "index")] == sorted([kept, "wire-2"])


def test_the_readme_steps_store_the_seeds_bbc_copies_once(tmp_path, embedder):
    """`rag ingest seeds`, then the BBC folder: the seeds' copies of BBC articles are not stored twice."""
    corpus = tmp_path / "bbc"
    copies = ["business/001.txt", "business/035.txt", "entertainment/013.txt", "entertainment/031.txt",
              "politics/035.txt", "sport/005.txt", "tech/019.txt", "tech/025.txt", "tech/035.txt", "business/002.txt"]
    for name in copies:
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BBC / name, corpus / name)
    service = build_service(Settings(index_dir=tmp_path / "index"), embedder)
    try:
        seeds = _ingest(service, SEEDS)
        assert len(seeds.ingested) == 11 and not seeds.failed
        bbc = _ingest(service, corpus)
        assert not bbc.failed
        assert len(bbc.ingested) == 1 and bbc.ingested[0].startswith("business-002-")  # not among the seeds
        assert len(bbc.duplicates) == len(copies) - 1
    finally:
        service.close()
    titles = [title for _, title in _stored(tmp_path / "index")]
    assert len(titles) == len(set(titles)) == 12


def test_a_docstore_from_before_text_keys_gets_them_and_then_deduplicates(tmp_path, embedder):
    index = tmp_path / "index"
    story = BBC / "tech" / "012.txt"
    service = build_service(Settings(index_dir=index), embedder)
    _ingest(service, story)
    service.close()
    with sqlite3.connect(index / "docstore.sqlite") as db:  # back to schema 3
        db.execute("DROP INDEX articles_text_key")
        db.execute("ALTER TABLE articles DROP COLUMN text_key")
        db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    (tmp_path / "other" / "tech").mkdir(parents=True)
    shutil.copy(story, tmp_path / "other" / "tech" / "012.txt")
    service = build_service(Settings(index_dir=index), embedder)
    try:
        report = _ingest(service, tmp_path / "other")
        assert report.ingested == [] and len(report.duplicates) == 1
    finally:
        service.close()
    with sqlite3.connect(index / "docstore.sqlite") as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "4"
    assert len(_stored(index)) == 1
