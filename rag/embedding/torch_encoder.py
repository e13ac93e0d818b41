"""The sentence encoder on torch, through sentence-transformers: the reference every ONNX export is
checked against, and the `torch` encoder setting."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rag.embedding.model import bundled_model_path


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded once from a local folder, on the CPU."""

    def __init__(self, name: str, path: Path | None = None, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars are noise in a CLI

        folder = path or bundled_model_path()
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"no sentence-transformers model in {folder}")
        self.name = name
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self.dimension = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        # One forward pass at a time: torch already spreads each over every core, and concurrent
        # passes from server threads only contend for them and multiply the memory held.
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        # sentence-transformers sorts by length inside encode, so batches are padded little.
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees for `text`, [CLS] and [SEP] included."""
        return len(self._model.tokenizer(text, add_special_tokens=True)["input_ids"])
