"""Shared fixtures: the real model (loaded once), real indexes in temporary folders, and a real
uvicorn server on a free loopback port."""

from __future__ import annotations

import fcntl
import os
import pty

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model must come from the installed package
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import shutil
import socket
import struct
import sys
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from rag.config import Settings
from rag.embedding import SentenceTransformerEmbedder
from rag.service import Service, build_service

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
BBC = SHARED / "corpora" / "bbc"
SEEDS = ROOT / "seeds"
SEED_ARTICLE = SEEDS / "000_2a7d998d117598b4.txt"

# A fixed BBC subset: the first files of each category, enough for retrieval to have distractors.
BBC_SUBSET = [BBC / cat / f"{n:03d}.txt" for cat in ("business", "entertainment", "politics", "sport", "tech")
              for n in range(1, 13)]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(Settings().embedding_model)


@pytest.fixture(scope="session")
def pieces():
    from rag.embedding import bundled_model_path
    from rag.wordpieces import WordPieceVectors

    return WordPieceVectors(bundled_model_path())


@pytest.fixture(scope="session", autouse=True)
def onnx_export(embedder) -> None:
    """The default encoder's ONNX export, made and checked against the torch model before any test
    starts a `rag` process (which would otherwise export it itself, once per machine)."""
    from rag.embedding import bundled_model_path, encoder_choices, onnx_precision
    from rag.onnx_encoder import ModelFolder, checked_export, default_cache_dir

    settings = Settings()
    encoder = encoder_choices(settings)[0].encoder  # what `auto` runs on this CPU
    if encoder != "torch":
        checked_export(ModelFolder.read(settings.embedding_path or bundled_model_path()), onnx_precision(encoder),
                       settings.encoder_cache or default_cache_dir(), reference=embedder)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(index_dir=tmp_path / "index")


@pytest.fixture
def service(settings: Settings, embedder) -> Iterator[Service]:
    svc = build_service(settings, embedder)
    yield svc
    svc.close()


def ingest_paths(service: Service, paths) -> None:
    from rag.ingest import read_file

    report = service.ingest(item for p in paths for item in read_file(p, max_bytes=5_000_000))
    assert not report.failed, report.failed


@pytest.fixture(scope="session")
def bbc_index_dir(tmp_path_factory, embedder) -> Path:
    """An index of the seed and the BBC subset, built once; tests copy it before changing it."""
    folder = tmp_path_factory.mktemp("bbc") / "index"
    svc = build_service(Settings(index_dir=folder), embedder)
    ingest_paths(svc, [SEED_ARTICLE, *BBC_SUBSET])
    svc.close()
    return folder


@pytest.fixture
def bbc_service(bbc_index_dir: Path, tmp_path: Path, embedder) -> Iterator[Service]:
    folder = tmp_path / "index"
    shutil.copytree(bbc_index_dir, folder)
    svc = build_service(Settings(index_dir=folder), embedder)
    yield svc
    svc.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def live_server(app) -> Iterator[httpx.Client]:
    """Serve `app` with uvicorn on 127.0.0.1 in a thread; stops when the block ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def run_on_terminal(args: list[str]) -> tuple[int, str]:
    """Run `rag ARGS` with a pty (120 columns) as its terminal; (exit code, everything it wrote)."""
    rag = str(Path(sys.executable).parent / "rag")
    pid, fd = pty.fork()
    if pid == 0:  # the child: rag with the pty as its terminal
        os.execv(rag, [rag, *args])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    output = b""
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")
