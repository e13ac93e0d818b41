"""Token counts in tiktoken's `cl100k_base`, the budget unit of chunks and prompts, and the files
llama-index-core ships with it (tiktoken's encoding, NLTK's punkt): nothing is downloaded."""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path


def bundled_static_dir() -> Path:
    """llama-index-core ships tiktoken's cl100k_base and NLTK's punkt: no download needed. Found
    without importing llama_index.core, whose import takes 2.5 s (every ingest paid it)."""
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llama-index-core is not installed: its bundled tokenizer files are needed")
    return Path(next(iter(spec.submodule_search_locations))) / "_static"


@cache
def tiktoken_encoding():
    """The bundled cl100k_base encoding (tiktoken would otherwise try the internet)."""
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(bundled_static_dir() / "tiktoken_cache"))
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """cl100k_base tokens in `text`; special-token text counts as plain text."""
    return len(tiktoken_encoding().encode(text, disallowed_special=()))
