"""Embedding: text → L2-normalised float32 vectors. `Embedder` is the protocol every stage uses;
`build_embedder` makes the one the settings ask for (torch, or an ONNX export run by ONNX Runtime or
OpenVINO; `auto`: the fastest one this CPU suits, `encoder_choices`), loaded once. Encoders, their export and check, the vector cache and the word-piece
table live in this package's modules."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from rag.errors import EncoderExportError

if TYPE_CHECKING:
    from rag.config import Settings
    from rag.embedding.model import Precision


log = logging.getLogger(__name__)


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
    """The embedder the settings ask for (`auto`: the fastest this CPU suits, see `encoder_choices`),
    loaded once. The name recorded in an index says whose vectors it holds. fp32 ONNX gives the
    torch vectors (cosine > 0.99999) and bf16 arithmetic gives them to within 1e-4 (least cosine
    0.99992 over 3,423 BBC sentences), so rankings differ only at near-ties: both share the torch
    model's name and indexes, and a machine of another CPU kind can serve an index built here.
    int8 weights move vectors by up to 0.01 (least cosine 0.990), so their indexes record another
    name and are kept apart."""
    choices = encoder_choices(settings)
    for n, choice in enumerate(choices):
        try:
            embedder = _load(settings, choice.encoder)
        except EncoderExportError as error:  # its export disagreed with torch on this machine
            if n + 1 == len(choices):
                raise
            log.warning("encoder %s not used (%s); trying %s", choice.encoder, error, choices[n + 1].encoder)
            continue
        log.info("encoder %s: %s", choice.encoder, choice.reason)
        return embedder
    raise AssertionError("encoder_choices is never empty")


def _load(settings: Settings, encoder: str) -> Embedder:
    name = embedder_name(settings)
    if encoder == "torch":
        from rag.embedding.torch_encoder import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(name, settings.embedding_path, settings.embed_batch_size)
    from rag.embedding.export import open_checked

    return open_checked(name, onnx_precision(encoder), settings.embedding_path, settings.encoder_cache,
                        settings.embed_batch_size, fp16_weights=settings.encoder_weights == "fp16")


@dataclass(frozen=True)
class EncoderChoice:
    """A concrete encoder (a RAG_ENCODER value other than `auto`) and why it runs."""

    encoder: str
    reason: str


def encoder_choices(settings: Settings) -> list[EncoderChoice]:
    """The encoders to try, best first; `build_embedder` takes the first whose export passes its
    agreement check against torch here. An explicit setting is the only choice. `auto` picks by
    what the CPU can do, never by what one CPU family makes fast (bench/encoder_isa.py measured
    each candidate under the CPU's own instruction set and under AVX2 only):
    - a CPU that multiplies in bf16 (AVX512_BF16 or AMX): OpenVINO's bf16 arithmetic (BBC
      sentences, one thread, CPU seconds: 3.2× ONNX Runtime fp32 on a Sapphire Rapids Xeon);
    - any other x86 CPU (AVX2, or AVX-512 without bf16): ONNX Runtime fp32. Under AVX2 only,
      OpenVINO ran batches at 1.01-1.02× its speed (bf16 runs as fp32 there), a lone question at
      0.82×, and at 0.67-0.69× with two threads on a busy machine; int8 (ONNX Runtime blockwise,
      OpenVINO with NNCF calibrated on BBC sentences) ran at 0.65-0.80× and moved vectors too far
      to share torch's indexes (NNCF: mean cosine 0.9958); onnxruntime's fused BERT graph at 0.93-0.95×;
    - torch last, should an export fail its check."""
    if settings.encoder != "auto":
        return [EncoderChoice(settings.encoder, f"RAG_ENCODER={settings.encoder}")]
    from rag.embedding.model import openvino_has_native_bf16

    if openvino_has_native_bf16():
        first = EncoderChoice("onnx-bf16", "this CPU multiplies in bf16 (AVX512_BF16 or AMX): OpenVINO with bf16 "
                                           "arithmetic, the fastest here, within cosine 1e-4 of torch")
        return [first, EncoderChoice("onnx", "ONNX Runtime fp32 (the bf16 export was refused)"),
                EncoderChoice("torch", "both ONNX exports refused")]
    return [EncoderChoice("onnx", "no bf16 arithmetic in this CPU (OpenVINO would run bf16 as fp32): ONNX "
                                  "Runtime fp32, the fastest without bf16 at torch's vectors"),
            EncoderChoice("torch", "the ONNX export refused")]


def onnx_precision(encoder: str) -> Precision:
    """The ONNX export an `onnx*` encoder setting runs."""
    return {"onnx": "fp32", "onnx-bf16": "bf16", "onnx-int8": "int8"}[encoder]


def embedder_name(settings: Settings) -> str:
    """The model name an index built with these settings records (no model is loaded)."""
    if settings.encoder == "onnx-int8":
        return f"{settings.embedding_model}+onnx-int8"
    return settings.embedding_model
