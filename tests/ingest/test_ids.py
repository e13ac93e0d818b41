"""rag.ingest.ids: stable, distinct ids from content, paths or URLs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from rag.ingest import article_from_record, read_file
from rag.ingest.ids import ID_PATTERN
from tests.support.ingest_samples import BBC_ARTICLE, LIMIT, record, write


def test_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    paths = [
        write(tmp_path, "business/001.txt", BBC_ARTICLE),
        write(tmp_path, "tech/001.txt", BBC_ARTICLE),
        write(tmp_path, "other/business/001.txt", BBC_ARTICLE),
        write(tmp_path, "records.json", json.dumps([record(), record()])),
    ]
    first = [i.id for p in paths for i in read_file(p, max_bytes=LIMIT)]
    second = [i.id for p in paths for i in read_file(p, max_bytes=LIMIT)]
    assert first == second
    assert len(set(first)) == len(first) == 5
    assert all(ID_PATTERN.fullmatch(i) for i in first)
    assert first[0].startswith("business-001-") and first[1].startswith("tech-001-")
    assert "-records-1-" in first[3] and "-records-2-" in first[4]


def test_id_from_url_ignores_spelling_of_the_same_url() -> None:
    ids = {
        article_from_record(record(url=url), origin="x").id
        for url in (
            "https://www.example.org/news/business-4123",
            "HTTPS://WWW.Example.org:443/news/business-4123/",
            "https://www.example.org/news/business-4123#comments",
        )
    }
    assert len(ids) == 1
    (only_id,) = ids
    assert re.fullmatch(r"news-business-4123-[0-9a-f]{8}", only_id)
    other = article_from_record(
        record(url="https://www.example.org/news/business-4124"), origin="x"
    )
    assert other.id != only_id


def test_given_id_wins_and_content_id_is_stable() -> None:
    given = article_from_record(record(id="bbc:sport.005", url="https://example.org/a"), origin="x")
    assert given.id == "bbc:sport.005"
    a = article_from_record(record(), origin="request item 0")
    b = article_from_record(record(), origin="request item 7")
    c = article_from_record(record(text="Another text."), origin="request item 0")
    assert a.id == b.id != c.id
    assert a.id.startswith("dibaba-breaks-world-record-")


# --- folders -------------------------------------------------------------------------------
