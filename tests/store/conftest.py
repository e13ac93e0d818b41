"""Fixtures for the docstore tests that run on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def docstore(request, tmp_path) -> Iterator:
    """An empty docstore on its own: the SQLite file, or a fresh database on the session's
    PostgreSQL server; the same tests hold for both."""
    if request.param == "sqlite":
        from rag.store.docstore import Docstore

        store = Docstore(tmp_path / "docstore.sqlite")
    else:
        from rag.store.postgres import PostgresDocstore

        store = PostgresDocstore(request.getfixturevalue("postgres").create_database(f"ds_{uuid.uuid4().hex[:12]}"))
    yield store
    store.close()
