"""POST /ask (an answer with citations, or server-sent events as it is written) and POST /search
(the passages retrieval finds)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from rag.api.auth import ERROR_RESPONSES, READ
from rag.api.deps import ServiceDep
from rag.api.schemas import (
    AskRequest,
    AskResponse,
    SearchRequest,
    SearchResponse,
    SearchResult,
    TimeWindowModel,
)
from rag.types import Answer

router = APIRouter(tags=["ask"])


@router.post("/ask", response_model=AskResponse, dependencies=READ,
             responses={**ERROR_RESPONSES,
                        200: {"content": {"text/event-stream": {}},
                              "description": "With `stream`: `token` events, then one `answer` event"}})
def ask(body: AskRequest, service: ServiceDep) -> AskResponse | StreamingResponse:
    # A sync route runs in the thread pool, as does a sync stream's iteration: a slow LLM never
    # blocks the event loop.
    if not body.stream:
        return AskResponse.of(service.ask(body.question, body.top_k, body.to_filters(), body.as_of))
    events = service.ask_stream(body.question, body.top_k, body.to_filters(), body.as_of)
    return StreamingResponse(_sse(events), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(events: Iterator[str | Answer]) -> Iterator[str]:
    """Server-sent events: `token` ({"text"}) as the answer is written, `answer` (AskResponse) last."""
    for event in events:
        if isinstance(event, Answer):
            yield f"event: answer\ndata: {AskResponse.of(event).model_dump_json()}\n\n"
        else:
            yield f"event: token\ndata: {json.dumps({'text': event})}\n\n"


@router.post("/search", response_model=SearchResponse, dependencies=READ, responses=ERROR_RESPONSES)
def search(body: SearchRequest, service: ServiceDep) -> SearchResponse:
    passages, timed = service.search_when(body.query, body.top_k, body.to_filters(), body.as_of)
    return SearchResponse(results=[SearchResult.of(p) for p in passages], as_of=timed.as_of,
                          time_window=TimeWindowModel.of(timed.window))
