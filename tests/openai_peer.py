"""A loopback HTTP server that speaks the OpenAI chat-completions protocol, for the LLM paths: no
LLM runs offline, so this is the real protocol peer the design allows (never a patched function).

It answers by reading the prompt it is sent, like a very literal model:
- a map prompt (articles in <article n="..."> fences): one note per article, its first sentence
  with the article's [n], plus a note citing an article number it was never given ([99]);
- a combine prompt: the notes back unchanged;
- a reduce prompt: TITLE, OVERVIEW, the notes, and one claim no article supports (cited [1]);
- a condense prompt: `condense_reply`.
Every request body is kept in `requests`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UNSUPPORTED = "The moon is made of green cheese according to the finance ministry"
INVENTED = "An invented claim that cites an article it was never shown"


class Peer:
    def __init__(self, condense_reply: str = "") -> None:
        self.condense_reply = condense_reply
        self.requests: list[dict] = []
        self.url = ""

    def reply_to(self, prompt: str) -> str:
        if "<article n=" in prompt:
            notes = []
            for n, body in re.findall(r'<article n="(\d+)"[^>]*>\n(.*?)\n</article>', prompt, re.DOTALL):
                text = body.split("\n", 1)[1] if "\n" in body else body
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
            return self.condense_reply
        return "I do not know."


def _handler(peer: Peer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            peer.requests.append(body)
            if not self.path.endswith("/chat/completions"):
                self.send_error(404)
                return
            prompt = "\n".join(m["content"] if isinstance(m["content"], str) else
                               " ".join(p.get("text", "") for p in m["content"]) for m in body["messages"])
            answer = {
                "id": "chatcmpl-peer", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", "peer"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": peer.reply_to(prompt)},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def openai_peer(condense_reply: str = "") -> Iterator[Peer]:
    peer = Peer(condense_reply)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peer))
    peer.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def peer_llm(peer: Peer):
    """llama-index's OpenAI-like LLM pointed at the peer: the same class a deployment would use."""
    from llama_index.llms.openai_like import OpenAILike

    return OpenAILike(model="peer-model", api_base=peer.url, api_key="not-a-secret", is_chat_model=True,
                      context_window=32_000, max_tokens=512, timeout=30, max_retries=0)
