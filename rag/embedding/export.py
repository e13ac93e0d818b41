"""Export the bundled encoder to ONNX with torch, check it against the torch model, and publish it
into the encoder cache atomically; open checked exports. Exporting runs once per machine and model;
the serving path reaches torch only when the cache holds no usable export.

Cache layout (`RAG_ENCODER_CACHE`): `<stem>.onnx` plus `<stem>.json`, the record of the check the
export passed and the file's sha256. The stem hashes the source weights and the export settings,
so a changed model or exporter never reuses a stale file; a file whose bytes no longer match its
record is exported again.

Why the checks: an export can look fine and still be wrong. A quick export once had every
embedding off (mean cosine 0.97). Measured here (transformers 5.24, torch 2.13), the legacy
TorchScript exporter with dynamic batch and sequence axes reproduces the torch model to 1e-6 with
either attention implementation, padded batches included; the same forward without the attention
mask, or pooled over the padding, or the model's CLS/pooler output, gives cosines of 0.3-0.8 on
padded batches. So the check runs padded, mixed-length batches, not one text at a time.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.embedding.model import (
    MIN_COSINE,
    ModelFolder,
    Precision,
    bundled_model_path,
    default_cache_dir,
    openvino_has_native_bf16,
)
from rag.embedding.onnx_encoder import OnnxEmbedder
from rag.embedding.torch_encoder import SentenceTransformerEmbedder
from rag.errors import EncoderExportError
from rag.files import replace_durably, sha256_of

if TYPE_CHECKING:
    from rag.embedding import Embedder

log = logging.getLogger(__name__)

# Bump when the exported graph or the quantisation changes: the stem changes with it.
EXPORT_VERSION = 2
OPSET = 17
INT8_BLOCK = 128  # int8 weights: one scale per 128 inputs of each output (MatMulNBits)

# Texts of varied lengths (one word to past the 256-piece window), checked in batches that mix them.
_CHECK_TEXTS = [
    "who",
    "What did the chancellor say about interest rates?",
    "Shares in the firm rose 5% after it beat forecasts.",
    "  Leading and trailing spaces, tabs\tand\nnew lines.  ",
    "Ünïcödé, accents — dashes, “quotes” and emoji 🙂 are normalised by the tokenizer.",
    "1234567890 3.14159 £1.2bn $45m 2004-05",
    " ".join(["The quick brown fox jumps over the lazy dog."] * 8),
    " ".join(["Parliament debated the bill late into the night, and ministers defended it."] * 20),
    " ".join(f"word{n}" for n in range(400)),  # far past the window: truncation
    "a",
    "The match ended in a draw after extra time; both managers blamed the referee's decisions.",
    " ".join(["Broadband take-up grew faster than expected across rural areas."] * 4),
]


def open_checked(name: str, precision: Precision = "fp32", path: Path | None = None,
                 cache_dir: Path | None = None, batch_size: int = 32, threads: int | None = None,
                 reference: Embedder | None = None, fp16_weights: bool = False) -> OnnxEmbedder:
    """An `OnnxEmbedder` over the checked export of the model folder at `path` (the bundled one by
    default), exporting it first when the cache has none. `reference`: the torch embedder to check
    a new export against (loaded if needed)."""
    if precision not in MIN_COSINE:
        raise ValueError(f"precision must be one of {sorted(MIN_COSINE)}, got {precision!r}")
    folder = ModelFolder.read(path or bundled_model_path())
    model_file = checked_export(folder, precision, cache_dir or default_cache_dir(), reference)
    return OnnxEmbedder(name, folder, model_file, precision, batch_size, threads, fp16_weights)


def export_stem(folder: ModelFolder, precision: Precision) -> str:
    """Names the export by its inputs: the weights, the exporter and the quantisation."""
    import importlib.metadata as md

    versions = {pkg: md.version(pkg) for pkg in ("torch", "transformers", "onnx", "onnxruntime")}
    runtime = {}
    if precision == "bf16":  # the check holds for this OpenVINO, this CPU's bf16 support and both weights
        versions["openvino"] = md.version("openvino")
        runtime["native_bf16"] = openvino_has_native_bf16()
        runtime["weights"] = "fp32+fp16"
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


def export(folder: ModelFolder, precision: Precision, target: Path, reference: Embedder | None = None) -> Path:
    """Write a checked export of `folder` at `target`: fp32; int8, quantised from the fp32 one; or
    bf16, the fp32 graph itself checked as OpenVINO runs it in bf16.

    Concurrent processes exporting the same file wait for each other on a lock file; the one that
    comes second finds the file done. Files appear only complete: temp file, fsync, rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    # One exporter at a time per cache folder: it may write two files (int8 needs the fp32 one).
    with open(target.parent / ".export.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if export_problem(target) is None:
            return target
        for stale in target.parent.glob(".export-*"):  # left by an exporter that was killed
            shutil.rmtree(stale, ignore_errors=True)
        print(f"exporting the {precision} ONNX encoder to {target} (once; takes a minute)", file=sys.stderr)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as work:
            work_dir = Path(work)
            fp32 = work_dir / "fp32.onnx"
            _export_fp32(folder, fp32)
            model = fp32
            if precision == "int8":
                model = work_dir / "int8.onnx"
                _quantize(fp32, model)
            elif precision == "bf16":
                model = work_dir / "bf16.onnx"
                shutil.copyfile(fp32, model)
            if precision != "fp32":
                # Made from the fp32 file: keep that too if the cache lacks it.
                fp32_target = target.parent / f"{export_stem(folder, 'fp32')}.onnx"
                if export_problem(fp32_target) is not None:
                    _check_and_publish(folder, "fp32", fp32, fp32_target, reference)
            record = _check_and_publish(folder, precision, model, target, reference)
        log.info("exported %s in %.0f s (min cosine %.6f)", target.name, time.monotonic() - started,
                 record["min_cosine"])
        print(f"exported {target.name} in {time.monotonic() - started:.0f} s: cosine to the torch model "
              f"min {record['min_cosine']:.6f}, mean {record['mean_cosine']:.6f}", file=sys.stderr)
    return target


def _export_fp32(folder: ModelFolder, out: Path) -> None:
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    class Pooled(torch.nn.Module):
        """BertModel → mean over the attention mask → L2 normalisation, as sentence-transformers'
        Pooling (clamp 1e-9) and Normalize (F.normalize) modules compute them."""

        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            token_type_ids = torch.zeros_like(input_ids)  # one segment
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    bert = AutoModel.from_pretrained(str(folder.path), local_files_only=True, attn_implementation="eager").eval()
    # An example batch with padding, so the traced graph takes the masked path.
    example = (torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]]),
               torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]))
    # The exporter's deprecation and tracer warnings are expected here: the legacy exporter is
    # the one measured to agree (module docstring), and the traced Python branch in transformers'
    # mask code (padding beyond the key length) never applies to an encoder; the check decides.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(bert), example, str(out), dynamo=False, opset_version=OPSET,
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                          "embedding": {0: "batch"}},
        )


def _quantize(fp32: Path, out: Path) -> None:
    """int8 weights in blocks of 128 along the input dimension, each block with its own scale
    (MatMulNBits, 8 bits), multiplied in int8 against activations quantised per block too
    (accuracy level 4). Measured on 203 BBC chunks (bench/encoder.py has the figures): onnxruntime's
    `quantize_dynamic` (one scale per tensor or per output channel for the weights, one per
    tensor for the activations) reached least cosines of 0.73-0.988 to the torch model in every
    variant (QInt8/QUInt8, per-channel or not, reduce_range or not), under the 0.99 floor;
    blockwise int8 keeps every chunk above 0.998 and is about as fast."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(block_size=INT8_BLOCK, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32)), algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)


def _check_and_publish(folder: ModelFolder, precision: Precision, model: Path, target: Path,
                       reference: Embedder | None) -> dict:
    """Compare `model` with the torch model; refuse it below the floor, else rename it into place
    with its check record beside it."""
    cosines = agreement(folder, model, precision, reference)
    record = {"precision": precision, "min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean()),
              "texts": len(cosines), "sha256": sha256_of(model), "source": str(folder.path)}
    if record["min_cosine"] < MIN_COSINE[precision]:
        fallback = "RAG_ENCODER=torch works" if precision == "fp32" else "RAG_ENCODER=onnx (fp32) or torch work"
        raise EncoderExportError(
            f"the {precision} ONNX export of {folder.path} disagrees with the torch model: least cosine "
            f"{record['min_cosine']:.6f} over {len(cosines)} texts, below the {MIN_COSINE[precision]} floor; "
            f"not using it ({fallback} meanwhile)")
    replace_durably(model, target)
    record_tmp = model.with_suffix(".json")  # in the work folder, beside the model
    record_tmp.write_text(json.dumps(record, indent=2) + "\n")
    replace_durably(record_tmp, target.with_suffix(".json"))
    return record


def agreement(folder: ModelFolder, model: Path, precision: Precision = "fp32",
              reference: Embedder | None = None) -> np.ndarray:
    """Each check text's least cosine between its ONNX vector and sentence-transformers' torch
    vector, with the texts run alone, in shuffled groups of three, and all in one padded batch; for
    bf16, with the weights held either way (`OnnxEmbedder`'s `fp16_weights`)."""
    torch_model = reference or SentenceTransformerEmbedder("check", folder.path)
    expected = torch_model.embed(_CHECK_TEXTS)
    least = np.ones(len(_CHECK_TEXTS))
    order = np.random.default_rng(0).permutation(len(_CHECK_TEXTS))
    for fp16_weights in ((False, True) if precision == "bf16" else (False,)):
        onnx = OnnxEmbedder("check", folder, model, precision=precision, fp16_weights=fp16_weights)
        ids = onnx.token_ids(_CHECK_TEXTS)
        for size in (1, 3, len(ids)):
            for start in range(0, len(ids), size):
                batch = order[start:start + size]
                vectors = onnx.run_batch([ids[i] for i in batch])
                least[batch] = np.minimum(least[batch], (vectors * expected[batch]).sum(axis=1))
    return least
