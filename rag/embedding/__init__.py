"""Embedding: text → L2-normalised float32 vectors. `Embedder` is the protocol every stage uses;
`build_embedder` makes the one the settings ask for (torch, or an ONNX export run by ONNX Runtime or
OpenVINO), loaded once. Encoders, their export and check, the vector cache and the word-piece
table live in this package's modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.embedding.model import Precision


class Embedder(Protocol):
    name: str
    dimension: int
    max_tokens: int  # word pieces the model reads; text beyond is truncated

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dimension) float32, unit length."""
        ...

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees for `text` before truncation, [CLS] and [SEP] included."""
        ...


def build_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for, loaded once. The name recorded in an index says whose
    vectors it holds. fp32 ONNX gives the torch vectors (cosine > 0.99999) and bf16 arithmetic
    gives them to within 1e-4 (least cosine 0.99992 over 3,423 BBC sentences), so rankings differ
    only at near-ties: both share the torch model's name and indexes. int8 weights move vectors
    by up to 0.01 (least cosine 0.990), so their indexes record another name and are kept apart."""
    if settings.encoder == "torch":
        from rag.embedding.torch_encoder import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(embedder_name(settings), settings.embedding_path,
                                           settings.embed_batch_size)
    from rag.embedding.export import open_checked

    return open_checked(embedder_name(settings), onnx_precision(settings), settings.embedding_path,
                        settings.encoder_cache, settings.embed_batch_size)


def onnx_precision(settings: Settings) -> Precision:
    """The ONNX export an `onnx*` encoder setting runs."""
    return {"onnx": "fp32", "onnx-bf16": "bf16", "onnx-int8": "int8"}[settings.encoder]


def embedder_name(settings: Settings) -> str:
    """The model name an index built with these settings records (no model is loaded)."""
    if settings.encoder == "onnx-int8":
        return f"{settings.embedding_model}+onnx-int8"
    return settings.embedding_model
