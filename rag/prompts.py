"""Prompt templates: files under `prompts/`, loaded by name, so no prompt text lives in Python."""

from __future__ import annotations

from functools import cache
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"


@cache
def load_prompt(name: str, folder: Path = PROMPTS_DIR) -> str:
    """The text of `prompts/<name>.txt`; a clear error naming the file when it is missing."""
    path = folder / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no prompt template {name!r}: {path} does not exist")
    return path.read_text(encoding="utf-8")


def render(name: str, **values: object) -> str:
    """The prompt with its `{field}`s filled in (llama-index's PromptTemplate, the field's tool)."""
    from llama_index.core.prompts import PromptTemplate

    return PromptTemplate(load_prompt(name)).format(**{k: str(v) for k, v in values.items()})
