"""Answering: a question and its retrieved passages in, an `Answer` with checked citations out.
`Answerer` is the plug-in point: the extractive reader (`extractive/`, the offline default) or an
LLM (`llm`, with its backends in `backends`), whose citations are checked in `citations`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from rag.types import Answer, Passage


class Answerer(Protocol):
    backend: str

    def answer(self, question: str, passages: list[Passage]) -> Answer:
        """The checked answer, or an abstention that says why."""
        ...

    def stream(self, question: str, passages: list[Passage]) -> Iterator[str | Answer]:
        """The answer's text as it is written, then the checked `Answer` last."""
        ...

    def close(self) -> None:
        """Release what the answerer holds (threads, a model)."""
        ...
