"""Briefings over a dated BBC subset (JSONL records with published_at, as rag/ingest reads them),
through the service, the HTTP API, the CLI, and an LLM over loopback."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from rag.answer.citations import SupportScorer
from rag.api.app import create_app
from rag.briefing.briefer import Briefer
from rag.briefing.llm import MapReduce
from rag.briefing.render import to_markdown
from rag.config import Settings
from rag.ingest import read_file
from rag.service import Service, build_service
from rag.types import Filters
from tests.support.openai_peer import INVENTED, UNSUPPORTED, openai_peer, peer_llm
from tests.support.paths import BBC, RAG
from tests.support.servers import live_server
from tests.support.terminal import run_on_terminal

START = date(2005, 1, 1)
ORIGINAL = "business-023"  # "Mixed signals from French economy", dated inside WINDOW
COPY = "wire-french-economy"
WINDOW = Filters(category="business", since=date(2005, 1, 5), until=date(2005, 2, 15))


def _published(n: int) -> date:
    return START + timedelta(days=2 * (n - 1))


def _records() -> list[dict]:
    """Business 1-40 and politics 1-20, one every two days from 2005-01-01, and a syndicated copy
    of business 023: the same text under another headline, another source, a day later."""
    out = []
    for category, count in (("business", 40), ("politics", 20)):
        for n in range(1, count + 1):
            (article,) = read_file(BBC / category / f"{n:03d}.txt", max_bytes=5_000_000)
            out.append({"id": f"{category}-{n:03d}", "title": article.title, "text": article.text,
                        "source": "BBC News", "category": category,
                        "published_at": _published(n).isoformat()})
    original = next(r for r in out if r["id"] == ORIGINAL)
    out.append({**original, "id": COPY, "title": "French economy sends mixed signals, analysts say",
                "source": "Wire Service", "published_at": (_published(23) + timedelta(days=1)).isoformat()})
    return out


@pytest.fixture(scope="module")
def dated_index(tmp_path_factory, embedder) -> Path:
    folder = tmp_path_factory.mktemp("dated")
    records = folder / "bbc-dated.jsonl"
    records.write_text("\n".join(json.dumps(r) for r in _records()) + "\n", encoding="utf-8")
    service = build_service(Settings(index_dir=folder / "index"), embedder)
    report = service.ingest(read_file(records, max_bytes=50_000_000))
    assert not report.failed and len(report.ingested) == 61
    service.close()
    return folder / "index"


@pytest.fixture
def dated_service(dated_index, tmp_path, embedder):
    folder = tmp_path / "index"
    shutil.copytree(dated_index, folder)
    service = build_service(Settings(index_dir=folder), embedder)
    yield service
    service.close()


def _inside(source: dict | object, filters: Filters) -> bool:
    get = source.get if isinstance(source, dict) else lambda k: getattr(source, k)
    published = get("published_at")
    if isinstance(published, str):
        published = datetime.fromisoformat(published)
    return (published is not None and filters.since <= published.date() <= filters.until
            and get("category") == filters.category)


def _check_numbers(points, timeline, sources) -> None:
    """Citations are the sources' numbers, 1..n, each used; every point is cited."""
    numbers = [s["n"] for s in sources]
    assert numbers == list(range(1, len(numbers) + 1))
    cited = {n for p in points for n in p["citations"]} | {n for e in timeline for n in e["citations"]}
    assert cited == set(numbers)
    for p in points:
        assert p["citations"] and p["text"].endswith("".join(f"[{n}]" for n in p["citations"]))


def test_dated_filtered_briefing_cites_only_inside_the_filters_and_merges_the_copy(dated_service):
    briefing = dated_service.brief("the economy", WINDOW)
    assert 3 <= len(briefing.points) <= 10
    assert briefing.backend == "extractive"
    assert briefing.sources and all(_inside(s, WINDOW) for s in briefing.sources)
    # The syndicated copy (same text, another headline) counts once, and says which it absorbed.
    ids = {s.article_id for s in briefing.sources}
    assert not {ORIGINAL, COPY} <= ids
    assert briefing.duplicates_merged >= 1
    merged = next(s for s in briefing.sources if s.article_id in (ORIGINAL, COPY))
    assert merged.article_id == ORIGINAL and merged.duplicates == (COPY,)  # the earlier one is kept
    assert briefing.articles_read == briefing.articles_matched >= len(briefing.sources)
    # Every point's evidence is the cited article's text, verbatim.
    by_n = {s.n: s for s in briefing.sources}
    for point in briefing.points:
        for e in point.evidence:
            article = dated_service.article(by_n[e.n].article_id)
            assert article.text[e.start : e.end] == e.quote and e.n in point.citations
    # The timeline is dated, in order, inside the window.
    days = [e.date for e in briefing.timeline]
    assert days and days == sorted(days) and all(WINDOW.since <= d <= WINDOW.until for d in days)


def test_without_filters_the_same_topic_reaches_outside_the_window(dated_service):
    briefing = dated_service.brief("the economy")
    assert any(not _inside(s, WINDOW) for s in briefing.sources)  # so the filter above did the work


def test_max_articles_caps_what_is_read(dated_service):
    briefing = dated_service.brief("the economy", Filters(category="business"), max_articles=5)
    assert briefing.articles_read == 5 and briefing.articles_matched > 5
    assert len(briefing.sources) <= 5


def test_a_topic_nothing_is_about_gives_an_empty_briefing(dated_service):
    briefing = dated_service.brief("underwater basket weaving championships", Filters(category="politics"))
    assert briefing.articles_read == 0 and not briefing.points and "nothing to brief" in briefing.overview


def test_briefings_over_http_json_and_markdown(dated_service):
    with live_server(create_app(dated_service.settings, dated_service)) as client:
        body = {"topic": "the economy", "category": "business", "since": "2005-01-05", "until": "2005-02-15"}
        response = client.post("/briefings", json=body)
        assert response.status_code == 200, response.text
        data = response.json()
        assert set(data) >= {"title", "overview", "points", "timeline", "sources", "articles_read",
                             "duplicates_merged"}
        assert 3 <= len(data["points"]) <= 10 and data["duplicates_merged"] >= 1
        assert all(_inside(s, WINDOW) for s in data["sources"])
        _check_numbers(data["points"], data["timeline"], data["sources"])
        for entry in data["timeline"]:
            assert date.fromisoformat(entry["date"])

        md = client.post("/briefings", json={**body, "format": "md"})
        assert md.status_code == 200 and md.headers["content-type"].startswith("text/markdown")
        assert md.text.startswith("# Briefing: the economy") and "## Sources" in md.text
        for source in data["sources"]:
            assert f"[{source['n']}] {source['title']} ({source['article_id']}" in md.text

        bad = client.post("/briefings", json={**body, "since": "2005-03-01"})
        assert bad.status_code == 422 and "after" in bad.text
        assert client.post("/briefings", json={"topic": "  "}).status_code == 422
        assert client.post("/briefings", json={"topic": "x", "max_articles": 0}).status_code == 422
        assert client.post("/briefings", json={"topic": "x", "format": "pdf"}).status_code == 422


def _rag(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([RAG, "--index-dir", str(folder), *args], check=False, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_rag_brief_on_the_command_line(dated_index, tmp_path):
    folder = tmp_path / "index"
    shutil.copytree(dated_index, folder)
    run = _rag(folder, "brief", "the economy", "--category", "business", "--since", "2005-01-05",
               "--until", "2005-02-15", "--format", "json")
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert all(_inside(s, WINDOW) for s in data["sources"]) and data["duplicates_merged"] >= 1
    assert "it/s" not in run.stderr  # progress bars only on a terminal
    md = _rag(folder, "brief", "the economy", "--max-articles", "3")
    assert md.returncode == 0 and md.stdout.startswith("# Briefing: the economy")
    assert "_3 articles read" in md.stdout
    bad = _rag(folder, "brief", "x", "--since", "2005-13-01")
    assert bad.returncode == 2 and "2005-13-01" in bad.stderr


def with_llm(service: Service, llm, **budgets) -> Briefer:
    """The service's briefer writing through `llm`, its points checked as the service checks them."""
    return replace(service.briefer, llm=MapReduce(llm, SupportScorer(service.embedder, Settings().support_threshold),
                                                  **budgets))


def test_llm_map_reduce_keeps_citations_through_the_combine_step(dated_service):
    with openai_peer() as peer:
        # Small budgets, so that the map takes several batches and the notes need combine rounds.
        briefer = with_llm(dated_service, peer_llm(peer), map_batch_chars=3_000, reduce_notes_chars=600)
        briefing = briefer.brief("the economy", WINDOW)
    prompts = [r["messages"][-1]["content"] for r in peer.requests]
    maps = [p for p in prompts if "<article n=" in p]
    assert len(maps) > 1 and any("Merge notes" in p for p in prompts)
    assert "Write the briefing" in prompts[-1]
    # Map read every matching article, not a top-k: each distinct article went to some map prompt.
    shown = {int(n) for p in maps for n in re.findall(r'<article n="(\d+)"', p)}
    assert len(shown) == briefing.articles_read - briefing.duplicates_merged
    assert briefing.backend == "llm:peer-model" and briefing.title == "A test briefing"
    texts = " ".join(p.text for p in briefing.points)
    assert INVENTED not in texts  # cited [99], an article it was never given: dropped
    assert UNSUPPORTED not in texts  # cited an article that does not say it: dropped
    assert 3 <= len(briefing.points) <= 10
    assert all(_inside(s, WINDOW) for s in briefing.sources)
    by_n = {s.n: s for s in briefing.sources}
    for point in briefing.points:
        assert point.citations and all(n in by_n for n in point.citations)
        # The peer's notes are first sentences of articles: the check finds them in the cited one.
        quote = point.evidence[0]
        assert point.text.startswith(quote.quote.strip()[:40])
    assert "[" in to_markdown(briefing)


def test_an_llm_that_fails_falls_back_to_the_offline_points(dated_service):
    from llama_index.llms.openai_like import OpenAILike

    from tests.support.servers import free_port

    dead = OpenAILike(model="gone", api_base=f"http://127.0.0.1:{free_port()}/v1", api_key="x",
                      is_chat_model=True, timeout=5, max_retries=0)
    briefing = with_llm(dated_service, dead).brief("the economy", WINDOW)
    assert briefing.backend == "extractive" and "LLM briefing failed" in briefing.fallback_reason
    assert 3 <= len(briefing.points) <= 10


def test_progress_on_a_terminal(dated_index, tmp_path):
    """On a terminal `rag brief` shows its stages (reading, embedding) as progress bars on stderr."""
    folder = tmp_path / "index"
    shutil.copytree(dated_index, folder)
    code, text = run_on_terminal(["--index-dir", str(folder), "brief", "the economy"])
    assert code == 0
    assert "embedding:" in text and "item/s" in text
    assert "# Briefing: the economy" in text
