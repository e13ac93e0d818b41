"""POST /briefings: a briefing note over every article matching a topic and the filters."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from rag.api.auth import ERROR_RESPONSES, READ
from rag.api.deps import ServiceDep
from rag.api.schemas import BriefRequest, BriefResponse
from rag.briefing.render import to_markdown

router = APIRouter(tags=["briefings"], dependencies=READ, responses=ERROR_RESPONSES)


@router.post("/briefings", response_model=BriefResponse,
             responses={200: {"content": {"text/markdown": {}},
                              "description": "JSON, or Markdown with `format: md`"}})
def create_briefing(body: BriefRequest, service: ServiceDep) -> BriefResponse | Response:
    briefing = service.brief(body.topic, body.to_filters(), body.max_articles, as_of=body.as_of)
    if body.format == "md":
        return Response(to_markdown(briefing), media_type="text/markdown; charset=utf-8")
    return BriefResponse.of(briefing)
