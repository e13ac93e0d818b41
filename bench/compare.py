"""The peer recipe and ours, in one run, on the same corpus and the same questions: one table.

    .venv/bin/python bench/compare.py [CORPUS] [--limit N] [--requests N] [--skip-peer] [--json]
    make bench [CORPUS=folder] [BENCH_ARGS='--limit 200']

Peer (bench/peer.py, LlamaIndex's documented default): SimpleDirectoryReader -> VectorStoreIndex on
a FaissVectorStore(IndexFlatL2) with HuggingFaceEmbedding of the same bundled MiniLM, default
SentenceSplitter (1,024 tokens). Ours: `rag ingest`, `rag serve`. For each side:
- ingest wall: from spawning the process to the index on disk (imports and model load included on
  both sides); the peer's in-process read+split+embed+index is shown too;
- peak memory of that ingest process: its own ru_maxrss, from wait4 on the child;
- chunks, word pieces in them and tokens embedded (word pieces the model read: each chunk's count
  through the bundled tokenizer, capped at the model's 256-piece window);
- retrieval p50/p95 in-process, top 5 (peer: retriever.retrieve; ours: Service.search, hybrid);
- retrieval over HTTP (peer: its retriever behind a minimal FastAPI app; ours: /search) and our
  /ask, at 1 and 8 concurrent clients; the server's resident memory after the run.
Questions come from the corpus's own headlines (fixed seed); warm-up calls are not counted.
Progress goes to stderr; servers run on 127.0.0.1 and stop by themselves; temp dirs are removed.
Timings on a shared machine are noisy: compare ratios from one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import (
    DEFAULT_CORPUS,
    RAG,
    WARMUP,
    checked,
    corpus_files,
    corpus_titles,
    free_port,
    http_timed,
    log,
    offline_env,
    percentiles_ms,
    questions,
    rss_mb,
    run_measured,
    serving,
    terminate_on_sigterm,
)

BENCH = Path(__file__).resolve().parent
PYTHON = sys.executable
CLIENTS = (1, 8)


def subset(corpus: Path, limit: int, target: Path, seed: int) -> Path:
    """`limit` files of `corpus`, drawn with a fixed seed, copied with their folders (categories)."""
    files = corpus_files(corpus)
    for path in sorted(random.Random(seed).sample(files, min(limit, len(files)))):
        dest = target / path.relative_to(corpus)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
    return target


def question_sets(titles: list[str], n: int, seed: int) -> dict[str, list[str]]:
    """One set per measurement, the same sets for both sides: a later run never meets questions an
    earlier one asked (a cache of queries or answers would flatter it). Each set starts with
    WARMUP questions that are asked but not timed."""
    names = ["in-process"] + [f"{kind}_{c}" for kind in ("retrieval", "ask") for c in CLIENTS]
    return {name: questions(titles, n + WARMUP, seed + i) for i, name in enumerate(names)}


def http_runs(base: str, path: str, body, sets: dict[str, list[str]], prefix: str) -> dict:
    out = {}
    for clients in CLIENTS:
        qs = sets[f"{prefix}_{clients}"]
        log(f"  {path} over HTTP, {clients} client(s), {len(qs) - WARMUP} requests")
        p50, p95 = percentiles_ms(http_timed(base, path, body, qs, clients))
        out[f"{prefix}_http_{clients}_p50_ms"], out[f"{prefix}_http_{clients}_p95_ms"] = p50, p95
    return out


def run_peer(corpus: Path, tmp: Path, qfile: Path, sets: dict[str, list[str]]) -> dict:
    env = offline_env()
    index = tmp / "peer-index"
    log("peer: ingest (SimpleDirectoryReader -> VectorStoreIndex, FAISS flat, HuggingFaceEmbedding)")
    result = checked(run_measured([PYTHON, str(BENCH / "peer.py"), "ingest", str(corpus), str(index),
                                   str(qfile), repr(time.time())], env), "peer ingest")
    peer = json.loads(result.stdout.strip().splitlines()[-1]) | {"peak_mb": result.peak_mb}
    log(f"  {peer['wall_s']:.1f} s, {peer['chunks']} chunks, peak {result.peak_mb:.0f} MB")
    port = free_port()
    log("peer: serving its retriever over HTTP")
    with serving([PYTHON, str(BENCH / "peer.py"), "serve", str(index), str(port)], port, env) as server:
        peer |= http_runs(server.base, "/retrieve", lambda q: {"query": q}, sets, "retrieval")
        peer["serving_rss_mb"], peer["serving_peak_mb"] = rss_mb(server.pid)
    return peer


def run_ours(corpus: Path, tmp: Path, qfile: Path, sets: dict[str, list[str]]) -> dict:
    env = offline_env(RAG_RATE_LIMIT_PER_MIN="0")
    index = tmp / "index"
    ingest = [RAG, "--index-dir", str(index), "ingest", "--json", str(corpus)]
    log("ours: rag ingest")
    first = run_measured(ingest, env)
    report = _ingest_report(first, "rag ingest")
    ours = {"wall_s": first.wall_s, "peak_mb": first.peak_mb, "articles": len(report["ingested"]),
            "failed": len(report["failed"])}
    log(f"  {first.wall_s:.1f} s, {ours['articles']} articles ({ours['failed']} failed), peak {first.peak_mb:.0f} MB")
    log("ours: rag ingest again, corpus unchanged")
    again = run_measured(ingest, env)
    report = _ingest_report(again, "re-ingest")
    ours |= {"reingest_s": again.wall_s, "reingest_changed": len(report["ingested"])}
    log(f"  {again.wall_s:.1f} s, {len(report['unchanged'])} unchanged, {len(report['ingested'])} re-ingested")
    log("ours: chunks, tokens, retrieval in-process")
    ours |= json.loads(checked(run_measured([PYTHON, str(BENCH / "ours.py"), str(index), str(qfile)], env),
                               "bench/ours.py").stdout.strip().splitlines()[-1])
    port = free_port()
    log("ours: rag serve")
    with serving([RAG, "--index-dir", str(index), "serve", "--port", str(port)], port, env) as server:
        ours |= http_runs(server.base, "/search", lambda q: {"query": q}, sets, "retrieval")
        ours |= http_runs(server.base, "/ask", lambda q: {"question": q}, sets, "ask")
        ours["serving_rss_mb"], ours["serving_peak_mb"] = rss_mb(server.pid)
    return ours


def _ingest_report(result, what: str) -> dict:
    """`rag ingest --json` exits 1 when some file failed (e.g. an unreadable one); that is a
    figure to report, not a reason to stop. No report at all is."""
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise SystemExit(f"{what} failed (exit {result.returncode}):\n{result.stderr[-2000:]}") from None


# (label, key, format, peer key if it differs); a missing key on a side prints as "—".
ROWS = [
    ("ingest wall, process start → index on disk (s)", "wall_s", "{:.1f}", None),
    ("  peer in-process: read + split + embed + index (s)", "ingest_in_process_s", "{:.1f}", None),
    ("re-ingest, corpus unchanged (s)", "reingest_s", "{:.1f}", None),
    ("chunks", "chunks", "{:,}", None),
    ("word pieces of the text read (peer: its chunks; ours: each sentence once)", "word_pieces", "{:,}", None),
    ("tokens embedded (≤ 256 per encoder input)", "tokens_embedded", "{:,}", None),
    ("share of that text embedded", "embedded_share", "{:.0%}", None),
    ("encoder inputs truncated by the window", "truncated_chunks", "{:,}", None),
    ("ingest peak memory (MiB)", "peak_mb", "{:.0f}", None),
    ("retrieval in-process p50 (ms)", "retrieval_p50_ms", "{:.1f}", None),
    ("retrieval in-process p95 (ms)", "retrieval_p95_ms", "{:.1f}", None),
] + [
    (f"retrieval over HTTP, {c} client{'s' * (c > 1)}, {p} (ms)", f"retrieval_http_{c}_{p}_ms", "{:.1f}", None)
    for c in CLIENTS for p in ("p50", "p95")
] + [
    (f"/ask over HTTP, {c} client{'s' * (c > 1)}, {p} (ms) †", f"ask_http_{c}_{p}_ms", "{:.1f}",
     f"retrieval_http_{c}_{p}_ms")
    for c in CLIENTS for p in ("p50", "p95")
] + [
    ("serving memory: server RSS after the run (MiB)", "serving_rss_mb", "{:.0f}", None),
    ("serving peak: server VmHWM (MiB)", "serving_peak_mb", "{:.0f}", None),
]


def table_rows(peer: dict, ours: dict) -> list[dict]:
    rows = []
    for label, key, fmt, peer_key in ROWS:
        p, o = peer.get(peer_key or key), ours.get(key)
        ratio = o / p if isinstance(p, int | float) and isinstance(o, int | float) and p else None
        rows.append({"metric": label, "key": key, "peer": p, "ours": o, "ratio": ratio, "format": fmt})
    return rows


def targets(peer: dict, ours: dict) -> list[dict]:
    """The targets, as ratios from this run."""
    def ratio(a: str, b: str) -> float | None:
        return ours[a] / peer[b] if a in ours and peer.get(b) else None

    ingest = ratio("wall_s", "wall_s")
    every_token = ours.get("truncated_chunks") == 0
    ask = ratio("ask_http_1_p50_ms", "retrieval_p50_ms")
    ask_p95 = ratio("ask_http_1_p95_ms", "retrieval_p95_ms")
    memory = ratio("serving_rss_mb", "peak_mb")
    return [
        {"target": "ingest wall ≤ 0.7 × peer, every token embedded", "value": ingest, "limit": 0.7,
         "note": f"every token embedded: {'yes' if every_token else 'no'}; "
                 f"ingest peak {ours.get('peak_mb', 0):.0f} MiB",
         "pass": None if ingest is None else ingest <= 0.7 and every_token},
        {"target": "re-ingest of the unchanged corpus ≤ 5 s", "value": ours["reingest_s"], "limit": 5.0,
         "note": "seconds", "pass": ours["reingest_s"] <= 5.0},
        {"target": "/ask p50 over HTTP (1 client) ≤ 1.2 × peer retrieval p50 (in-process)", "value": ask,
         "limit": 1.2, "note": "" if ask_p95 is None else f"p95: {ask_p95:.2f}×",
         "pass": None if ask is None else ask <= 1.2},
        {"target": "serving memory (server RSS) ≤ 0.5 × peer ingest peak", "value": memory, "limit": 0.5,
         "note": "", "pass": None if memory is None else memory <= 0.5},
    ]


def cpu_and_encoder() -> dict:
    """The CPU (model, the flags that decide the encoder) and the encoder `auto` picks here, and why."""
    from rag.config import Settings
    from rag.embedding import encoder_choices

    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    lines = info.splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    shown = sorted(f for f in flags if f.startswith(("avx", "amx")) or f in {"fma", "f16c"})
    choice = encoder_choices(Settings(encoder="auto"))[0]  # the children run without RAG_ settings: auto
    return {"cpu_model": model, "cpu_flags": shown, "encoder": choice.encoder, "encoder_reason": choice.reason}


def markdown(meta: dict, rows: list[dict], goals: list[dict]) -> str:
    def cell(value, fmt: str) -> str:
        return "—" if value is None else fmt.format(value)

    drawn = f" ({meta['limit']} files drawn)" if meta["limit"] else ""
    lines = [(f"Corpus {meta['corpus']}{drawn}: {meta['files']} files; {meta['requests']} questions per "
              f"measurement; {meta['cpus']} CPUs, load average {meta['load_before']:.1f} before and "
              f"{meta['load_after']:.1f} after (a shared machine: timings are noisy)."), "",
             f"CPU: {meta['cpu_model']}; flags: {' '.join(meta['cpu_flags']) or 'none of avx/amx/fma'}.",
             f"Encoder: {meta['encoder']} ({meta['encoder_reason']}); ingest ran {meta['encoder_ran']}.", "",
             "| metric | peer | ours | ours/peer |", "| --- | ---: | ---: | ---: |"]
    for row in rows:
        lines.append(f"| {row['metric']} | {cell(row['peer'], row['format'])} | {cell(row['ours'], row['format'])} "
                     f"| {cell(row['ratio'], '{:.2f}×')} |")
    phases = meta.get("peer_phases")
    if phases:
        lines += ["", "Peer ingest, where the time went: "
                  + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()) + "."]
    lines += ["", "† the peer recipe has no offline answerer: its column is retrieval over HTTP.",
              "Retrieval over HTTP: the peer's retriever behind a minimal FastAPI app; ours is /search.", "",
              "| target | value | limit | result |", "| --- | ---: | ---: | --- |"]
    for goal in goals:
        unit = " s" if goal["note"] == "seconds" else "×"
        value = "—" if goal["value"] is None else f"{goal['value']:.2f}{unit}"
        result = {True: "pass", False: "FAIL", None: "n/a (no peer run)"}[goal["pass"]]
        note = f" ({goal['note']})" if goal["note"] and goal["note"] != "seconds" else ""
        lines.append(f"| {goal['target']} | {value} | {goal['limit']}{unit} | {result}{note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=None, help="Only N files of the corpus (a fixed draw)")
    parser.add_argument("--requests", type=int, default=200, help="Questions per latency measurement")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-peer", action="store_true", help="Measure ours only (for iterating)")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of the Markdown table")
    args = parser.parse_args()
    if not args.corpus.is_dir():
        parser.error(f"corpus is not a folder: {args.corpus}")
    terminate_on_sigterm()
    load_before = os.getloadavg()[1]  # 5-minute average: how busy the machine was with others

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as name:
        tmp = Path(name)
        corpus = args.corpus.resolve()
        if args.limit:
            corpus = subset(corpus, args.limit, tmp / "corpus", args.seed)
        files = len(corpus_files(corpus))
        titles = corpus_titles(corpus)
        if not titles:
            raise SystemExit(f"no text files under {corpus}")
        sets = question_sets(titles, args.requests, args.seed)
        qfile = tmp / "questions.json"
        qfile.write_text(json.dumps(sets["in-process"]))
        peer = {} if args.skip_peer else run_peer(corpus, tmp, qfile, sets)
        ours = run_ours(corpus, tmp, qfile, sets)
    for side in (peer, ours):
        if side.get("word_pieces"):
            side["embedded_share"] = side["tokens_embedded"] / side["word_pieces"]

    meta = {"corpus": str(args.corpus), "limit": args.limit, "files": files, "requests": args.requests,
            "cpus": os.cpu_count(),
            "load_before": load_before, "load_after": os.getloadavg()[1], "peer_phases": peer.get("phases_s"),
            **cpu_and_encoder(), "encoder_ran": ours.get("encoder_ran", "?")}
    rows, goals = table_rows(peer, ours), targets(peer, ours)
    if args.json:
        print(json.dumps({"meta": meta, "peer": peer, "ours": ours, "rows": rows, "targets": goals}, indent=2))
    else:
        print(markdown(meta, rows, goals))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted")
