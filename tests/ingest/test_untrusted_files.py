"""`rag ingest` over folders holding what is not an article file: a FIFO (opening it blocks until
a writer comes, while ingest holds the writer lock), symbolic links leading out of the folder, and
a read that never returns."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

RAG = str(Path(sys.executable).parent / "rag")
GOOD = "Orrin flag\n\nThe Orrin council adopted a new flag on Monday after a long debate.\n"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return env | {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def ingest(index: Path, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([RAG, "--index-dir", str(index), "ingest", *map(str, paths)], check=False,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, env=_env())


def stored_text(index: Path) -> str:
    import sqlite3

    with sqlite3.connect(index / "docstore.sqlite") as db:
        return "\n".join(f"{id_}\t{title}\t{text}" for id_, title, text in
                         db.execute("SELECT id, title, text FROM articles"))


def test_a_fifo_in_the_folder_is_reported_and_the_run_ends(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text(GOOD)
    os.mkfifo(docs / "pipe.txt")
    os.mkfifo(docs / "named.json")
    index = tmp_path / "index"
    result = ingest(index, docs, docs / "named.json")  # in a folder, and named on its own
    assert result.returncode == 1, result.stderr
    assert "ingested 1, unchanged 0, failed 2" in result.stdout
    assert "pipe.txt: not a regular file (a FIFO)" in result.stderr
    assert "named.json: not a regular file" in result.stderr
    assert "Orrin council" in stored_text(index)
    # the writer lock was let go: the next run writes
    assert ingest(index, docs / "good.txt").returncode == 0


def test_symbolic_links_are_followed_only_inside_the_folder(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("Launch codes\n\nThe launch code of the Orrin silo is 0000-banana.\n")
    (outside / "more").mkdir()
    (outside / "more" / "also.txt").write_text("Hidden\n\nAnother file the user never named, about bananas.\n")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "good.txt").write_text(GOOD)
    (docs / "x.txt").symlink_to(outside / "secret.txt")  # to a file outside: not read
    (docs / "hostname.txt").symlink_to("/etc/hostname")
    (docs / "elsewhere").symlink_to(outside / "more")  # to a folder outside: not walked
    (docs / "alias.txt").symlink_to(docs / "sub" / "good.txt")  # inside: read, once
    (docs / "loop.txt").symlink_to(docs / "loop.txt")
    index = tmp_path / "index"
    result = ingest(index, docs)
    assert "ingested 1, unchanged 0, failed 4" in result.stdout, result.stdout + result.stderr
    for needle in ("x.txt: symbolic link to a file outside", "hostname.txt: symbolic link to a file outside",
                   "elsewhere: symbolic link to a folder outside", "loop.txt: cannot follow"):
        assert needle in result.stderr, (needle, result.stderr)
    text = stored_text(index)
    assert "Orrin council" in text and "banana" not in text and os.uname().nodename not in text.split("\t", 2)[1:]
    # a file named on its own is read wherever its link leads: the user named it
    named = ingest(index, docs / "x.txt")
    assert named.returncode == 0 and "ingested 1" in named.stdout
    assert "0000-banana" in stored_text(index)


def test_a_read_that_never_returns_is_abandoned_at_the_deadline(tmp_path):
    """A blocking open of a FIFO nobody writes to stands for a file on a hung mount: the reader
    gives up at the deadline and the caller goes on."""
    from rag.ingest.readers import with_deadline

    fifo = tmp_path / "hung"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        with_deadline(lambda: fifo.read_bytes(), 0.5)
    assert time.monotonic() - start < 5
    assert with_deadline(lambda: 42, 5) == 42
    with pytest.raises(FileNotFoundError):
        with_deadline(lambda: (tmp_path / "missing").read_bytes(), 5)
    with open(fifo, "wb"):  # let the abandoned thread finish, so it does not outlive the test
        pass
