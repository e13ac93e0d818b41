"""The encoders side by side on BBC chunks: torch (sentence-transformers encode), ONNX Runtime fp32
and int8, OpenVINO bf16 (weights held in fp32, and in fp16 as `rag serve` holds them), in one
process, rounds interleaved so that a busy shared machine slows all alike.

    python bench/encoder.py [CORPUS] [--articles 300] [--rounds 3] [--batch-sizes 8,16,32,64]
                            [--quant-variants]

For each encoder: word pieces per second (the pieces the model reads, truncation included) as the
best and the median round, the ratio to torch's in the same rounds, single-query latency p50/p95
(the serving path: one short question), and the cosine of every chunk's vector to torch's (mean
and least). `--batch-sizes` times the fp32 ONNX encoder at other batch sizes; `--quant-variants`
also measures onnxruntime's `quantize_dynamic` variants that the int8 export does not use.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from rag.chunking import Chunker
from rag.config import Settings
from rag.embedding.export import open_checked
from rag.embedding.model import ModelFolder, bundled_model_path, default_cache_dir
from rag.embedding.onnx_encoder import OnnxEmbedder
from rag.embedding.torch_encoder import SentenceTransformerEmbedder
from rag.ingest import read_file

QUERIES = ["Why did the chancellor raise interest rates?", "Who won the Australian Open?",
           "What did Blair say about the election date?", "broadband prices", "Oscar nominations"]


def bbc_chunks(corpus: Path, articles: int) -> list[str]:
    """Chunks of `articles` files spread evenly over the corpus (every category), as ingest cuts them."""
    files = sorted(corpus.glob("*/*.txt"))
    step = max(1, len(files) // articles)
    chunker = Chunker()
    texts: list[str] = []
    for path in files[::step][:articles]:
        for item in read_file(path, max_bytes=5_000_000):
            texts.extend(chunk.text for chunk in chunker.chunk(item))
    return texts


def timed(embed, texts: list[str]) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    vectors = embed(texts)
    return time.perf_counter() - started, vectors


def query_latency(embed, repeats: int = 40) -> tuple[float, float]:
    times = []
    for n in range(repeats):
        started = time.perf_counter()
        embed([QUERIES[n % len(QUERIES)]])
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95)]


def quant_variants(folder: ModelFolder, fp32_file: Path, work: Path) -> dict[str, Path]:
    """onnxruntime's dynamic quantisation, as the issue suggested it, for comparison."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = {}
    for weight_type in (QuantType.QInt8, QuantType.QUInt8):
        for per_channel in (False, True):
            path = work / f"dyn-{weight_type.name}-{per_channel}.onnx"
            quantize_dynamic(str(fp32_file), str(path), weight_type=weight_type, per_channel=per_channel)
            out[f"dynamic {weight_type.name}{' per-channel' if per_channel else ''}"] = path
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "corpora" / "bbc")
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", default="", help="fp32 ONNX batch sizes to time besides 32")
    parser.add_argument("--quant-variants", action="store_true")
    args = parser.parse_args()

    settings = Settings()
    texts = bbc_chunks(args.corpus, args.articles)
    torch_model = SentenceTransformerEmbedder(settings.embedding_model)
    encoders = {"torch": torch_model}
    cache = settings.encoder_cache or default_cache_dir()
    for precision in ("fp32", "bf16", "int8"):
        encoders[f"onnx {precision}"] = open_checked(settings.embedding_model, precision,
                                                     cache_dir=cache, reference=torch_model)
    # As `rag serve` holds it (RAG_ENCODER_WEIGHTS=auto there): fp16 weights, 60 MB less memory.
    encoders["onnx bf16, fp16 weights"] = open_checked(settings.embedding_model, "bf16", cache_dir=cache,
                                                       reference=torch_model, fp16_weights=True)
    folder = ModelFolder.read(bundled_model_path())
    for size in filter(None, args.batch_sizes.split(",")):
        encoders[f"onnx fp32 batch {size}"] = OnnxEmbedder(
            "bench", folder, encoders["onnx fp32"].model_file, batch_size=int(size))
    work = tempfile.TemporaryDirectory(prefix="rag-bench-encoder-")
    if args.quant_variants:
        for label, path in quant_variants(folder, encoders["onnx fp32"].model_file, Path(work.name)).items():
            encoders[label] = OnnxEmbedder("bench", folder, path)

    pieces = sum(min(torch_model.count_tokens(t), torch_model.max_tokens) for t in texts)
    print(f"{len(texts)} chunks of {args.articles} articles, {pieces} word pieces; {args.rounds} rounds",
          file=sys.stderr)
    for encoder in encoders.values():  # warm up: first-run allocations are not the steady state
        encoder.embed(texts[:16])
    seconds: dict[str, list[float]] = {name: [] for name in encoders}
    vectors: dict[str, np.ndarray] = {}
    for round_ in range(args.rounds):
        for name, encoder in encoders.items():
            elapsed, vectors[name] = timed(encoder.embed, texts)
            seconds[name].append(elapsed)
            print(f"round {round_ + 1} {name}: {elapsed:.1f} s", file=sys.stderr)

    reference = vectors["torch"]
    print(f"\n{'encoder':<28} {'wp/s best':>10} {'wp/s med':>9} {'x torch':>8} {'query p50':>10} "
          f"{'p95 ms':>7} {'cos mean':>9} {'cos min':>9}")
    for name, encoder in encoders.items():
        best, median = min(seconds[name]), statistics.median(seconds[name])
        # The ratio per round (same machine load), then the median of the ratios.
        ratio = statistics.median(t / s for t, s in zip(seconds["torch"], seconds[name], strict=True))
        p50, p95 = query_latency(encoder.embed)
        cosines = (vectors[name] * reference).sum(axis=1)
        print(f"{name:<28} {pieces / best:>10.0f} {pieces / median:>9.0f} {ratio:>8.2f} {p50:>10.1f} "
              f"{p95:>7.1f} {cosines.mean():>9.6f} {cosines.min():>9.6f}")
    work.cleanup()


if __name__ == "__main__":
    main()
