"""Answering: a question and its retrieved passages in, an `Answer` with checked citations out.
`Answerer` is the plug-in point: the extractive reader (`extractive/`, the offline default) or an
LLM (`llm`, with its backends in `backends`), whose citations are checked in `citations`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Protocol

from rag.types import Answer, Passage


class Answerer(Protocol):
    backend: str
    # Whether it reads the passages' dates and the asking date itself (an LLM, from its prompt);
    # else the service dates its answers and looks for newer evidence (`rag.answer.dated`).
    reads_dates: bool

    def answer(self, question: str, passages: list[Passage], as_of: datetime | None = None) -> Answer:
        """The checked answer, or an abstention that says why; `as_of` is the asking date."""
        ...

    def stream(self, question: str, passages: list[Passage],
               as_of: datetime | None = None) -> Iterator[str | Answer]:
        """The answer's text as it is written, then the checked `Answer` last."""
        ...

    def close(self) -> None:
        """Release what the answerer holds (threads, a model)."""
        ...
