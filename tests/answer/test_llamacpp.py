"""Real llama.cpp on a tiny random-weight GGUF that the tests write: in-process through
llama-cpp-python, and through llama-cpp-python's own OpenAI-compatible server on loopback. The
output is nonsense, so these tests check the plumbing (load, prompt, stream, time out, check,
fall back), not the answers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from rag.config import Settings
from rag.service import Service, build_service
from rag.types import Answer
from tests.support.llm_peers import write_tiny_gguf
from tests.support.servers import free_port

VETO = "Which countries vetoed the UN cease-fire resolution?"
# Reasons the check gives for nonsense; never a load, call or time-out failure.
CHECK_REASONS = ("sentence", "empty answer")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


@pytest.fixture
def make_service(bbc_index_dir, tmp_path, embedder, tiny_gguf) -> Iterator[Callable[..., Service]]:
    made: list[Service] = []
    folder = tmp_path / "index"
    shutil.copytree(bbc_index_dir, folder)

    def make(**overrides) -> Service:
        # A byte-level vocabulary spends about one token per character: room for that.
        values = {"index_dir": folder, "llm_backend": "llamacpp", "llm_model_path": tiny_gguf,
                      "llm_context_tokens": 400, "llm_n_ctx": 4096, "llm_max_answer_tokens": 24,
                      "llm_timeout_s": 120, "llm_threads": 1}
        made.append(build_service(Settings(**(values | overrides)), embedder))
        return made[-1]

    yield make
    for svc in made:
        svc.close()


def assert_checked(answer: Answer, backend: str) -> None:
    """The model answered and we checked it: its own answer, or the extractive one with a reason
    from the check (not from a failed call)."""
    if answer.backend == backend:
        assert answer.abstained or all(s.supported for s in answer.sentences if f"{s.text}" in answer.text)
        return
    assert answer.backend == "extractive" and "Russia and China" in answer.text
    assert any(reason in answer.fallback_reason for reason in CHECK_REASONS), answer.fallback_reason


def test_in_process_llamacpp_answers_and_is_checked(make_service):
    svc = make_service()
    answer = svc.ask(VETO)
    assert_checked(answer, "llamacpp")
    assert answer.sentences or "empty" in answer.fallback_reason
    print("llamacpp:", answer)
    # The GGUF's own chat template shapes the prompt.
    from llama_index.core.llms import ChatMessage

    prompt = svc.answerer.llm.messages_to_prompt([ChatMessage(role="system", content="S"),
                                                  ChatMessage(role="user", content="U")])
    assert prompt.strip() == "<|system|>\nS\n<|user|>\nU\n<|assistant|>"


def test_in_process_llamacpp_streams(make_service):
    events = list(make_service().ask_stream(VETO))
    tokens, final = events[:-1], events[-1]
    assert isinstance(final, Answer) and all(isinstance(t, str) for t in tokens)
    assert tokens, "llama.cpp streamed its tokens"
    assert_checked(final, "llamacpp")
    streamed = "".join(tokens)
    assert all(s.text in streamed for s in final.sentences)


def test_in_process_llamacpp_times_out_and_falls_back(make_service):
    # 2,000 tokens to write and 50 ms to write them: the deadline ends the call.
    svc = make_service(llm_timeout_s=0.05, llm_max_answer_tokens=2000)
    answer = svc.ask(VETO)
    assert answer.backend == "extractive" and "Russia and China" in answer.text
    assert "within 0.05 s" in answer.fallback_reason

    # It ends the model's work too: the next question gets the model's turn. (Had the call given up
    # run on to its 2,000th token, which takes this model minutes, the next question would wait for
    # the turn until its own deadline and fall back as "busy".) The same answerer, so the same turn,
    # with a deadline long enough to tell the two apart; this model's nonsense may well not finish in
    # it, and may hold its text back, so the test asks only whether the call had the model.
    svc.answerer.timeout_s = 2
    answer = svc.ask(VETO)
    assert "busy" not in (answer.fallback_reason or ""), answer.fallback_reason


@pytest.fixture(scope="module")
def llama_server(tiny_gguf) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on a free loopback port, stopped at the end."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(tiny_gguf), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "4096", "--n_threads", "1", "--model_alias", "tiny"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {process.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start within 120 s")
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_llamacpp_server_through_the_openai_backend(make_service, llama_server):
    svc = make_service(llm_backend="openai", llm_base_url=llama_server, llm_model="tiny")
    assert_checked(svc.ask(VETO), "openai")
    events = list(svc.ask_stream(VETO))
    assert events[:-1] and all(isinstance(t, str) for t in events[:-1]), "tokens streamed over HTTP"
    assert_checked(events[-1], "openai")
