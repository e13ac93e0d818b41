"""Answerers: a question and retrieved passages in, an `Answer` with checked citations out."""

from __future__ import annotations

from typing import Protocol

from rag.types import Answer, Passage


class Answerer(Protocol):
    backend: str

    def answer(self, question: str, passages: list[Passage]) -> Answer: ...
