"""The chat-completions peer of `tests.llm_peers` answering like a very literal model, for the
briefing and chat paths: it reads the prompt it is sent and replies with
- a map prompt (articles in <article n="..."> fences): one note per article, its first sentence
  with the article's [n], plus a note citing an article number it was never given ([99]);
- a combine prompt: the notes back unchanged;
- a reduce prompt: TITLE, OVERVIEW, the notes, and one claim no article supports (cited [1]);
- a condense prompt: `condense_reply`.
Every request body is kept in `requests`, as by any `ChatPeer`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.support.llm_peers import ChatPeer, chat_peer

UNSUPPORTED = "The moon is made of green cheese according to the finance ministry"
INVENTED = "An invented claim that cites an article it was never shown"


def literal_reply(condense_reply: str = "") -> Callable[[dict], str]:
    """A `ChatPeer` script that answers each request from the prompt it carries."""

    def reply(body: dict) -> str:
        prompt = "\n".join(m["content"] if isinstance(m["content"], str) else
                           " ".join(p.get("text", "") for p in m["content"]) for m in body["messages"])
        if "<article n=" in prompt:
            notes = []
            for n, text in re.findall(r'<article n="(\d+)"[^>]*>\n(.*?)\n</article>', prompt, re.DOTALL):
                text = text.split("\n", 1)[1] if "\n" in text else text
                first = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
                notes.append(f"- {first} [{n}]")
            notes.append(f"- {INVENTED} [99]")
            return "\n".join(notes)
        notes = [line for line in prompt.splitlines() if line.startswith("- ") and re.search(r"\[\d+\]$", line)]
        if "Merge notes" in prompt:
            return "\n".join(notes)
        if "Write the briefing" in prompt:
            return "\n".join(["TITLE: A test briefing", "OVERVIEW: What the notes say [1].", *notes,
                              f"- {UNSUPPORTED} [1]"])
        if "Standalone question" in prompt:
            return condense_reply
        return "I do not know."

    return reply


@contextmanager
def openai_peer(condense_reply: str = "") -> Iterator[ChatPeer]:
    with chat_peer() as peer:
        peer.say(literal_reply(condense_reply))
        yield peer


def peer_llm(peer: ChatPeer):
    """llama-index's OpenAI-like LLM pointed at the peer: the same class a deployment would use."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(model="peer-model", api_base=peer.base_url, api_key="not-a-secret", is_chat_model=True,
                      context_window=32_000, max_tokens=512, timeout=30, max_retries=0)
