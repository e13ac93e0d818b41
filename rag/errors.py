"""Domain errors. The edges translate them: HTTP status codes in `rag.api`, messages in `rag.cli`."""

from __future__ import annotations


class RagError(Exception):
    """Base of every error the service reports to a user."""


class InvalidInput(RagError):
    """The request or file is malformed; the message names what is wrong (HTTP 422)."""


class TooLarge(RagError):
    """An article or request exceeds a size limit (HTTP 413)."""


class ArticleNotFound(RagError):
    """No article has that id (HTTP 404)."""

    def __init__(self, article_id: str) -> None:
        super().__init__(f"no article with id {article_id!r}")
        self.article_id = article_id


class FetchRefused(InvalidInput):
    """A URL that is not fetched: not http(s), or its host resolves to a loopback, private,
    link-local, multicast or reserved address (SSRF), or it serves a content type that is not
    an article (HTTP 422)."""


class FetchFailed(RagError):
    """A URL that could not be fetched or read: no answer in time, an HTTP error, too many
    redirects, too large, malformed (HTTP 502: the fault is upstream)."""


class SourceNotFound(RagError):
    """No polled source has that id (HTTP 404)."""

    def __init__(self, source_id: str) -> None:
        super().__init__(f"no source with id {source_id!r}")
        self.source_id = source_id


class IndexMismatch(RagError):
    """The persisted index was built for another embedding model or dimension (HTTP 503)."""


class IndexNotReady(RagError):
    """The service is still loading, or failed to load (HTTP 503)."""


class BadSettings(RagError):
    """A setting names something missing or inconsistent; the message names the setting."""


class LLMFailed(RagError):
    """The LLM backend was down, timed out, or replied with nothing usable; the answerer falls back."""


class WriterBusy(RagError):
    """Another writer (an ingest run, another request) holds the index; retry later (HTTP 503)."""


class EncoderExportError(RagError):
    """An ONNX export of the encoder is missing, corrupt, or does not agree with the torch model."""


class DocstoreUnavailable(RagError):
    """The docstore's database server cannot be reached (restarting, network down); nothing was
    written. Retry shortly (HTTP 503 + Retry-After)."""
