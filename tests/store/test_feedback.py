"""The docstore's feedback table: stored and read back, outside the generation (on SQLite and
PostgreSQL), and the SQLite schema migration that adds it (2 → 3) keeping everything else."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from rag.errors import IndexMismatch
from rag.store.docstore import SCHEMA_VERSION, Docstore
from rag.types import Feedback
from tests.support.paths import RAG, ROOT

CITATION = {"n": 1, "article_id": "a", "title": "T", "chunk_id": "a:0", "quote": "Them.", "start": 0, "end": 5,
            "score": 0.5}


def test_feedback_is_stored_read_back_in_order_and_moves_no_generation(docstore):
    generation = docstore.generation()
    first = docstore.add_feedback(Feedback("Who?", "Them [1]", (CITATION,), "extractive", "up", "fine", "key-1"))
    second = docstore.add_feedback(Feedback("Where?", "Thére", (), "openai", "down"))
    assert first.id < second.id and first.created_at <= second.created_at
    assert docstore.feedback() == [first, second]
    # The citations come back as given, their keys in the API's order (an export reads alike).
    assert list(docstore.feedback()[0].citations[0]) == list(CITATION)
    assert docstore.feedback()[0].created_at.tzinfo == UTC
    assert docstore.feedback(second.created_at) == [second]
    assert docstore.feedback(second.created_at.replace(tzinfo=None)) == [second]  # naive is UTC
    assert docstore.feedback(datetime.now(UTC) + timedelta(days=1)) == []
    assert docstore.generation() == generation  # nothing derived depends on feedback
    with pytest.raises((sqlite3.IntegrityError, psycopg.IntegrityError)):  # the table refuses another verdict
        docstore.add_feedback(Feedback("Who?", "Them", (), "extractive", "meh"))
    assert len(docstore.feedback()) == 2


def test_rag_feedback_export_reads_either_docstore(docstore, tmp_path):
    """`rag feedback export` opens the docstore the settings name: the index folder's SQLite file,
    or RAG_DOCSTORE_URL's database (then no file is made or read in the folder)."""
    stored = docstore.add_feedback(Feedback("Who?", "Them [1]", (CITATION,), "extractive", "down", "wrong", "k"))
    if hasattr(docstore, "path"):
        index, env = docstore.path.parent, {}
    else:
        index, env = tmp_path / "index", {"RAG_DOCSTORE_URL": docstore.url}
    base = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([RAG, "--index-dir", str(index), "feedback", "export", "--since",
                           stored.created_at.date().isoformat()],
                          capture_output=True, text=True, env=base | env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    [line] = [json.loads(line) for line in done.stdout.splitlines()]
    assert line["question"] == "Who?" and line["verdict"] == "down" and line["citations"] == [CITATION]
    assert (index / "docstore.sqlite").exists() == (not env)


def test_a_schema_2_docstore_gains_the_feedback_table_and_keeps_everything(bbc_service):
    path = bbc_service.store.docstore.path
    counts = bbc_service.store.docstore.counts()
    bbc_service.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE feedback; UPDATE meta SET value = '2' WHERE key = 'schema_version';")
    db.close()
    docstore = Docstore(path)
    try:
        version = docstore._db().execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        assert int(version) == SCHEMA_VERSION == 4
        assert docstore.counts() == counts and docstore.integrity_problems() == []
        stored = docstore.add_feedback(Feedback("Who?", "Them", (), "extractive", "up", "fine", "key-1"))
        assert stored.id is not None and docstore.feedback() == [stored]
    finally:
        docstore.close()


def test_a_docstore_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "docstore.sqlite"
    Docstore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(IndexMismatch, match="schema 99"):
        Docstore(path)
