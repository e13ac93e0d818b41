"""Real protocol peers for the LLM tests: a loopback HTTP server that speaks OpenAI chat
completions (streaming too) with scripted replies, and a tiny random-weight llama GGUF that
llama.cpp loads for real."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

HANG = "<hang>"  # script: never answer (until the server stops)
HOLD = "<hold>"  # script: answer `after_hold` once the test releases `ChatPeer.release`
ERROR_500 = "<500>"


@dataclass
class ChatPeer:
    """Scripted replies: `reply(request_body) -> text`, or one of HANG, HOLD, ERROR_500."""

    reply: Callable[[dict], str] = lambda body: "NOT_IN_ARTICLES"
    after_hold: str = "NOT_IN_ARTICLES"
    requests: list[dict] = field(default_factory=list)
    received: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""
    drops: int = 0  # close this many connections without a reply (a connection error) first

    def say(self, text: str | Callable[[dict], str]) -> None:
        self.reply = text if callable(text) else (lambda body: text)

    @property
    def last_prompt(self) -> tuple[str, str]:
        """(system, user) contents of the last request."""
        messages = self.requests[-1]["messages"]
        return messages[0]["content"], messages[-1]["content"]


def _handler(peer: ChatPeer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            peer.requests.append(body)
            peer.received.set()
            if peer.drops > 0:
                peer.drops -= 1
                self.close_connection = True
                return
            text = peer.reply(body)
            if text == HANG:
                peer.stopping.wait()
                return
            if text == HOLD:
                peer.release.wait()
                text = peer.after_hold
            if text == ERROR_500:
                self._send(500, "application/json", json.dumps({"error": {"message": "boom"}}).encode())
                return
            if body.get("stream"):
                self._stream(body, text)
            else:
                self._send(200, "application/json", json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }).encode())

        def _stream(self, body: dict, text: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pieces = [text[i : i + 3] for i in range(0, len(text), 3)]  # splits markers across chunks
            for i, piece in enumerate(pieces + [None]):
                delta = {"content": piece} if piece is not None else {}
                if i == 0:
                    delta["role"] = "assistant"
                chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0,
                         "model": body["model"],
                         "choices": [{"index": 0, "delta": delta,
                                      "finish_reason": None if piece is not None else "stop"}]}
                self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _send(self, status: int, kind: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def chat_peer() -> Iterator[ChatPeer]:
    peer = ChatPeer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peer))
    server.daemon_threads = True
    peer.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        peer.stopping.set()
        peer.release.set()
        server.shutdown()
        server.server_close()


# -- a tiny llama GGUF --------------------------------------------------------------------------------

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                 "<|assistant|>\n")


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """A real llama-architecture model with random weights: 2 layers, 64 dimensions, a
    SentencePiece vocabulary of letters, a few words and the 256 byte-fallback pieces, and a chat
    template. The end-of-text row of the output layer is zero, so generation rarely stops early."""
    import gguf

    rng = np.random.default_rng(seed)
    words = ["▁the", "▁of", "▁and", "▁in", "▁Russia", "▁China", "[", "]", "1", "2", "."]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + ["▁"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + letters + words
    types = ([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
             + [gguf.TokenType.BYTE] * 256 + [gguf.TokenType.NORMAL] * (len(letters) + len(words)))
    scores = [0.0] * 259 + [-float(i) for i in range(len(letters) + len(words))]
    n_vocab, n_embd, n_ff, n_head, n_layer = len(tokens), 64, 128, 4, 2

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-random-llama")
    writer.add_context_length(8192)
    writer.add_embedding_length(n_embd)
    writer.add_feed_forward_length(n_ff)
    writer.add_block_count(n_layer)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    writer.add_chat_template(CHAT_TEMPLATE)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.2).astype(np.float32))

    tensor("token_embd.weight", n_vocab, n_embd)
    writer.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))
    output = (rng.standard_normal((n_vocab, n_embd)) * 0.2).astype(np.float32)
    output[2] = 0.0
    writer.add_tensor("output.weight", output)
    for i in range(n_layer):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        for part in ("q", "k", "v", "output"):
            tensor(f"blk.{i}.attn_{part}.weight", n_embd, n_embd)
        tensor(f"blk.{i}.ffn_gate.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_up.weight", n_ff, n_embd)
        tensor(f"blk.{i}.ffn_down.weight", n_embd, n_ff)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
