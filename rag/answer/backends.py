"""The LLM behind the answerer, built from settings through llama-index's `LLM` interface:
llama-cpp-python in-process (`llamacpp`), or any OpenAI-compatible server (`openai`: vLLM,
Ollama, llama.cpp's server, a hosted API)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from rag.config import Settings
from rag.errors import BadSettings


@dataclass(frozen=True)
class Backend:
    """A built LLM, its name in answers, and what the answerer needs to know to call it."""

    name: str
    llm: object  # llama_index.core.llms.LLM
    retryable: tuple[type[BaseException], ...] = ()  # connection errors, worth a retry
    not_retryable: tuple[type[BaseException], ...] = ()  # subclasses of those that are not (timeouts)
    serialize: bool = False  # one call at a time (an in-process model)
    # `with stops_on(event):` around a call makes the model itself stop generating once `event` is
    # set (the answerer gave up on the call), rather than only when the caller next reads a chunk.
    stops_on: Callable[[threading.Event], AbstractContextManager] = lambda event: nullcontext()


def build_backend(settings: Settings) -> Backend | None:
    """The LLM the settings name, or None for the extractive backend. Heavy imports happen here."""
    if settings.llm_backend == "extractive":
        return None
    if settings.llm_backend == "openai":
        return _openai(settings)
    return _llamacpp(settings)


def _openai(settings: Settings) -> Backend:
    if not settings.llm_base_url:
        raise BadSettings("RAG_LLM_BACKEND=openai needs RAG_LLM_BASE_URL (e.g. http://127.0.0.1:8080/v1)")
    import openai
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=settings.llm_model, api_base=settings.llm_base_url, api_key=settings.llm_api_key,
        is_chat_model=True, context_window=settings.llm_context_tokens + settings.llm_max_answer_tokens,
        max_tokens=settings.llm_max_answer_tokens, temperature=0.0,
        # The client's own retries would also retry HTTP 429/5xx and outlive our deadline: ours
        # retry connection errors only, within RAG_LLM_TIMEOUT_S.
        timeout=settings.llm_timeout_s, max_retries=0,
    )
    # APITimeoutError is an APIConnectionError, but a timeout is not retried: it used the deadline.
    return Backend("openai", llm, retryable=(openai.APIConnectionError,),
                   not_retryable=(openai.APITimeoutError,))


def _llamacpp(settings: Settings) -> Backend:
    path = settings.llm_model_path
    if path is None or not path.is_file():
        raise BadSettings(f"RAG_LLM_BACKEND=llamacpp needs RAG_LLM_MODEL_PATH to name a GGUF file, got {path}")
    try:
        from llama_cpp import StoppingCriteriaList
        from llama_index.llms.llama_cpp import LlamaCPP
    except ImportError as error:
        raise BadSettings("RAG_LLM_BACKEND=llamacpp needs llama-cpp-python: pip install '.[llm]'") from error

    # Room for the prompt (counted in tiktoken tokens; a model's own tokenizer may need more) and
    # the answer.
    n_ctx = settings.llm_n_ctx or 2 * settings.llm_context_tokens + settings.llm_max_answer_tokens
    model_kwargs = {"n_ctx": n_ctx, "verbose": False}
    if settings.llm_threads:
        model_kwargs["n_threads"] = settings.llm_threads
    stop = _StopWhenGivenUp()
    llm = LlamaCPP(
        model_path=str(path), temperature=0.0, max_new_tokens=settings.llm_max_answer_tokens,
        context_window=n_ctx, model_kwargs=model_kwargs, verbose=False,
        # LlamaCPP passes these (not a call's own kwargs) to the model on every call.
        generate_kwargs={"stopping_criteria": StoppingCriteriaList([stop])},
        messages_to_prompt=_chat_template(path), completion_to_prompt=lambda text: text,
    )
    return Backend("llamacpp", llm, serialize=True, stops_on=stop.on)


class _StopWhenGivenUp:
    """llama.cpp's stopping criterion, asked after every sampled token: true once the event of the
    call under way is set. Checking between streamed chunks is not enough: llama-cpp-python holds
    back text it cannot decode as UTF-8 yet, and a byte token that never completes a character (a
    lone 0xFE) holds back the rest of the reply, so no chunk comes until `max_tokens` (and holding
    back costs time cubic in the tokens: minutes for 2,000). Calls take turns on the one model, so
    one event at a time is watched; the prompt's prefill is not interrupted."""

    def __init__(self) -> None:
        self._event: threading.Event | None = None

    @contextmanager
    def on(self, event: threading.Event) -> Iterator[None]:
        self._event = event
        try:
            yield
        finally:
            self._event = None  # calls outside the answerer's turns (chat, briefings) run to the end

    def __call__(self, input_ids, logits) -> bool:
        event = self._event
        return event is not None and event.is_set()


def _chat_template(path):
    """Messages → prompt text with the GGUF's own chat template when it has one (llama-cpp-python's
    Jinja formatter), else plain role-labelled turns."""
    from llama_cpp import llama_chat_format

    template = _gguf_chat_template(path)
    if template is None:
        def plain(messages) -> str:
            turns = [f"{m.role.value}: {m.content}" for m in messages]
            return "\n\n".join(turns) + "\n\nassistant:"

        return plain
    formatter = llama_chat_format.Jinja2ChatFormatter(template=template, eos_token="", bos_token="")

    def templated(messages) -> str:
        return formatter(messages=[{"role": m.role.value, "content": m.content} for m in messages]).prompt

    return templated


def _gguf_chat_template(path) -> str | None:
    from gguf import GGUFReader

    field = GGUFReader(str(path)).get_field("tokenizer.chat_template")
    if field is None:
        return None
    return field.contents()
