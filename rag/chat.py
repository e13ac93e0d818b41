"""Multi-turn chat: a follow-up ("which countries vetoed it?") is rewritten into a standalone
question from the conversation, then answered like any question, with citations.

Offline the rewrite carries the previous turns' key terms (names, numbers, the last question's
content words and the names in the last answer) into a follow-up that leans on them; with an LLM
(a llama-index `LLM`), the condense prompt (`prompts/condense.txt`) rewrites it, and the offline
rewrite is used if the LLM fails or returns nothing usable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from rag.errors import InvalidInput
from rag.prompts import render
from rag.text.markers import MARKER
from rag.text.terms import NAME, STOPWORDS, content_terms, key_terms, words
from rag.types import NO_FILTERS, Answer, Filters

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]
MAX_CARRIED = 8  # terms carried into a follow-up
HISTORY_TURNS = 6  # turns shown to the condense prompt
HISTORY_CHARS = 600  # of each turn shown to it
# Words that point back into the conversation: a question holding one is a follow-up.
# Pronouns for actors ("why did they veto it?") usually point at the last answer's names; "it",
# "this", "there" at the thing the last question was about. Carrying the answer's names into a
# question about a thing would make the true answer look like an echo of the question.
_ACTORS = re.compile(r"\b(?:they|them|their|theirs|he|him|his|she|her|hers)\b", re.IGNORECASE)
_ANAPHORA = re.compile(
    r"\b(?:it|its|they|them|their|theirs|this|that|these|those|he|him|his|she|her|there|then|"
    r"the same|the former|the latter|such)\b|^(?:and|but|so|what about|how about|also)\b",
    re.IGNORECASE,
)
_SOURCES_TAIL = re.compile(r"\n+(?:Sources|\*Sources\*):?\n.*\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Turn:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class ChatReply:
    question: str  # the last user message as asked
    standalone: str  # what was answered: the question rewritten from the conversation
    answer: Answer
    rewriter: str  # "none" (asked as is), "terms" (offline) or "llm"


def carry_terms(question: str, history: Sequence[Turn]) -> str:
    """The follow-up with the conversation's key terms appended, when it needs them.

    A question that holds no word pointing back (it, they, there, …) and has three or more content
    words stands on its own and is returned unchanged. Otherwise the terms it lacks are taken, most
    recent first, from: the names and numbers of the previous user questions, the content words of
    the last one, and, when it asks about actors ("they", "he", …), the names in the last answer
    (whose "they" may be the answer's "Russia and China"). They are appended lower-cased, so that
    they steer retrieval without becoming key terms the answerer insists on finding."""
    if not needs_context(question):
        return question
    have = set(content_terms(question))
    carried: list[str] = []

    def add(terms: Sequence[str]) -> None:
        for term in terms:  # word by word, so "UN Security Council" and "council" meet
            for word in words(term):
                if word not in have and word not in carried and word not in STOPWORDS:
                    carried.append(word)

    users = [t.content for t in history if t.role == "user"]
    answers = [_plain(t.content) for t in history if t.role == "assistant"]
    if users:
        add(key_terms(users[-1]))
        add(content_terms(users[-1]))
    if answers and _ACTORS.search(question):
        add(m.group() for m in NAME.finditer(answers[-1]) if m.group().lower() not in STOPWORDS)
    for earlier in reversed(users[:-1]):
        add(key_terms(earlier))
    if not carried:
        return question
    return f"{question.rstrip()} ({' '.join(carried[:MAX_CARRIED])})"


def needs_context(question: str) -> bool:
    return bool(_ANAPHORA.search(question)) or len(content_terms(question)) < 3


def _plain(answer: str) -> str:
    """An assistant message without its sources list and [n] markers."""
    return MARKER.sub("", _SOURCES_TAIL.sub("", answer))


@dataclass
class Chat:
    """Answers the last user turn of a conversation. `ask` is `Service.ask`."""

    ask: Callable[..., Answer]  # (question, top_k, filters, as_of)
    llm: LLM | None = None
    max_question_chars: int = 1_000

    def reply(self, turns: Sequence[Turn], top_k: int | None = None, filters: Filters = NO_FILTERS,
              as_of: object = None) -> ChatReply:
        """The answer to the last user turn, asked on `as_of` (see `Service.ask`)."""
        conversation = [t for t in turns if t.role in ("user", "assistant")]
        if not conversation or conversation[-1].role != "user":
            raise InvalidInput("the last message must be the user's question (role 'user')")
        question = conversation[-1].content.strip()
        if not question:
            raise InvalidInput("the last user message is empty")
        history = conversation[:-1]
        standalone, rewriter = self.condense(question, history)
        return ChatReply(question, standalone, self.ask(standalone, top_k, filters, as_of), rewriter)

    def condense(self, question: str, history: Sequence[Turn]) -> tuple[str, str]:
        """(standalone question, how it was made)."""
        if not any(t.role == "user" for t in history):
            return question, "none"
        if self.llm is not None:
            rewritten = self._condense_llm(question, history)
            if rewritten:
                return rewritten, "llm"
        carried = carry_terms(question, history)
        carried = carried if len(carried) <= self.max_question_chars else question
        return carried, "terms" if carried != question else "none"

    def _condense_llm(self, question: str, history: Sequence[Turn]) -> str | None:
        shown = [f"{t.role}: {_plain(t.content)[:HISTORY_CHARS]}" for t in history[-HISTORY_TURNS:]]
        try:
            text = self.llm.complete(render("condense", history="\n".join(shown), question=question)).text
        except Exception as error:  # noqa: BLE001 - a failed rewrite falls back to the offline one
            log.warning("condense prompt failed, carrying terms instead: %s", error)
            return None
        lines = [line.strip().strip('"“”') for line in text.strip().splitlines() if line.strip()]
        if not lines:
            return None
        rewritten = re.sub(r"^(?:standalone question|question)\s*:\s*", "", lines[0], flags=re.IGNORECASE)
        if not rewritten or len(rewritten) > self.max_question_chars:
            return None
        return rewritten
