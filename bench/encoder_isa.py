"""Encoder candidates under the CPU's own instruction set and under an AVX2-only one, in one sitting.

    python bench/encoder_isa.py [CORPUS] [--articles 150] [--rounds 3] [--isas native,avx2]
                                [--encoders torch,ort-fp32,...] [--calibration 300]

Each ISA runs in a worker process of its own (an instruction-set cap must be in place before the
runtimes load); the parent alternates them encoder by encoder, round by round, so that a busy
shared machine slows every candidate alike, and reports ratios to torch in the same round.

ISAs: `native` as the CPU is; `avx2` under bench/isa/cpuid_mask.so (CPUID says: no AVX-512, AMX,
AVX-VNNI, AVX512_BF16: what an AMD EPYC Zen 3 offers), which caps ONNX Runtime's MLAS, oneDNN
(OpenVINO, torch) and torch's own kernels alike, plus ONEDNN_MAX_CPU_ISA=AVX2 and
ATEN_CPU_CAPABILITY=avx2 for good measure; `avx2-env` with the environment variables alone (to see
what they restrict without the shim). Each worker reports what its runtimes see (OpenVINO's
OPTIMIZATION_CAPABILITIES, torch's CPU capability, the kernels OpenVINO picked).

Texts: every distinct sentence of `--articles` BBC files spread over the corpus (what ingest
embeds); the int8 calibration set comes from other files. Per encoder and ISA: word pieces/s (the
pieces the model reads), its ratio to torch's in the same round (median over rounds), one-question
latency p50/p95, and the cosine of each sentence's vector to torch's (mean, least).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
SHIM_SOURCE = BENCH / "isa" / "cpuid_mask.c"
ENCODERS = ["torch", "ort-fp32", "ort-opt",  # ort-opt: onnxruntime's BERT optimizer (fused kernels)
             "ort-int8", "ov-fp32", "ov-bf16", "ov-int8", "ov-int8-bf16"]
QUERIES = ["Why did the chancellor raise interest rates?", "Who won the Australian Open?",
           "What did Blair say about the election date?", "broadband prices", "Oscar nominations",
           "How many jobs will the car plant cut?", "Which film won best picture at the Baftas?"]
ISA_ENV = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "SHIM": "1",
             # glibc picks its string functions before the shim loads: tell it too
             "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F,-AVX512CD,-AVX512BW,-AVX512DQ,-AVX512VL,-AVX512ER,-AVX512PF"},
    "avx512": {"CPUID_MASK": "avx512", "SHIM": "1"},  # AVX-512 and VNNI, no bf16/AMX: Cascade Lake
    "avx2-env": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}


def cpu_summary() -> dict:
    info = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = sorted(f for f in flags if f.startswith(("avx", "amx")) or f in {"fma", "f16c"})
    load = os.getloadavg()
    return {"model": model, "cpus": len(os.sched_getaffinity(0)), "flags": wanted,
            "load": [round(x, 2) for x in load]}


def shim_path(work: Path) -> Path:
    out = work / "cpuid_mask.so"
    if not out.exists() or out.stat().st_mtime < SHIM_SOURCE.stat().st_mtime:
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(out), str(SHIM_SOURCE)], check=True)
    return out


# ---------------------------------------------------------------- texts

def sentences(corpus: Path, articles: int, offset: int = 0) -> list[str]:
    """Each distinct sentence of `articles` files spread over the corpus, as ingest embeds them."""
    from rag.chunking import Chunker
    from rag.indexer import sentences_of
    from rag.ingest import read_file

    files = sorted(corpus.glob("*/*.txt"))
    step = max(1, len(files) // articles)
    chunker = Chunker()
    texts: dict[str, None] = {}
    for path in files[offset::step][:articles]:
        for item in read_file(path, max_bytes=5_000_000):
            chunks = chunker.chunk(item)
            for span in sentences_of(chunks):
                texts[item.text[span.start:span.end]] = None
    return list(texts)


# ---------------------------------------------------------------- building the candidates (worker)

def build(name: str, cache: Path, calibration: list[str], threads: int):
    """The embedder for candidate `name`; exports are made once into `cache` (shared by workers)."""
    from rag.embedding.export import export_stem
    from rag.embedding.model import ModelFolder, bundled_model_path
    from rag.embedding.onnx_encoder import OnnxEmbedder
    from rag.embedding.torch_encoder import SentenceTransformerEmbedder

    folder = ModelFolder.read(bundled_model_path())
    if name == "torch":
        return SentenceTransformerEmbedder("torch")
    fp32 = cache / f"{export_stem(folder, 'fp32')}.onnx"
    # The tokenising and batching are the product's (an OnnxEmbedder over the fp32 file); only the
    # forward pass differs per candidate.
    if name == "ort-fp32":
        return with_forward(OnnxEmbedder("b", folder, fp32), ort_forward(fp32, threads))
    if name == "ort-opt":
        return with_forward(OnnxEmbedder("b", folder, fp32), ort_forward(optimized(fp32, cache), threads))
    if name == "ort-int8":
        int8 = cache / f"{export_stem(folder, 'int8')}.onnx"
        return with_forward(OnnxEmbedder("b", folder, fp32), ort_forward(int8, threads))
    if name in ("ov-fp32", "ov-bf16"):
        hint = "f32" if name == "ov-fp32" else "bf16"
        return with_forward(OnnxEmbedder("b", folder, fp32), ov_forward(fp32, hint, threads))
    if name in ("ov-int8", "ov-int8-bf16"):
        model = nncf_int8(fp32, folder, cache, calibration)
        hint = "f32" if name == "ov-int8" else "bf16"
        return with_forward(OnnxEmbedder("b", folder, fp32), ov_forward(model, hint, threads))
    raise SystemExit(f"unknown encoder {name}")


def with_forward(embedder, forward):
    embedder._forward = forward  # bench only: the tokenising and batching stay the embedder's
    return embedder


def ort_forward(model: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def forward(input_ids, mask):
        feed = {"input_ids": input_ids, "attention_mask": mask}
        return session.run(None, {k: feed[k] for k in names})[0]
    return forward


def optimized(fp32: Path, cache: Path) -> Path:
    """onnxruntime.transformers' BERT optimizer: 534 nodes become 60 (6 Attention, 12
    SkipLayerNormalization, 6 BiasGelu, 1 EmbedLayerNormalization); vectors the same to 1e-7.
    Measured 1 thread, CPU seconds, interleaved: batches 0.93x the plain graph's speed, a lone
    question 1.04-1.07x, on AVX-512 and AVX2 alike, so the product keeps the plain graph."""
    out = cache / (fp32.stem + "-ortopt.onnx")
    if not out.exists():
        from onnxruntime.transformers.optimizer import optimize_model

        model = optimize_model(str(fp32), model_type="bert", num_heads=12, hidden_size=384, opt_level=1,
                               use_gpu=False)
        print(f"ort optimizer fused: {model.get_fused_operator_statistics()}", file=sys.stderr)
        model.save_model_to_file(str(out) + ".tmp")
        os.replace(str(out) + ".tmp", out)
    return out


def ov_forward(model: Path, hint: str, threads: int):
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(str(model), "CPU", {
        "INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()

    def forward(input_ids, mask):
        result = request.infer({"input_ids": input_ids, "attention_mask": mask})
        return np.array(result[compiled.output(0)], dtype=np.float32)
    forward.compiled = compiled
    return forward


def nncf_int8(fp32: Path, folder, cache: Path, calibration: list[str]) -> Path:
    """Post-training int8 by NNCF, calibrated on our own sentences (other articles than the measured)."""
    out = cache / (fp32.stem + f"-nncf-int8-{len(calibration)}.xml")
    if not out.exists():
        import nncf
        import openvino

        from rag.embedding.onnx_encoder import OnnxEmbedder, length_batches

        tok = OnnxEmbedder("cal", folder, fp32)
        ids = tok.token_ids(calibration)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        batches = []
        for batch in length_batches(order, [len(i) for i in ids], 32):
            rows = [ids[i] for i in batch]
            width = max(map(len, rows))
            input_ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros_like(input_ids)
            for r, row in enumerate(rows):
                input_ids[r, :len(row)] = row
                mask[r, :len(row)] = 1
            batches.append({"input_ids": input_ids, "attention_mask": mask})
        model = openvino.Core().read_model(str(fp32))
        quantized = nncf.quantize(model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(batches))
        openvino.save_model(quantized, str(out))
    return out


def ov_kernels(embedder) -> list[str]:
    """The kernels OpenVINO compiled, counted by kind (jit_avx512_*, brgemm_avx512_amx_*, jit_avx2_*)."""
    compiled = getattr(getattr(embedder, "_forward", None), "compiled", None)
    if compiled is None:
        return []
    import collections

    kinds = collections.Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        primitive = info["primitiveType"].astype(str)
        if any(isa in primitive for isa in ("avx", "amx", "sse", "brgemm", "gemm", "jit")):
            kinds[f"{info['layerType'].astype(str)}:{primitive}"] += 1
    return [f"{k}×{n}" for k, n in sorted(kinds.items())]


def what_runtimes_see() -> dict:
    import onnxruntime
    import openvino
    import torch

    return {"openvino": openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
            "torch": torch.backends.cpu.get_cpu_capability(), "onnxruntime": onnxruntime.__version__,
            "openvino_version": openvino.__version__}


def worker(args) -> None:
    """Reads one JSON command per line on stdin, answers one JSON line on stdout."""
    global _PROTOCOL
    _PROTOCOL = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # libraries' prints (NNCF, the ORT optimizer) must not mix with the answers
    sys.stdout = sys.stderr
    threads = args.threads
    import torch

    torch.set_num_threads(threads)
    texts = sentences(args.corpus, args.articles)
    calibration = sentences(args.corpus, args.calibration, offset=1)[: args.calibration * 12]
    encoders, failed = {}, {}
    for name in args.encoders.split(","):
        try:
            encoders[name] = build(name, args.cache, calibration, threads)
        except RuntimeError as error:  # e.g. OpenVINO bf16 with oneDNN capped below what OpenVINO sees
            failed[name] = str(error).strip().splitlines()[-1][:200]
    for encoder in encoders.values():
        encoder.embed(texts[:64])  # warm-up: first-run allocations are not the steady state
    vectors: dict[str, np.ndarray] = {}
    ids = encoders[next(iter(encoders))].token_ids(texts) if "torch" not in encoders else None
    pieces = sum(min(encoders["torch"].count_tokens(t), 256) for t in texts) if ids is None else \
        sum(len(i) for i in ids)
    reply({"ready": True, "sentences": len(texts), "pieces": pieces, "sees": what_runtimes_see(),
           "kernels": {name: ov_kernels(e) for name, e in encoders.items()}, "failed": failed})
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("quit"):
            break
        name = command["run"]
        encoder = encoders[name]
        if command.get("kind") == "query":
            times = []
            for n in range(command.get("repeats", 40)):
                started = time.perf_counter()
                encoder.embed([QUERIES[n % len(QUERIES)]])
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            reply({"p50": times[len(times) // 2], "p95": times[int(len(times) * 0.95)]})
            continue
        started, cpu_started = time.perf_counter(), time.process_time()
        out = encoder.embed(texts)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        vectors[name] = out
        cos = {}
        if "torch" in vectors:
            c = (out * vectors["torch"]).sum(axis=1)
            cos = {"cos_mean": float(c.mean()), "cos_min": float(c.min())}
        if command.get("save"):
            np.save(command["save"], out)
        reply({"seconds": elapsed, "cpu": cpu} | cos)


_PROTOCOL = None  # the worker's answers: the original stdout; everything else printed goes to stderr


def reply(obj: dict) -> None:
    _PROTOCOL.write(json.dumps(obj) + "\n")
    _PROTOCOL.flush()


# ---------------------------------------------------------------- parent

class Worker:
    def __init__(self, isa: str, args, work: Path) -> None:
        env = dict(os.environ) | {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
                                  "TRANSFORMERS_OFFLINE": "1"}
        extra = dict(ISA_ENV[isa])
        if extra.pop("SHIM", None):
            env["LD_PRELOAD"] = str(shim_path(work))
        env |= extra
        cmd = [sys.executable, __file__, str(args.corpus), "--worker", "--articles", str(args.articles),
               "--encoders", args.encoders, "--cache", str(args.cache), "--calibration", str(args.calibration),
               "--threads", str(args.threads)]
        self.isa = isa
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=ROOT)
        self.info = self.read()

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.isa} died (exit {self.proc.wait()})")
        return json.loads(line)

    def ask(self, **command) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        try:
            self.ask(quit=True)
        except (BrokenPipeError, SystemExit, json.JSONDecodeError):
            pass
        self.proc.wait(timeout=60)


def print_table(workers, names, results, args, cpu, done_rounds) -> None:
    cpu_after = cpu_summary()
    print(f"load before {cpu['load']}, after {cpu_after['load']}")
    print(f"threads per runtime: {args.threads}; {done_rounds} of {args.rounds} rounds, ratios are medians of per-round ratios")
    print("\n| ISA | encoder | word pieces/s (median) | × torch (same ISA) | × ort-fp32 (same ISA) | "
          "× torch native | CPU-time × torch native | query p50 ms | p95 ms | cos mean | cos min |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    native_torch = results.get(("native", "torch"))
    for w in workers:
        pieces = w.info["pieces"]
        torch_s = results[(w.isa, "torch")]["seconds"]
        for name in names:
            r = results[(w.isa, name)]
            if name in w.info["failed"]:
                print(f"| {w.isa} | {name} | failed | | | | | | | | |")
                continue
            ratio = statistics.median(t / s for t, s in zip(torch_s, r["seconds"]))
            ort_s = results.get((w.isa, "ort-fp32"), {}).get("seconds") or [float("nan")] * len(r["seconds"])
            vs_ort = statistics.median(t / s for t, s in zip(ort_s, r["seconds"]))
            vs_native = (statistics.median(t / s for t, s in zip(native_torch["seconds"], r["seconds"]))
                         if native_torch else float("nan"))
            cpu_ratio = (statistics.median(t / s for t, s in zip(native_torch["cpu"], r["cpu"]))
                         if native_torch else float("nan"))
            print(f"| {w.isa} | {name} | {pieces / statistics.median(r['seconds']):,.0f} | {ratio:.2f} | "
                  f"{vs_ort:.2f} | {vs_native:.2f} | {cpu_ratio:.2f} | {statistics.median(r['p50']):.1f} | {statistics.median(r['p95']):.1f} | "
                  f"{r.get('cos_mean', 1.0):.6f} | {r.get('cos_min', 1.0):.6f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "corpora" / "bbc")
    parser.add_argument("--articles", type=int, default=150)
    parser.add_argument("--calibration", type=int, default=100, help="articles whose sentences calibrate int8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--isas", default="native,avx2")
    parser.add_argument("--encoders", default=",".join(ENCODERS))
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads per runtime (1 measures the kernels; a loaded machine hurts 2 most)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cache is None:
        from rag.config import Settings
        from rag.embedding.model import default_cache_dir

        args.cache = Settings().encoder_cache or default_cache_dir()
    if args.worker:
        worker(args)
        return
    if not args.encoders.startswith("torch"):
        raise SystemExit("--encoders must start with torch (the reference)")
    # The exports the candidates start from, made once here (torch checks them).
    from rag.embedding.export import checked_export
    from rag.embedding.model import ModelFolder, bundled_model_path
    from rag.embedding.torch_encoder import SentenceTransformerEmbedder

    folder = ModelFolder.read(bundled_model_path())
    reference = SentenceTransformerEmbedder("torch")
    for precision in ("fp32", "int8"):
        checked_export(folder, precision, args.cache, reference)
    del reference

    import tempfile

    cpu = cpu_summary()
    print(f"CPU: {cpu['model']}, {cpu['cpus']} CPUs; flags: {' '.join(cpu['flags'])}; load {cpu['load']}")
    names = args.encoders.split(",")
    with tempfile.TemporaryDirectory(prefix="rag-isa-") as work:
        workers = [Worker(isa, args, Path(work)) for isa in args.isas.split(",")]
        try:
            for w in workers:
                print(f"[{w.isa}] {w.info['sentences']} sentences, {w.info['pieces']} word pieces; "
                      f"sees {json.dumps(w.info['sees'])}")
                for name, error in w.info["failed"].items():
                    print(f"[{w.isa}] {name} FAILED to build: {error}")
                for name, kernels in w.info["kernels"].items():
                    if kernels:
                        print(f"[{w.isa}] {name} kernels: {', '.join(kernels)}")
            results = {(w.isa, n): {"seconds": [], "cpu": [], "p50": [], "p95": []} for w in workers for n in names}
            for round_ in range(args.rounds):
                for name in names:
                    for w in workers:
                        if name in w.info["failed"]:
                            continue
                        r = w.ask(run=name)
                        results[(w.isa, name)]["seconds"].append(r["seconds"])
                        results[(w.isa, name)]["cpu"].append(r["cpu"])
                        results[(w.isa, name)] |= {k: v for k, v in r.items() if k.startswith("cos")}
                        q = w.ask(run=name, kind="query")
                        results[(w.isa, name)]["p50"].append(q["p50"])
                        results[(w.isa, name)]["p95"].append(q["p95"])
                        print(f"round {round_ + 1} [{w.isa}] {name}: {r['seconds']:.2f} s, query p50 {q['p50']:.1f} ms",
                              file=sys.stderr, flush=True)
                print_table(workers, names, results, args, cpu, round_ + 1)
        finally:
            for w in workers:
                w.close()


if __name__ == "__main__":
    main()
