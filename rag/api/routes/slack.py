"""Slack slash commands: `POST /integrations/slack/commands`, form-encoded, signed by Slack.

Verification follows Slack's "Verifying requests from Slack": HMAC-SHA256 with the app's signing
secret over `v0:{X-Slack-Request-Timestamp}:{raw body}`, compared in constant time with the
`X-Slack-Signature` header (`v0=<hex>`); a timestamp more than five minutes from now is refused
(replay protection). Anything else answers 401. This route is authenticated by the signature, not
by the API's own credentials: Slack cannot send those.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Request

from rag.api.auth import ERROR_RESPONSES
from rag.api.deps import ServiceDep
from rag.api.schemas import ErrorResponse
from rag.errors import InvalidInput
from rag.types import Answer

router = APIRouter(prefix="/integrations/slack", tags=["slack"])
MAX_AGE_S = 5 * 60
MAX_QUOTE_CHARS = 300


class SignatureError(Exception):
    """Why a request is not Slack's; the message goes back with the 401."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` value Slack sends for `body` at `timestamp`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str | None, timestamp: str | None, signature: str | None, body: bytes, now: float) -> None:
    """Raise SignatureError unless `signature` is Slack's for `body` and `timestamp` is recent."""
    if not secret:
        raise SignatureError("Slack commands are not enabled: RAG_SLACK_SIGNING_SECRET is not set")
    if not timestamp or not signature:
        raise SignatureError("missing X-Slack-Request-Timestamp or X-Slack-Signature header")
    try:
        sent = int(timestamp)
    except ValueError:
        raise SignatureError(f"X-Slack-Request-Timestamp is not a number: {timestamp!r}") from None
    if abs(now - sent) > MAX_AGE_S:
        raise SignatureError("request timestamp is more than five minutes from now (a replay?)")
    if not hmac.compare_digest(sign(secret, timestamp, body).encode(), signature.encode()):
        raise SignatureError("X-Slack-Signature does not match the request")


async def verified_command(request: Request) -> dict[str, str]:
    """The slash command's form fields, once the signature over the raw body checks out."""
    body = await request.body()
    secret = request.app.state.settings.slack_signing_secret
    try:
        verify(secret.get_secret_value() if secret else None, request.headers.get("x-slack-request-timestamp"),
               request.headers.get("x-slack-signature"), body, time.time())
    except SignatureError as error:
        raise HTTPException(401, str(error)) from None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HTTPException(400, "the form body is not UTF-8") from None
    return {key: values[0] for key, values in fields.items()}


SlackCommand = Annotated[dict[str, str], Depends(verified_command)]


@router.post("/commands", responses={
    **{code: ERROR_RESPONSES[code] for code in (400, 413, 422, 429, 503, 504)},
    401: {"model": ErrorResponse, "description": "Missing, wrong or stale Slack signature"}})
def slack_command(command: SlackCommand, service: ServiceDep) -> dict[str, Any]:
    question = command.get("text", "").strip()
    if not question or question.lower() == "help":
        return _ephemeral(f"Ask a question about the articles, e.g. `{command.get('command', '/ask')} "
                          "Which countries vetoed the UN cease-fire resolution?`")
    try:
        answer = service.ask(question)
    except InvalidInput as error:
        return _ephemeral(f"Cannot ask that: {error}")
    return slack_message(question, answer)


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _ephemeral(text: str) -> dict[str, Any]:
    return {"response_type": "ephemeral", "text": text}


def slack_message(question: str, answer: Answer) -> dict[str, Any]:
    """The answer for the channel: a section with the question and answer, a context block with
    the numbered sources and their quotes; `text` is the plain fallback."""
    sources = []
    for c in answer.citations:
        quote = c.quote if len(c.quote) <= MAX_QUOTE_CHARS else c.quote[:MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
        sources.append(f"[{c.n}] *{_escape(c.title)}* ({_escape(c.article_id)}): “{_escape(quote)}”")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(question)}*\n{_escape(answer.text)}"}},
    ]
    if sources:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "\n".join(sources)}]})
    fallback = answer.text + ("\n" + "\n".join(sources) if sources else "")
    return {"response_type": "in_channel", "text": fallback, "blocks": blocks}
