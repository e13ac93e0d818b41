"""Shared fixtures: the real model (loaded once), real indexes in temporary folders. Helpers that
test modules import live in `tests/support/`."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model must come from the installed package
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.config import Settings
from rag.embedding.torch_encoder import SentenceTransformerEmbedder
from rag.service import Service, build_service
from tests.support.paths import BBC_SUBSET, SEED_ARTICLE
from tests.support.postgres import PostgresServer, running_postgres


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(Settings().embedding_model)


@pytest.fixture(scope="session")
def pieces():
    from rag.embedding.model import bundled_model_path
    from rag.embedding.wordpieces import WordPieceVectors

    return WordPieceVectors(bundled_model_path())


@pytest.fixture(scope="session", autouse=True)
def onnx_export(embedder) -> None:
    """The default encoder's ONNX export, made and checked against the torch model before any test
    starts a `rag` process (which would otherwise export it itself, once per machine)."""
    from rag.embedding import encoder_choices, onnx_precision
    from rag.embedding.export import checked_export
    from rag.embedding.model import ModelFolder, bundled_model_path, default_cache_dir

    settings = Settings()
    encoder = encoder_choices(settings)[0].encoder  # what `auto` runs on this CPU
    if encoder != "torch":
        checked_export(ModelFolder.read(settings.embedding_path or bundled_model_path()), onnx_precision(encoder),
                       settings.encoder_cache or default_cache_dir(), reference=embedder)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(index_dir=tmp_path / "index")


@pytest.fixture
def service(settings: Settings, embedder, pieces) -> Iterator[Service]:
    svc = build_service(settings, embedder, pieces)
    yield svc
    svc.close()


def ingest_paths(service: Service, paths) -> None:
    from rag.ingest import read_file

    report = service.ingest(item for p in paths for item in read_file(p, max_bytes=5_000_000))
    assert not report.failed, report.failed


@pytest.fixture(scope="session")
def bbc_index_dir(tmp_path_factory, embedder, pieces) -> Path:
    """An index of the seed and the BBC subset, built once; tests copy it before changing it."""
    folder = tmp_path_factory.mktemp("bbc") / "index"
    svc = build_service(Settings(index_dir=folder), embedder, pieces)
    ingest_paths(svc, [SEED_ARTICLE, *BBC_SUBSET])
    svc.close()
    return folder


@pytest.fixture
def bbc_service(bbc_index_dir: Path, tmp_path: Path, embedder, pieces) -> Iterator[Service]:
    folder = tmp_path / "index"
    shutil.copytree(bbc_index_dir, folder)
    svc = build_service(Settings(index_dir=folder), embedder, pieces)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server (Debian's binaries) on loopback, started once, for the tests that
    ask for it; each makes its own database with `create_database`."""
    with running_postgres() as server:
        yield server
