"""Feedback: POST /feedback (a reader's verdict on an answer) and GET /feedback (admin). Stored
in the docstore with the question, answer, citations and backend as shown, so that a newsroom's
own evaluation set grows from them (`rag feedback export` writes them as JSON Lines)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from rag.api.auth import ADMIN, ERROR_RESPONSES, READ, request_key
from rag.api.deps import ServiceDep
from rag.api.schemas import FeedbackList, FeedbackModel, FeedbackRequest

router = APIRouter(tags=["feedback"], responses=ERROR_RESPONSES)


@router.post("/feedback", response_model=FeedbackModel, status_code=201, dependencies=READ)
def add_feedback(body: FeedbackRequest, request: Request, service: ServiceDep) -> FeedbackModel:
    """Store a verdict (`up` or `down`, with an optional comment), labelled with the key that sent it."""
    key = request_key(request)
    return FeedbackModel.of(service.add_feedback(body.to_feedback(key.label if key else None)))


@router.get("/feedback", response_model=FeedbackList, dependencies=ADMIN)
def list_feedback(
    service: ServiceDep,
    since: Annotated[datetime | None, Query(description="Only feedback given at or after (ISO 8601)")] = None,
) -> FeedbackList:
    """Every verdict stored, oldest first."""
    return FeedbackList(feedback=[FeedbackModel.of(f) for f in service.feedback(since)])
