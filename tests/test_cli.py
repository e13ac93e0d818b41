"""The `rag` command as a user runs it: a real process, real model, real index folder."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

from tests.support.paths import RAG, SEEDS
from tests.support.terminal import run_on_terminal

SEED_FURNITURE = ["Get Updates", "Get notified", "Notifications", "Block for 8 hours", "Select your Gender",
                  "Under 18", "26 to 35", "Don't block", "Clear Notifications"]


def rag(index: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([RAG, "--index-dir", str(index), *args], check=False, capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, stdin=subprocess.DEVNULL)


def test_seeds_ingest_once_then_answer_with_citations(tmp_path):
    index = tmp_path / "index"
    first = rag(index, "ingest", str(SEEDS))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "ingested 11, unchanged 0, failed 0"
    assert "it/s" not in first.stderr  # no progress bar when stderr is not a terminal

    again = rag(index, "ingest", str(SEEDS))
    assert again.returncode == 0 and again.stdout.strip() == "ingested 0, unchanged 11, failed 0"

    with sqlite3.connect(index / "docstore.sqlite") as db:
        texts = [r[0] for r in db.execute("SELECT title || ' ' || text FROM articles")]
        chunk_texts = [r[0] for r in db.execute("SELECT text FROM chunks")]
    assert len(texts) == 11
    for text in texts + chunk_texts:
        for line in SEED_FURNITURE:  # the seed page's interface is never indexed
            assert line not in text
        assert "Ignore previous instructions" not in text  # hidden HTML text is dropped

    answer = rag(index, "ask", "--json", "Which countries vetoed the UN cease-fire resolution?")
    body = json.loads(answer.stdout)
    assert "Russia and China" in body["answer"] and body["citations"][0]["n"] == 1
    assert "vetoed" in body["citations"][0]["quote"]

    text_answer = rag(index, "ask", "How long was the Iranian blogger Arash Sigarchi jailed for?")
    assert text_answer.returncode == 0 and "[1]" in text_answer.stdout and "14 years" in text_answer.stdout

    search = rag(index, "search", "--json", "--category", "tech", "blogger jailed in Iran")
    results = json.loads(search.stdout)["results"]
    assert results and all(r["category"] == "tech" for r in results)


def test_bad_files_fail_one_by_one_and_the_rest_is_ingested(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("Harbour reopens\n\nThe Quellan harbour reopened on Monday after repairs.\n")
    (docs / "binary.txt").write_bytes(b"Title\n\x00\x01\x02\x03")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "garbled.txt").write_bytes(b"Title\n\n" + bytes(range(0x80, 0x100)) * 4)
    (docs / "big.txt").write_text("Big\n\n" + "word " * 2_000)
    (docs / "feed.jsonl").write_text(
        json.dumps({"id": "j1", "title": "Ferry", "text": "The ferry to Quellan runs twice a day now."}) + "\n"
        + '{"id": "j2", "title": "Broken line", \n'
        + json.dumps({"id": "j3", "title": "Bridge", "text": "The new bridge to Quellan opened in May."}) + "\n"
    )
    index = tmp_path / "index"
    result = rag(index, "ingest", str(docs), RAG_MAX_ARTICLE_BYTES="5000")
    assert result.returncode == 1
    assert result.stdout.strip() == "ingested 3, unchanged 0, failed 5"
    failures = result.stderr
    assert f"{docs / 'binary.txt'}: binary file" in failures
    assert f"{docs / 'empty.txt'}: empty file" in failures
    assert f"{docs / 'garbled.txt'}: not UTF-8 text" in failures
    assert f"{docs / 'big.txt'}: file is" in failures and "limit" in failures
    assert f"{docs / 'feed.jsonl'} line 2" in failures

    listed = rag(index, "search", "--json", "Quellan")
    assert {r["title"] for r in json.loads(listed.stdout)["results"]} == {"Harbour reopens", "Ferry", "Bridge"}

    deleted = rag(index, "delete", "j1")
    assert deleted.returncode == 0 and "deleted j1" in deleted.stdout
    missing = rag(index, "delete", "j1")
    assert missing.returncode == 1 and "no article with id 'j1'" in missing.stderr
    listed = rag(index, "search", "--json", "Quellan")
    assert "Ferry" not in {r["title"] for r in json.loads(listed.stdout)["results"]}


def test_invalid_arguments_are_explained(tmp_path):
    result = rag(tmp_path / "index", "ask", "--since", "last week", "Anything?")
    assert result.returncode == 2 and "expected YYYY-MM-DD" in result.stderr
    result = rag(tmp_path / "index", "ingest", str(tmp_path / "nowhere"))
    assert result.returncode == 1 and "no such file or folder" in result.stderr


def test_bad_settings_and_a_missing_index_are_named_without_a_traceback(tmp_path):
    cases = [
        ({"RAG_TOP_K": "-1"}, "RAG_TOP_K='-1': Input should be greater than or equal to 1"),
        ({"RAG_ENCODER": "gpu"}, "RAG_ENCODER='gpu'"),
        ({"RAG_ANSWERER_MODEL": "bogus"}, "must be 'shipped', 'none' or the path"),
        ({"RAG_CHUNK_OVERLAP_TOKENS": "100"}, "less than half of RAG_CHUNK_TOKENS (160), got 100"),
    ]
    for env, message in cases:
        result = rag(tmp_path / "index", "search", "Anything", **env)
        assert result.returncode == 1 and message in result.stderr, (env, result.stderr)
        assert "Traceback" not in result.stderr
    for command in (["ask", "Anything?"], ["search", "Anything"], ["brief", "Anything"], ["delete", "a1"]):
        result = rag(tmp_path / "index", *command)
        assert result.returncode == 1 and "no index at" in result.stderr and "rag ingest" in result.stderr
    assert not (tmp_path / "index").exists()  # asking does not leave an empty index behind


def test_progress_bar_on_a_terminal(tmp_path):
    """On a terminal (a pty with a window size) `rag ingest` draws a progress bar on stderr."""
    code, text = run_on_terminal(["--index-dir", str(tmp_path / "index"), "ingest", str(SEEDS)])
    assert code == 0
    assert "ingest: 100%" in text and "file/s" in text
    assert "ingested 11, unchanged 0, failed 0" in text
