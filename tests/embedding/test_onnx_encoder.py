"""The ONNX Runtime and OpenVINO encoders against the torch model they are exported from: agreement
per chunk and per sentence, the choice by CPU, order under length sorting, truncation, the export
cache's checks, and no torch in serving."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from rag.chunking import Chunker
from rag.config import Settings
from rag.embedding import embedder_name
from rag.embedding.export import export_problem, export_stem, open_checked
from rag.embedding.model import ModelFolder, bundled_model_path, default_cache_dir
from rag.embedding.onnx_encoder import OnnxEmbedder, length_batches
from rag.errors import EncoderExportError, IndexMismatch
from tests.support.paths import BBC, ROOT

MODEL = Settings().embedding_model


def _bbc_texts(n_articles: int = 30) -> list[str]:
    """Every chunk of the first articles of each category, as rag.chunking cuts them."""
    from rag.ingest import read_file

    chunker = Chunker()
    texts = []
    for category in ("business", "entertainment", "politics", "sport", "tech"):
        for path in sorted((BBC / category).glob("*.txt"))[: n_articles // 5]:
            for article in read_file(path, max_bytes=5_000_000):
                texts.extend(chunk.text for chunk in chunker.chunk(article))
    return texts


QUERIES = ["who", "What did the chancellor say about interest rates?", "Blair election 2005",
           "Which film won the Oscar for best picture?", "broadband prices in Europe"]


@pytest.fixture(scope="session")
def encoder_cache() -> Path:
    """The cache the service uses (conftest has exported the default encoder into it)."""
    return Settings().encoder_cache or default_cache_dir()


@pytest.fixture(scope="session")
def onnx_fp32(encoder_cache, embedder) -> OnnxEmbedder:
    return open_checked(MODEL, "fp32", cache_dir=encoder_cache, reference=embedder)


@pytest.fixture(scope="session")
def onnx_int8(encoder_cache, embedder) -> OnnxEmbedder:
    return open_checked(f"{MODEL}+onnx-int8", "int8", cache_dir=encoder_cache, reference=embedder)


@pytest.fixture(scope="session")
def onnx_bf16(encoder_cache, embedder) -> OnnxEmbedder:
    """The default encoder: the fp32 export on OpenVINO with bf16 arithmetic."""
    return open_checked(MODEL, "bf16", cache_dir=encoder_cache, reference=embedder)


@pytest.fixture(scope="session")
def onnx_bf16_served(encoder_cache, embedder) -> OnnxEmbedder:
    """The default encoder as `rag serve` runs it: the weights held in fp16."""
    return open_checked(MODEL, "bf16", cache_dir=encoder_cache, reference=embedder, fp16_weights=True)


@pytest.fixture(scope="session")
def bbc_reference(embedder) -> tuple[list[str], np.ndarray]:
    texts = _bbc_texts() + QUERIES
    return texts, embedder.embed(texts)


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "floor"),
                         [("fp32", 0.9999), ("bf16", 0.9995), ("int8", 0.99)])
def test_every_bbc_chunk_agrees_with_torch(request, bbc_reference, precision, floor):
    texts, expected = bbc_reference
    onnx = request.getfixturevalue(f"onnx_{precision}")
    vectors = onnx.embed(texts)
    assert vectors.shape == expected.shape and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * expected).sum(axis=1)
    worst = int(cosines.argmin())
    assert len(texts) > 100  # 30 articles: ~107 chunks, plus the queries
    assert cosines.min() >= floor, (precision, float(cosines.min()), texts[worst][:80])


def _bbc_sentences(n_articles: int = 30) -> list[str]:
    """Each distinct sentence of the first articles of each category: what ingest embeds."""
    from rag.indexer import sentences_of
    from rag.ingest import read_file

    chunker = Chunker()
    texts: dict[str, None] = {}
    for category in ("business", "entertainment", "politics", "sport", "tech"):
        for path in sorted((BBC / category).glob("*.txt"))[: n_articles // 5]:
            for article in read_file(path, max_bytes=5_000_000):
                for span in sentences_of(chunker.chunk(article)):
                    texts[article.text[span.start:span.end]] = None
    return list(texts)


@pytest.mark.parametrize("encoder", ["onnx_fp32", "onnx_bf16", "onnx_bf16_served"])
def test_the_encoders_auto_may_choose_agree_with_torch_on_bbc_sentences(request, embedder, encoder):
    """Whichever encoder `auto` picks on a CPU, and however `rag serve` holds its weights, its
    vectors are torch's: cosine ≥ 0.999 on average and ≥ 0.99 for every BBC sentence (its own
    export floor is stricter still), in the mixed-length batches ingest runs."""
    onnx = request.getfixturevalue(encoder)
    texts = _bbc_sentences()
    assert len(texts) > 400  # 30 articles: 477 sentences
    cosines = (onnx.embed(texts) * embedder.embed(texts)).sum(axis=1)
    assert cosines.mean() >= 0.999 and cosines.min() >= 0.99, (encoder, cosines.mean(), cosines.min())
    assert cosines.min() >= {"fp32": 0.9999, "bf16": 0.9995}[onnx.precision]


def test_auto_chooses_by_what_the_cpu_multiplies_in():
    """bf16 on OpenVINO only where the CPU multiplies in bf16; ONNX Runtime's fp32 elsewhere;
    torch always last; an explicit setting is the only choice."""
    from rag.embedding import encoder_choices
    from rag.embedding.model import openvino_has_native_bf16

    choices = encoder_choices(Settings(encoder="auto"))
    expected = ["onnx-bf16", "onnx", "torch"] if openvino_has_native_bf16() else ["onnx", "torch"]
    assert [c.encoder for c in choices] == expected
    assert ("bf16" in choices[0].reason) and all(c.reason for c in choices)
    assert [c.encoder for c in encoder_choices(Settings(encoder="onnx-int8"))] == ["onnx-int8"]


def test_order_is_restored_under_length_sorting(onnx_fp32):
    """Texts of decreasing length, batched by length: each vector still lands on its own text."""
    texts = [" ".join(["word"] * n) + f" number {n}" for n in range(60, 0, -3)] + ["", "x"]
    one_batch = onnx_fp32.embed(texts)
    for i in (0, 7, len(texts) - 1):
        alone = onnx_fp32.embed([texts[i]])[0]
        assert float(alone @ one_batch[i]) > 0.99999
    assert float(one_batch[0] @ one_batch[-1]) < 0.99  # neighbours differ: order matters
    shuffled = list(reversed(texts))
    assert np.allclose(onnx_fp32.embed(shuffled)[::-1], one_batch, atol=1e-5)


def test_a_lone_question_padded_for_openvino_agrees_with_torch(onnx_bf16, embedder):
    """A single text runs padded to a multiple of QUERY_WIDTH_STEP (rag/embedding/onnx_encoder.py): its
    vector must still be the torch model's, and the one it gets inside a batch."""
    questions = ["Why did the Bank of England raise rates?", "Who won?",
                 "What did the minister say about the 2005 budget deficit and its effect on pensions?"]
    together = onnx_bf16.embed(questions)
    reference = embedder.embed(questions)
    for i, question in enumerate(questions):
        alone = onnx_bf16.embed([question])[0]
        assert float(alone @ reference[i]) >= 0.9995
        assert float(alone @ together[i]) >= 0.9999


def test_length_batches_bound_the_attention_of_wide_texts():
    lengths = [3] * 40 + [100] * 10 + [256] * 5
    order = list(range(len(lengths)))
    batches = list(length_batches(order, lengths, batch_size=32, max_attention=32 * 64 * 64))
    assert [i for batch in batches for i in batch] == order  # every text once, in order
    assert [len(b) for b in batches] == [32, 13, 5, 2, 2, 1]  # 8 short and 5 of 100 share the second
    assert all(len(b) * max(lengths[i] for i in b) ** 2 <= 32 * 64 * 64 or len(b) == 1 for b in batches)
    assert list(length_batches([], [], batch_size=32)) == []


def test_empty_input_and_protocol(onnx_fp32, embedder):
    assert onnx_fp32.embed([]).shape == (0, 384)
    assert onnx_fp32.dimension == embedder.dimension == 384
    assert onnx_fp32.max_tokens == embedder.max_tokens == 256
    for text in ["", "Hello, World!", "Ünïcödé £1.2bn", " ".join(["word"] * 600)]:
        assert onnx_fp32.count_tokens(text) == embedder.count_tokens(text)


def test_long_texts_are_truncated_like_torch(onnx_fp32, onnx_int8, embedder):
    """Past 256 word pieces the tail is cut: a text and itself plus a long tail embed the same."""
    head = " ".join(f"item{n}" for n in range(200))  # ~600 word pieces: far past the window
    long = head + " " + "completely different ending about football " * 50
    assert onnx_fp32.count_tokens(long) > 2 * onnx_fp32.max_tokens
    torch_vectors = embedder.embed([head, long])
    onnx_vectors = onnx_fp32.embed([head, long])
    assert float(torch_vectors[0] @ torch_vectors[1]) > 0.9999  # torch truncates: same first 256
    assert float(onnx_vectors[0] @ onnx_vectors[1]) > 0.9999
    assert float(onnx_vectors[1] @ torch_vectors[1]) > 0.9999
    assert float(onnx_int8.embed([long])[0] @ torch_vectors[1]) > 0.99


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_concurrent_use_from_threads_gives_the_same_vectors(request, precision):
    """Server threads share one embedder: ONNX Runtime's session, or OpenVINO's one infer request
    (whose output buffer the next run reuses)."""
    encoder = request.getfixturevalue(f"onnx_{precision}")
    texts = _bbc_texts(5)[:20]
    expected = encoder.embed(texts)
    results: list[np.ndarray] = []

    def work() -> None:
        results.append(encoder.embed(texts))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    for vectors in results:
        assert np.allclose(vectors, expected, atol=1e-6)


def test_exports_are_named_by_weights_and_precision(onnx_fp32, onnx_int8, onnx_bf16, tmp_path):
    folder = ModelFolder.read(bundled_model_path())
    files = {precision: embedder.model_file.name
             for precision, embedder in (("fp32", onnx_fp32), ("int8", onnx_int8), ("bf16", onnx_bf16))}
    assert files == {precision: f"{export_stem(folder, precision)}.onnx" for precision in files}
    assert len(set(files.values())) == 3
    # A model folder whose weights differ gets another name: a stale export is never reused.
    copy = tmp_path / "model"
    shutil.copytree(folder.path, copy)
    with open(copy / "model.safetensors", "r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\x00\x00\x80\x3f")
    assert export_stem(ModelFolder.read(copy), "fp32") != export_stem(folder, "fp32")
    record = json.loads(onnx_int8.model_file.with_suffix(".json").read_text())
    assert record["precision"] == "int8" and record["min_cosine"] >= 0.99
    record = json.loads(onnx_bf16.model_file.with_suffix(".json").read_text())
    assert record["precision"] == "bf16" and record["min_cosine"] >= 0.9995


@pytest.mark.slow
def test_corrupt_export_is_detected_and_exported_again(onnx_fp32, embedder, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    target = cache / onnx_fp32.model_file.name
    shutil.copy(onnx_fp32.model_file, target)
    shutil.copy(onnx_fp32.model_file.with_suffix(".json"), target.with_suffix(".json"))
    assert export_problem(target) is None
    with open(target, "r+b") as handle:  # flip bytes in the middle of the weights
        handle.seek(target.stat().st_size // 2)
        handle.write(b"\xff" * 64)
    assert "sha256" in export_problem(target)
    (cache / ".export-killed").mkdir()  # what an exporter killed mid-way leaves behind
    fresh = open_checked(MODEL, "fp32", cache_dir=cache, reference=embedder)
    assert export_problem(target) is None
    assert not (cache / ".export-killed").exists()
    assert fresh.model_file == target
    text = ["The chancellor raised interest rates."]
    assert float(fresh.embed(text)[0] @ embedder.embed(text)[0]) > 0.9999


def test_missing_check_record_means_no_use(onnx_fp32, tmp_path):
    target = tmp_path / onnx_fp32.model_file.name
    shutil.copy(onnx_fp32.model_file, target)
    assert "check record" in export_problem(target)


def test_export_disagreeing_with_torch_is_refused(embedder, tmp_path):
    """The check itself: a model whose weights differ from the reference's is refused, and
    nothing lands in the cache."""
    from rag.embedding.export import export

    copy = tmp_path / "model"
    shutil.copytree(bundled_model_path(), copy)
    from safetensors.numpy import load_file, save_file

    weights = load_file(copy / "model.safetensors")
    key = next(k for k in weights if "layer.5.output.dense.weight" in k)
    weights[key] = weights[key] * 3  # a different model
    save_file(weights, copy / "model.safetensors")
    folder = ModelFolder.read(copy)
    cache = tmp_path / "cache"
    with pytest.raises(EncoderExportError, match=r"disagrees with the torch model.*0\.9999"):
        export(folder, "fp32", cache / f"{export_stem(folder, 'fp32')}.onnx", reference=embedder)
    assert not list(cache.glob("*.onnx")) and not list(cache.glob(".export-*"))


def test_int8_index_is_not_searched_with_fp32(onnx_int8, onnx_fp32, tmp_path):
    """int8 vectors differ from torch's: the index records another name and refuses the other."""
    from rag.service import build_service

    settings = Settings(index_dir=tmp_path / "index", encoder="onnx-int8")
    assert embedder_name(settings) == onnx_int8.name != onnx_fp32.name
    assert {embedder_name(Settings(encoder=kind)) for kind in ("auto", "torch", "onnx", "onnx-bf16")} == {MODEL}
    service = build_service(settings, onnx_int8)
    service.close()
    with pytest.raises(IndexMismatch, match="onnx-int8"):
        build_service(settings.model_copy(update={"encoder": "onnx"}), onnx_fp32)


def test_serving_with_onnx_imports_no_torch(bbc_index_dir, tmp_path):
    """`rag serve`'s path (build_service, the app, a real /ask over HTTP) with the default encoder
    (`auto`: bf16 on OpenVINO or fp32 on ONNX Runtime, by CPU) never imports torch, and serves
    an index that torch's vectors built."""
    from rag.embedding import encoder_choices, onnx_precision

    precision = onnx_precision(encoder_choices(Settings())[0].encoder)
    index = tmp_path / "index"
    shutil.copytree(bbc_index_dir, index)
    script = (
        "import sys, json\n"
        "from fastapi.testclient import TestClient\n"
        "from rag.api.app import create_app\n"
        "from rag.config import Settings\n"
        "from rag.service import build_service\n"
        "settings = Settings()\n"
        "service = build_service(settings)\n"
        "with TestClient(create_app(settings, service)) as client:\n"
        "    answer = client.post('/ask', json={'question': 'What did the BBC report about the economy?'})\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)\n"
        "print(json.dumps({'status': answer.status_code, 'heavy': heavy, 'model': service.embedder.name,\n"
        "                  'kind': type(service.indexer.embedder).__name__,\n"
        "                  'precision': service.indexer.embedder.precision}))\n"
    )
    env = {**os.environ, "RAG_INDEX_DIR": str(index), "PYTHONPATH": str(ROOT)}
    env.pop("RAG_ENCODER", None)
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                            timeout=300, env=env, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"status": 200, "heavy": [], "model": MODEL, "kind": "OnnxEmbedder", "precision": precision}


def _cpuid_mask(tmp_path: Path) -> Path:
    """bench/isa/cpuid_mask.c built here: a process that preloads it sees an AVX2-only CPU (no
    AVX-512, AMX, VNNI or bf16), whatever this machine has. Needs gcc and CPUID faulting."""
    if shutil.which("gcc") is None:
        pytest.skip("no gcc to build bench/isa/cpuid_mask.c")
    if "cpuid_fault" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this CPU cannot fault on CPUID (no cpuid_fault flag): AVX2-only cannot be imitated")
    out = tmp_path / "cpuid_mask.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(out), str(ROOT / "bench" / "isa" / "cpuid_mask.c")],
                   check=True, timeout=120)
    return out


@pytest.mark.slow
def test_on_an_avx2_only_cpu_auto_runs_fp32_that_agrees_with_torch(onnx_fp32, embedder, tmp_path):
    """Under an AVX2-only CPUID (AMD EPYC Zen 3's instruction set), `auto` chooses ONNX Runtime's fp32
    export and, run with the AVX2 kernels, its vectors are torch's."""
    texts = _bbc_sentences(10)[:200]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = (
        "import json, sys, numpy as np, openvino\n"
        "from rag.config import Settings\n"
        "from rag.embedding import build_embedder, encoder_choices\n"
        "settings = Settings()\n"
        "embedder = build_embedder(settings)\n"
        "np.save(sys.argv[1] + '/vectors.npy', embedder.embed(json.load(open(sys.argv[1] + '/texts.json'))))\n"
        "print(json.dumps({'choices': [c.encoder for c in encoder_choices(settings)],\n"
        "                  'precision': embedder.precision,\n"
        "                  'openvino': openvino.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES')}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LD_PRELOAD": str(_cpuid_mask(tmp_path)),
           "RAG_ENCODER_CACHE": str(onnx_fp32.model_file.parent)}
    env.pop("RAG_ENCODER", None)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=False, capture_output=True,
                            text=True, timeout=300, env=env, stdin=subprocess.DEVNULL, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "BF16" not in report["openvino"]  # the imitation holds: no bf16 seen
    assert report["choices"] == ["onnx", "torch"] and report["precision"] == "fp32"
    cosines = (np.load(tmp_path / "vectors.npy") * embedder.embed(texts)).sum(axis=1)
    assert cosines.min() >= 0.9999, float(cosines.min())
