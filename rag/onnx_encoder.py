"""The sentence encoder from an ONNX export of all-MiniLM-L6-v2, made locally from the bundled
weights and run by ONNX Runtime (fp32, int8) or OpenVINO (bf16).

Serving needs only onnxruntime or openvino, tokenizers and numpy: torch is imported only to export
the model once (rag/onnx_export.py), when no checked export is in the cache. The exported graph
holds the whole sentence-transformers pipeline of the model folder (modules.json: Transformer →
mean Pooling over the attention mask → Normalize), so `embed` feeds word-piece ids and reads unit
vectors.

Cache layout (`RAG_ENCODER_CACHE`): `<stem>.onnx` plus `<stem>.json`, the record of the check the
export passed and the file's sha256. The stem hashes the source weights and the export settings,
so a changed model or exporter never reuses a stale file; a file whose bytes no longer match its
record is exported again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from rag.errors import RagError
from rag.files import sha256_of

if TYPE_CHECKING:
    from rag.embedding import Embedder

log = logging.getLogger(__name__)

# fp32: the plain export (ONNX Runtime; OpenVINO reads it for bf16); fused: the same with ONNX
# Runtime's fused BERT kernels (rag/onnx_export.py); int8: blockwise int8 weights; bf16: OpenVINO.
Precision = Literal["fp32", "fused", "int8", "bf16"]

# Bump when the exported graph or the quantisation changes: the stem changes with it.
EXPORT_VERSION = 2
OPSET = 17
INT8_BLOCK = 128  # int8 weights: one scale per 128 inputs of each output (MatMulNBits)
# Padded attention cells (texts × width²) one forward pass may hold: 32 texts up to 64 word pieces
# wide, fewer when wider (8 at 128, 2 at the 256 window). BBC ingest ran as fast, at 100 MB less peak.
MAX_ATTENTION = 32 * 64 * 64
QUERY_WIDTH_STEP = 16  # word pieces; see _openvino_bf16
# Agreement with the torch model an export must reach on every checked text (issue 8). bf16's
# least cosine on 3,423 BBC sentences was 0.99992 (int8's 0.990); its floor leaves room for other
# CPUs while keeping its vectors close enough to share torch's indexes (rag/embedding.py).
MIN_COSINE: dict[str, float] = {"fp32": 0.9999, "fused": 0.9999, "int8": 0.99, "bf16": 0.9995}


class EncoderExportError(RagError):
    """An ONNX export of the encoder is missing, corrupt, or does not agree with the torch model."""


@dataclass(frozen=True)
class ModelFolder:
    """A sentence-transformers folder of a BERT encoder with mean pooling and normalisation."""

    path: Path
    max_seq_length: int
    dimension: int

    @classmethod
    def read(cls, path: Path) -> ModelFolder:
        """Refuses folders whose pipeline the exported graph would not reproduce."""
        try:
            modules = json.loads((path / "modules.json").read_text())
            sbert = json.loads((path / "sentence_bert_config.json").read_text())
            config = json.loads((path / "config.json").read_text())
        except (OSError, ValueError) as error:
            raise EncoderExportError(f"not a sentence-transformers model folder: {path} ({error})") from None
        kinds = [m["type"].rsplit(".", 1)[-1] for m in sorted(modules, key=lambda m: m["idx"])]
        if kinds != ["Transformer", "Pooling", "Normalize"]:
            raise EncoderExportError(f"{path}: the ONNX encoder needs Transformer, Pooling, Normalize; got {kinds}")
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
        pooling = json.loads((path / pooling_dir / "config.json").read_text())
        modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
        if modes != ["pooling_mode_mean_tokens"]:
            raise EncoderExportError(f"{path}: the ONNX encoder does mean pooling only; the folder asks {modes}")
        if sbert.get("do_lower_case"):
            raise EncoderExportError(f"{path}: do_lower_case in sentence_bert_config.json is not supported")
        if not (path / "tokenizer.json").exists():
            raise EncoderExportError(f"{path}: no tokenizer.json")
        return cls(path, int(sbert["max_seq_length"]), int(pooling.get("word_embedding_dimension",
                                                                         config["hidden_size"])))

    def weights_digest(self) -> str:
        """sha256 over the files that decide the graph: weights and configuration."""
        digest = hashlib.sha256()
        names = sorted(p.name for p in self.path.iterdir() if p.suffix in {".safetensors", ".bin"})
        for name in [*names, "config.json", "modules.json", "sentence_bert_config.json"]:
            digest.update(name.encode())
            digest.update(sha256_of(self.path / name).encode())
        return digest.hexdigest()


def default_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/rag/encoders`, else `~/.cache/rag/encoders`: shared by every index and
    checkout on the machine, since an export depends only on the weights and the exporter."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rag" / "encoders"


def export_stem(folder: ModelFolder, precision: Precision) -> str:
    """Names the export by its inputs: the weights, the exporter and the quantisation."""
    import importlib.metadata as md

    versions = {pkg: md.version(pkg) for pkg in ("torch", "transformers", "onnx", "onnxruntime")}
    runtime = {}
    if precision == "bf16":  # the check holds for this OpenVINO and this CPU's bf16 support
        versions["openvino"] = md.version("openvino")
        runtime["native_bf16"] = openvino_has_native_bf16()
    key = json.dumps({"weights": folder.weights_digest(), "precision": precision, "opset": OPSET, **runtime,
                      "export_version": EXPORT_VERSION,
                      "int8_block": INT8_BLOCK if precision == "int8" else None, "max_seq_length": folder.max_seq_length,
                      "versions": versions}, sort_keys=True)
    return f"{folder.path.name}-{precision}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def checked_export(folder: ModelFolder, precision: Precision, cache_dir: Path,
                   reference: Embedder | None = None) -> Path:
    """The path of an export that passed the agreement check and whose bytes are intact; exports
    (with torch) when there is none."""
    stem = export_stem(folder, precision)
    model = cache_dir / f"{stem}.onnx"
    problem = export_problem(model)
    if problem is None:
        return model
    from rag.onnx_export import export  # imports torch: only when there is something to export

    if model.exists() or model.with_suffix(".json").exists():
        log.warning("encoder export %s is unusable (%s); exporting it again", model, problem)
    return export(folder, precision, model, reference)


def export_problem(model: Path) -> str | None:
    """Why `model` cannot be used (missing, no record of its check, bytes changed), or None."""
    record_path = model.with_suffix(".json")
    if not model.exists():
        return "no such file"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return f"no readable check record {record_path.name}"
    if record.get("sha256") != sha256_of(model):
        return "its bytes do not match the sha256 recorded when it was checked"
    if record.get("min_cosine", 0.0) < MIN_COSINE[record.get("precision", "fp32")]:
        return f"its recorded agreement {record.get('min_cosine')} is below the floor"
    return None


@cache
def openvino_has_native_bf16() -> bool:
    """Whether this CPU multiplies in bf16 (AVX512_BF16 or AMX); elsewhere OpenVINO runs bf16 as fp32.
    Asked once per process: the CPU does not change."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OnnxEmbedder:
    """all-MiniLM-L6-v2 from its ONNX export: fp32 or blockwise int8 weights on ONNX Runtime, or the
    fp32 graph on OpenVINO with bf16 arithmetic (1.8× fp32's speed on a CPU with AVX512_BF16).

    Texts are tokenised with the model folder's tokenizer.json (lower-casing BERT word pieces,
    [CLS] … [SEP], truncated to max_seq_length as sentence-transformers does), sorted by length and
    batched so that padding stays small, then put back in input order.
    """

    def __init__(self, name: str, path: Path | None = None, precision: Precision = "fp32",
                 cache_dir: Path | None = None, batch_size: int = 32, threads: int | None = None,
                 reference: Embedder | None = None) -> None:
        """`reference`: the torch embedder to check a new export against (loaded if needed)."""
        from rag.embedding import bundled_model_path

        if precision not in MIN_COSINE:
            raise ValueError(f"precision must be one of {sorted(MIN_COSINE)}, got {precision!r}")
        folder = ModelFolder.read(path or bundled_model_path())
        model_file = checked_export(folder, precision, cache_dir or default_cache_dir(), reference)
        self.name = name
        self.precision = precision
        self._open(folder, model_file, batch_size, threads)

    def _open(self, folder: ModelFolder, model_file: Path, batch_size: int, threads: int | None = None) -> None:
        from tokenizers import Tokenizer

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
        self._forward = (_openvino_bf16 if self.precision == "bf16" else _onnxruntime)(model_file, threads)
        # One run at a time, as for the torch model: each run already uses every core, and
        # concurrent runs from server threads would only contend for them.
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, name: str, folder: ModelFolder, model_file: Path, batch_size: int = 32,
                  precision: Precision = "fp32") -> OnnxEmbedder:
        """An embedder over an export file as it is, unchecked (for the check itself)."""
        embedder = cls.__new__(cls)
        embedder.name = name
        embedder.precision = precision
        embedder._open(folder, model_file, batch_size)
        return embedder

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


def _openvino_bf16(model_file: Path, threads: int) -> Forward:
    """The fp32 graph with OpenVINO's CPU plugin told to multiply in bf16. Why not ONNX Runtime: its
    CPU kernels have no bf16 matmul, and its int8 ones lose more (least cosine 0.990 against 0.9999).
    Measured on BBC sentences (2 Zen 4 cores): 15k word pieces/s against 8.4k for fp32."""
    import openvino

    compiled = openvino.Core().compile_model(str(model_file), "CPU", {
        "INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
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
