"""The sentence encoder from an ONNX export of all-MiniLM-L6-v2, made locally from the bundled
weights and run by ONNX Runtime (fp32, int8) or OpenVINO (bf16).

Serving needs only onnxruntime or openvino, tokenizers and numpy: torch is imported only to export
the model once (`rag.embedding.export`), when no checked export is in the cache. The exported graph
holds the whole sentence-transformers pipeline of the model folder (modules.json: Transformer →
mean Pooling over the attention mask → Normalize), so `embed` feeds word-piece ids and reads unit
vectors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rag.embedding.model import MIN_COSINE, ModelFolder, Precision

# Padded attention cells (texts × width²) one forward pass may hold: 32 texts up to 64 word pieces
# wide, fewer when wider (8 at 128, 2 at the 256 window). BBC ingest ran as fast, at 100 MB less peak.
MAX_ATTENTION = 32 * 64 * 64
QUERY_WIDTH_STEP = 16  # word pieces; see _openvino_bf16

class OnnxEmbedder:
    """all-MiniLM-L6-v2 from its ONNX export: fp32 or blockwise int8 weights on ONNX Runtime, or the
    fp32 graph on OpenVINO with bf16 arithmetic (1.8× fp32's speed on a CPU with AVX512_BF16).

    Texts are tokenised with the model folder's tokenizer.json (lower-casing BERT word pieces,
    [CLS] … [SEP], truncated to max_seq_length as sentence-transformers does), sorted by length and
    batched so that padding stays small, then put back in input order.
    """

    def __init__(self, name: str, folder: ModelFolder, model_file: Path, precision: Precision = "fp32",
                 batch_size: int = 32, threads: int | None = None, fp16_weights: bool = False) -> None:
        """Runs `model_file` as it is: `rag.embedding.export.open_checked` opens a checked export.
        `fp16_weights`: OpenVINO (bf16) holds the weights in fp16 (`rag.config.Settings.encoder_weights`)."""
        from tokenizers import Tokenizer

        if precision not in MIN_COSINE:
            raise ValueError(f"precision must be one of {sorted(MIN_COSINE)}, got {precision!r}")
        self.name = name
        self.precision = precision
        if batch_size < 1:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.batch_size = batch_size
        self.dimension = folder.dimension
        self.max_tokens = folder.max_seq_length
        self.model_file = model_file
        # Two tokenizers: one truncating to the window for embedding, one whole for counting.
        self._counter = Tokenizer.from_file(str(folder.path / "tokenizer.json"))
        self._counter.no_truncation()
        self._counter.no_padding()
        self._tokenizer = Tokenizer.from_file(str(folder.path / "tokenizer.json"))
        self._tokenizer.no_padding()  # padded here per batch, to the batch's longest text
        self._tokenizer.enable_truncation(self.max_tokens)

        threads = threads or len(os.sched_getaffinity(0))
        self._forward = (_openvino_bf16(model_file, threads, fp16_weights) if self.precision == "bf16"
                         else _onnxruntime(model_file, threads))
        # One run at a time, as for the torch model: each run already uses every core, and
        # concurrent runs from server threads would only contend for them.
        self._lock = threading.Lock()

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids as the model reads them: [CLS] … [SEP], truncated to the window."""
        return [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        ids = self.token_ids(texts)
        out = np.empty((len(ids), self.dimension), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        with self._lock:
            for batch in length_batches(order, [len(i) for i in ids], self.batch_size):
                out[batch] = self.run_batch([ids[i] for i in batch])
        return out

    def count_tokens(self, text: str) -> int:
        """Word pieces the model sees for `text` before truncation, [CLS] and [SEP] included."""
        return len(self._counter.encode(text, add_special_tokens=True).ids)

    def run_batch(self, ids: list[list[int]]) -> np.ndarray:
        """One padded forward pass over `ids` as given (no sorting), caller holding no lock."""
        width = max(len(row) for row in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)  # [PAD] is id 0
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, pieces in enumerate(ids):
            input_ids[row, :len(pieces)] = pieces
            mask[row, :len(pieces)] = 1
        return self._forward(input_ids, mask)


def length_batches(order: list[int], lengths: list[int], batch_size: int,
                   max_attention: int = MAX_ATTENTION) -> Iterator[list[int]]:
    """`order` (indices sorted by length) cut into batches of at most `batch_size` whose padded
    attention, batch × width², stays within `max_attention`: a run's attention scores grow with the
    square of its width, and 32 texts of 256 word pieces took 100 MB more peak memory at ingest."""
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == batch_size or (len(batch) + 1) * lengths[i] ** 2 > max_attention):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input_ids, attention_mask) → unit vectors


def _onnxruntime(model_file: Path, threads: int) -> Forward:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle intra-op threads would spin between calls, taking cores from the rest of a request.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    def forward(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        (vectors,) = session.run(None, {"input_ids": input_ids, "attention_mask": mask})
        return vectors
    return forward


def _openvino_bf16(model_file: Path, threads: int, fp16_weights: bool = False) -> Forward:
    """The fp32 graph with OpenVINO's CPU plugin told to multiply in bf16. Why not ONNX Runtime: its
    CPU kernels have no bf16 matmul, and its int8 ones lose more (least cosine 0.990 against 0.9999).
    Measured on BBC sentences (2 Zen 4 cores): 15k word pieces/s against 8.4k for fp32."""
    import openvino
    from openvino._offline_transformations import compress_model_transformation

    core = openvino.Core()
    model = core.read_model(str(model_file))
    if fp16_weights:
        # Weights kept in fp16 (what `openvino.save_model` does by default): the plugin multiplies
        # in bf16 all the same, widening them as it goes. The encoder's share of a server's memory
        # fell 253 → 193 MB; vectors move by cosine 5e-5 at most (the export check runs both).
        compress_model_transformation(model)
    compiled = core.compile_model(model, "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    del model  # the compiled model keeps what it needs
    request = compiled.create_infer_request()  # one at a time: the embedder's lock serialises runs

    def forward(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if len(input_ids) == 1:
            # A lone text (a question) is padded to a multiple of QUERY_WIDTH_STEP: OpenVINO prepares
            # its kernels per input shape and reuses them while the shape recurs, so few shapes
            # answer faster (BBC questions between other work: p50 2.3 → 1.6 ms). The masked
            # padding changes the vector by cosine 5e-6. Batches are left alone: sorted by length,
            # their widths already recur, and padding them would cost more than it saves.
            pad = -input_ids.shape[1] % QUERY_WIDTH_STEP
            input_ids, mask = np.pad(input_ids, ((0, 0), (0, pad))), np.pad(mask, ((0, 0), (0, pad)))
        result = request.infer({"input_ids": input_ids, "attention_mask": mask})
        return np.array(result[compiled.output(0)], dtype=np.float32)  # a copy: the request reuses its buffer
    return forward
