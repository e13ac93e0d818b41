"""Domain errors as HTTP: every `rag.errors` error has one status here, and errors are JSON
`{"detail": …}`; malformed JSON is a 400 naming where it breaks."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from rag.errors import (
    ArticleNotFound,
    BadSettings,
    DocstoreUnavailable,
    EncoderExportError,
    FetchFailed,
    FetchRefused,
    IndexMismatch,
    IndexNotReady,
    InvalidInput,
    LLMFailed,
    RagError,
    SourceNotFound,
    TooLarge,
    WriterBusy,
)

STATUS: dict[type[RagError], int] = {
    InvalidInput: 422,
    FetchRefused: 422,  # a URL not to fetch (scheme, private address, content type): bad input
    ArticleNotFound: 404,
    SourceNotFound: 404,
    TooLarge: 413,
    IndexMismatch: 503,
    IndexNotReady: 503,
    WriterBusy: 503,
    # The docstore's server is restarting or out of reach: retry once it is back.
    DocstoreUnavailable: 503,
    # A model export that fails its check leaves the service unable to embed: unavailable, with
    # the reason, until an operator acts (a retry alone will not help, but 503 is what it is).
    EncoderExportError: 503,
    # The answerer falls back when its LLM fails; one that reaches a route is an upstream failure.
    LLMFailed: 502,
    # A URL to fetch whose server failed (HTTP error, timeout, too large): upstream too.
    FetchFailed: 502,
    # A setting that names something missing: the server is misconfigured.
    BadSettings: 500,
}


def status_of(error: RagError) -> int:
    return next((code for kind, code in STATUS.items() if isinstance(error, kind)), 500)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def rag_error(request: Request, error: RagError) -> JSONResponse:
        status = status_of(error)
        headers = {"Retry-After": "5"} if status == 503 else None
        return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # Malformed JSON is a 400 (the body cannot be read at all), as the API documents; a body
        # that parses but breaks the schema stays FastAPI's 422 with its list of field errors.
        broken = next((e for e in error.errors() if e.get("type") == "json_invalid"), None)
        if broken is None:
            try:
                return await request_validation_exception_handler(request, error)
            except (ValueError, UnicodeEncodeError):
                # The rejected value cannot be echoed in JSON (NaN, 1e400, a lone "\ud800"): name
                # the field and the reason without it.
                detail = [{"type": e["type"], "loc": [_printable(part) for part in e["loc"]],
                           "msg": _printable(e["msg"])} for e in error.errors()]
                return JSONResponse({"detail": detail}, status_code=422)
        where = f" at character {broken['loc'][-1]}" if isinstance(broken["loc"][-1], int) else ""
        reason = broken.get("ctx", {}).get("error", "")
        return JSONResponse({"detail": f"the body is not valid JSON{where}: {reason}".rstrip(": ")},
                            status_code=400)


def _printable(value: str | int) -> str | int:
    """A string that UTF-8 can encode: a lone surrogate is written as its escape."""
    return value.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(value, str) else value
