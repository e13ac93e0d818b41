"""OpenAI-compatible chat: `GET /v1/models` (the index as one model) and `POST /v1/chat/completions`
(non-streaming, and streaming as server-sent events), so chat front ends and bot frameworks that
speak that API plug in. The reply's content ends with a sources list; the citations are also given
in a structured field (`citations`, beside `choices`), and `rag` says what was answered."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.api.auth import ERROR_RESPONSES, READ
from rag.api.deps import ServiceDep
from rag.api.schemas import (
    AS_OF_DESCRIPTION,
    CitationModel,
    FiltersModel,
    StrictBool,
    StrictInt,
    TimeWindowModel,
    check_as_of,
)
from rag.chat import ChatReply, Turn
from rag.config import Settings
from rag.errors import InvalidInput
from rag.types import NO_FILTERS, Answer

router = APIRouter(prefix="/v1", tags=["openai-compatible"], dependencies=READ, responses=ERROR_RESPONSES)
STREAM_WORDS = 4  # words per streamed chunk


# Whatever index this server serves: the name a client can hard-code (the README's example does).
ALIAS = "rag"


def model_id(settings: Settings) -> str:
    """The index as a model: `rag-<index folder name>`."""
    return f"rag-{settings.index_dir.name}"


def model_ids(settings: Settings) -> list[str]:
    """The names `GET /v1/models` lists, each accepted by the chat route: the index's own, then the alias."""
    return list(dict.fromkeys([model_id(settings), ALIAS]))


def get_model_ids(request: Request) -> list[str]:
    return model_ids(request.app.state.settings)


ModelIds = Annotated[list[str], Depends(get_model_ids)]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, … are accepted and ignored

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(p.text for p in self.content if p.type == "text" and p.text)
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    # Clients send temperature, max_tokens, user, … : accepted, and meaningless for an extractive reader.
    model_config = ConfigDict(extra="allow")

    model: str = Field(..., max_length=200)
    messages: list[ChatMessage] = Field(..., min_length=1, max_length=200)
    stream: StrictBool = False
    top_k: StrictInt | None = Field(None, ge=1, le=50, description="Extension: passages to draw on")
    filters: FiltersModel | None = Field(None, description="Extension: metadata filters, as in /ask")
    as_of: str | None = Field(None, max_length=40, description="Extension: " + AS_OF_DESCRIPTION)

    _check_as_of = field_validator("as_of")(check_as_of)

    def turns(self) -> list[Turn]:
        out = []
        for m in self.messages:
            if m.role in ("user", "assistant"):
                out.append(Turn(m.role, m.text()))
        return out


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "rag"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class RagInfo(BaseModel):
    standalone_question: str = Field(..., description="The question answered, rewritten from the conversation")
    rewriter: str
    abstained: bool
    backend: str
    as_of: datetime | None = None
    time_window: TimeWindowModel | None = None


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    citations: list[CitationModel]
    rag: RagInfo


@router.get("/models", response_model=ModelList)
def list_models(models: ModelIds) -> ModelList:
    return ModelList(data=[ModelCard(id=model, created=0) for model in models])


@router.post("/chat/completions", response_model=ChatCompletion,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "JSON, or server-sent events with `stream: true`"}})
def chat_completions(body: ChatCompletionRequest, service: ServiceDep,
                     models: ModelIds) -> ChatCompletion | StreamingResponse:
    if body.model not in models:
        raise InvalidInput(f"model {body.model!r} is not served here; GET /v1/models lists "
                           + " and ".join(repr(m) for m in models))
    reply = service.chat(body.turns(), body.top_k, body.filters.to_filters() if body.filters else NO_FILTERS,
                         as_of=body.as_of)
    completion = completion_of(reply, body.model, body)
    if body.stream:
        return StreamingResponse(stream_of(completion), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    return completion


def content_of(answer: Answer) -> str:
    """The answer, then its sources: `[n] Title (article id): “quote”`."""
    if not answer.citations:
        return answer.text
    lines = [answer.text, "", "Sources:"]
    lines += [f"[{c.n}] {c.title} ({c.article_id}): “{c.quote}”" for c in answer.citations]
    return "\n".join(lines)


def _words(text: str) -> int:
    return len(re.findall(r"\S+", text))


def completion_of(reply: ChatReply, model: str, body: ChatCompletionRequest) -> ChatCompletion:
    content = content_of(reply.answer)
    prompt = sum(_words(m.text()) for m in body.messages)  # words, not tokens: there is no LLM here
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()), model=model,
        choices=[Choice(message=AssistantMessage(content=content))],
        usage=Usage(prompt_tokens=prompt, completion_tokens=_words(content), total_tokens=prompt + _words(content)),
        citations=[CitationModel.of(c) for c in reply.answer.citations],
        rag=RagInfo(standalone_question=reply.standalone, rewriter=reply.rewriter,
                    abstained=reply.answer.abstained, backend=reply.answer.backend, as_of=reply.answer.as_of,
                    time_window=TimeWindowModel.of(reply.answer.time_window)),
    )


def stream_of(completion: ChatCompletion) -> Iterator[str]:
    """`chat.completion.chunk` events: the role, the content a few words at a time, then an empty
    delta with finish_reason and the structured citations, then `data: [DONE]`. The answer is
    complete before the first event, so an error is an HTTP status, never a broken stream."""
    base: dict[str, Any] = {"id": completion.id, "object": "chat.completion.chunk",
                            "created": completion.created, "model": completion.model}

    def event(delta: dict, finish: str | None = None, **extra: Any) -> str:
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    pieces = re.findall(r"\S+\s*|\s+", completion.choices[0].message.content)
    for start in range(0, len(pieces), STREAM_WORDS):
        yield event({"content": "".join(pieces[start : start + STREAM_WORDS])})
    yield event({}, "stop", citations=[c.model_dump(mode="json") for c in completion.citations],
                rag=completion.rag.model_dump(mode="json"), usage=completion.usage.model_dump())
    yield "data: [DONE]\n\n"
