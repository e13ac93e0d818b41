"""Durable files: checksums, and writes that leave either the old or the new file after a crash
(write a temporary file, fsync it, rename it over the target, fsync the folder)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def replace_durably(temp: Path, target: Path) -> None:
    """fsync `temp`, rename it over `target`, fsync the folder: never a half-written target."""
    fsync_file(temp)
    os.replace(temp, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_durably(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    replace_durably(tmp, path)
