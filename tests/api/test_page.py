"""The staff page in a real browser: Debian's Chromium driven by Playwright, against real uvicorn
servers on loopback over the seed articles (real model, FAISS, SQLite). Screenshots of each view
go to tests/artifacts/ (ignored by git) for a reviewer to look at; axe-core (from npm, installed
by `make install`) is injected into each view."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from rag.api.app import create_app
from rag.config import Settings
from rag.service import Service, build_service
from tests.conftest import ingest_paths
from tests.support.llm_peers import ERROR_500, chat_peer
from tests.support.paths import RAG, ROOT, SEEDS
from tests.support.servers import live_server

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(sys.prefix) / "axe" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = ROOT / "tests" / "artifacts"
# Headless Chromium as a test runner wants it: no sandbox (root in a container), no GPU, and
# nothing that reaches out to the internet on its own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

READER = "reader-key-0123456789abcdef"
EDITOR = "editor-key-0123456789abcdef"
ADMIN = "admin-key-0123456789abcdef0"
KEYS = {READER: ["read"], EDITOR: ["read", "ingest"], ADMIN: ["admin"]}

VETO = "Which countries vetoed the UN cease-fire resolution?"
PSP = "When does the Sony PSP go on sale in the US?"
PSP_FOLLOW_UP = "How much will it cost?"
UNANSWERABLE = "Who won the 2010 World Cup final in Madrid?"

missing = [str(p) for p in (CHROMIUM, AXE) if not p.exists()]
if missing:  # `make install` puts both there; say so rather than skip silently
    pytest.skip(f"not installed: {', '.join(missing)} (run `make install`)", allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright


@pytest.fixture(scope="session")
def seeds_service(tmp_path_factory, embedder) -> Iterator[Service]:
    """The seed articles, as `make run` indexes them."""
    from rag.ingest import find_files

    settings = Settings(index_dir=tmp_path_factory.mktemp("page") / "index")
    service = build_service(settings, embedder)
    files, failures = find_files([SEEDS])
    assert not failures
    ingest_paths(service, files)
    yield service
    service.close()


@pytest.fixture(scope="session")
def open_server(seeds_service) -> Iterator[httpx.Client]:
    """No keys configured, as `make run` serves."""
    with live_server(create_app(seeds_service.settings, seeds_service)) as http:
        yield http


@pytest.fixture(scope="session")
def keyed_server(seeds_service) -> Iterator[httpx.Client]:
    settings = seeds_service.settings.model_copy(update={"api_keys": json.dumps(KEYS)})
    with live_server(create_app(settings, seeds_service)) as http:
        yield http


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def open_page(browser: Browser, server: httpx.Client, width: int = 1280, height: int = 900) -> Page:
    context = browser.new_context(base_url=str(server.base_url), viewport={"width": width, "height": height},
                                  accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=str(server.base_url))
    page = context.new_page()
    page.requests = []  # every URL the page asked for, to prove nothing leaves our origin
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto("/")
    return page


@pytest.fixture
def page(browser, open_server) -> Iterator[Page]:
    page = open_page(browser, open_server)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    yield page
    page.context.close()


def ask(page: Page, question: str, *, with_enter: bool = True):
    box = page.get_by_role("textbox", name="Question")
    box.fill(question)
    count = page.locator("#turns > li").count()
    if with_enter:
        box.press("Enter")
    else:
        page.get_by_role("button", name="Ask", exact=True).click()
    turn = page.locator("#turns > li").nth(count)
    expect(turn.locator(".meta")).to_be_visible(timeout=30_000)  # the answer has arrived
    FIRST_EVENT_MS.append(int(turn.get_attribute("data-first-event-ms")))
    return turn


FIRST_EVENT_MS: list[int] = []  # from pressing Ask to the first server-sent event, in the page
LLM_FIRST_EVENT_MS: list[int] = []  # the same with the LLM peer (a freshly built service)


def axe(page: Page, name: str) -> list[dict]:
    """axe-core's serious and critical violations (WCAG 2.1 A and AA rules and best practice)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text())  # evaluated over CDP: the page's CSP stays on
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag',
            values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}));
    }""")
    AXE_RESULTS[name] = result
    return [v for v in result if v["impact"] in ("serious", "critical")]


AXE_RESULTS: dict[str, list[dict]] = {}


# -- ask --------------------------------------------------------------------------------------
def test_ask_streams_an_answer_whose_citation_opens_the_quoted_passage(page, open_server, artifacts):
    expected = open_server.post("/ask", json={"question": VETO}).json()
    turn = ask(page, VETO)
    expect(turn.locator(".answer-text")).to_contain_text("Russia and China")
    link = turn.get_by_role("link", name="[1]", exact=True)
    expect(link).to_have_count(1)
    citation = expected["citations"][0]
    link.click()
    panel = page.get_by_role("region", name=citation["title"])
    expect(panel).to_be_visible()
    mark = panel.locator("mark")
    expect(mark).to_have_count(1)
    assert mark.text_content() == citation["quote"]
    # The text before the mark is the article's up to the quote's start: the mark is at its offsets.
    before = panel.locator("#panel-text").evaluate("el => el.firstChild.textContent")
    assert len(before) == citation["start"]
    # Scrolled to the quote: the mark lies inside the panel's visible part.
    assert mark.evaluate("""m => { const r = m.getBoundingClientRect(), p = m.closest('section').getBoundingClientRect();
                                   return r.top >= p.top && r.bottom <= p.bottom; }""")
    expect(turn.locator(".meta")).to_contain_text("Answered by extractive")
    page.screenshot(path=artifacts / "ask-answer-with-panel.png")  # the panel scrolled to the mark
    assert not axe(page, "ask, answer and article panel")
    # Escape closes the panel and gives the focus back to the citation.
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(link).to_be_focused()
    assert all(url.startswith(str(open_server.base_url)) for url in page.requests), page.requests



def test_an_answer_shows_its_sentence_with_the_short_answer_marked_and_how_likely_it_is_right(page, open_server,
                                                                                             artifacts):
    expected = open_server.post("/ask", json={"question": VETO}).json()
    extract = expected["extract"]
    sentence, short = extract["sentence"], extract["answer"]
    assert sentence[extract["start"]:extract["end"]] == short and expected["citations"][0]["quote"] == sentence
    turn = ask(page, VETO)
    text = turn.locator(".answer-text")
    percent = int(extract["confidence"] * 100 + 0.5)  # as Math.round rounds halves
    expect(turn.locator(".meta")).to_contain_text(f"short answer “{short}”, {percent}% likely right")
    if extract["confidence"] < 0.5:  # not sure of the fragment: the whole sentence, the fragment in it
        # (a dated answer says first when its evidence was true: "As of 12 March 2024: …")
        expect(text).to_have_text(re.compile(rf"^(As of [^:]+: )?“{re.escape(sentence)}” \[1\]$"))
        expect(text.locator("strong.short-answer")).to_have_text(short)
        expect(turn.locator(".meta")).to_contain_text("check the sentence")
    else:
        expect(text).to_have_text(re.compile(rf"^(As of [^:]+: )?{re.escape(short)} \[1\]$"))
        expect(text.locator("strong")).to_have_count(0)
    page.screenshot(path=artifacts / "ask-marked-sentence.png")
    assert not axe(page, "answer with its sentence marked")


def test_copy_with_sources_puts_markdown_with_title_date_url_and_quote_on_the_clipboard(page, open_server):
    turn = ask(page, PSP, with_enter=False)
    turn.get_by_role("button", name="Copy with sources").click()
    expect(turn.get_by_role("status")).to_contain_text("Copied")
    text = page.evaluate("navigator.clipboard.readText()")
    answer = open_server.post("/ask", json={"question": PSP}).json()
    citation = answer["citations"][0]
    article = open_server.get(f"/articles/{citation['article_id']}").json()
    assert text.startswith(f"**{PSP}**\n\n{answer['answer']}\n")
    assert f"[1] {article['title']}, {article['source']}, {article['published_at'][:10]}, {article['url']}" in text
    assert f"> {citation['quote']}" in text


def test_an_abstention_says_so_and_labels_the_closest_passage(page, open_server):
    expected = open_server.post("/ask", json={"question": UNANSWERABLE}).json()
    assert expected["abstained"] and expected["closest"]
    turn = ask(page, UNANSWERABLE)
    expect(turn.locator(".abstained")).to_contain_text("The articles do not answer this.")
    expect(turn.get_by_role("link", name=re.compile(r"^\[\d+\]$"))).to_have_count(0)
    closest = turn.locator(".closest")
    expect(closest).to_contain_text("Closest passage found, not an answer")
    expect(closest.locator("blockquote")).to_have_text(expected["closest"]["quote"])
    closest.get_by_role("button", name="Show it in the article").click()
    panel = page.get_by_role("region", name=expected["closest"]["title"])
    expect(panel.locator("mark")).to_have_text(expected["closest"]["quote"])
    expect(panel).to_contain_text("it does not answer the question")


def test_a_filter_changes_the_answer(page):
    unfiltered = ask(page, VETO)
    expect(unfiltered.locator(".answer-text")).to_contain_text("Russia and China")
    page.get_by_role("combobox", name="Source").select_option("BBC News")
    filtered = ask(page, VETO)
    expect(filtered.locator(".abstained")).to_be_visible()  # the seed article has no source
    expect(filtered.locator(".meta")).to_contain_text("filters: source BBC News")
    expect(filtered).not_to_contain_text("Russia and China")


def test_a_follow_up_is_answered_in_the_context_of_the_thread_which_survives_a_reload(page, artifacts):
    first = ask(page, PSP)
    expect(first.locator(".answer-text")).to_contain_text("24 March")
    follow_up = ask(page, PSP_FOLLOW_UP)
    # Alone, "How much will it cost?" is not answered from the seeds; in the thread it is the PSP's price.
    expect(follow_up.locator(".answer-text")).to_contain_text("$250")
    expect(follow_up.locator(".meta")).to_contain_text("read as")
    follow_up.get_by_role("link", name="[1]", exact=True).click()
    expect(page.get_by_role("region", name="Sony PSP console hits US in March").locator("mark")).to_contain_text("$250")
    page.keyboard.press("Escape")
    page.get_by_label("Thread name").fill("PSP launch")
    page.get_by_label("Thread name").press("Tab")
    page.screenshot(path=artifacts / "ask-thread.png", full_page=True)
    with page.expect_download() as download:  # the conversation, to file or share
        page.get_by_role("button", name="Download thread").click()
    assert download.value.suggested_filename == "psp-launch.md"
    markdown = Path(download.value.path()).read_text()
    assert markdown.startswith("# PSP launch\n") and markdown.index(PSP) < markdown.index(PSP_FOLLOW_UP)
    assert "$250" in markdown and "> The handheld console will go on sale for $250" in markdown
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#turns > li")).to_have_count(2)
    threads = page.get_by_role("region", name="Threads")
    expect(threads.get_by_role("button", name="PSP launch", exact=True)).to_be_visible()
    threads.get_by_role("button", name="New thread").click()
    expect(page.locator("#turns > li")).to_have_count(0)
    threads.get_by_role("button", name="Delete thread PSP launch").click()
    expect(threads.get_by_role("button", name="PSP launch", exact=True)).to_have_count(0)


def test_keyboard_alone_asks_and_reads_the_source(page):
    page.keyboard.press("Tab")  # the skip link first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_role("textbox", name="Question").focus()
    page.keyboard.type(VETO)
    page.keyboard.press("Enter")
    link = page.locator("#turns > li").last.get_by_role("link", name="[1]", exact=True)
    expect(link).to_be_visible(timeout=30_000)
    link.focus()
    outline = link.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"  # the focus is visible
    page.keyboard.press("Enter")
    expect(page.locator("#panel-title")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.locator("#panel")).to_be_hidden()
    expect(link).to_be_focused()


def test_an_llm_answer_streams_in_and_a_fallback_says_why_quietly(browser, seeds_service, embedder, tmp_path,
                                                                  artifacts):
    """With an LLM backend (a real OpenAI-compatible peer on loopback) the answer arrives as
    `token` events; when the LLM fails, the extractive answer comes back with its reason, in small print."""
    folder = tmp_path / "index"
    shutil.copytree(seeds_service.settings.index_dir, folder)

    def cite_the_veto(body: dict) -> str:
        prompt = body["messages"][-1]["content"]
        n = next(n for n, text in re.findall(r'<passage n="(\d+)"[^>]*>\n(.*?)\n</passage>', prompt, re.DOTALL)
                 if "vetoed" in text)
        return f"Russia and China vetoed the UN cease-fire resolution [{n}]."

    with chat_peer() as peer:
        peer.say(cite_the_veto)
        service = build_service(Settings(index_dir=folder, llm_backend="openai", llm_base_url=peer.base_url,
                                         llm_model="scripted", llm_timeout_s=10), embedder)
        try:
            with live_server(create_app(service.settings, service)) as http:
                page = open_page(browser, http)
                expect(page.locator("body")).to_have_attribute("data-ready", "true")
                turn = ask(page, VETO)
                LLM_FIRST_EVENT_MS.append(FIRST_EVENT_MS.pop())
                assert int(turn.get_attribute("data-token-events")) > 1  # it streamed in
                expect(turn.locator(".answer-text")).to_contain_text("Russia and China vetoed the UN cease-fire")
                expect(turn.locator(".meta")).to_have_text(re.compile(r"^Answered by openai"))
                link = turn.locator("a.cite")
                expect(link).to_have_count(1)
                link.click()
                quote = page.locator("#panel mark").text_content()
                assert "vetoed" in quote and quote == turn.locator(".sources q").text_content()
                page.keyboard.press("Escape")

                peer.say(ERROR_500)
                page.get_by_role("button", name="New thread").click()
                turn = ask(page, VETO)
                LLM_FIRST_EVENT_MS.append(FIRST_EVENT_MS.pop())
                expect(turn.locator(".answer-text")).to_contain_text("Russia and China")
                meta = turn.locator(".meta")
                expect(meta).to_contain_text("Answered by extractive · fallback:")
                assert meta.evaluate("m => parseFloat(getComputedStyle(m).fontSize)") < \
                    turn.locator(".answer-text").evaluate("a => parseFloat(getComputedStyle(a).fontSize)")
                page.screenshot(path=artifacts / "ask-llm-fallback.png", full_page=True)
                page.context.close()
        finally:
            service.close()


# -- briefings --------------------------------------------------------------------------------
def test_a_briefing_is_rendered_cited_downloaded_and_printable(page, open_server, artifacts, tmp_path):
    page.get_by_role("link", name="Briefing").click()
    page.get_by_role("textbox", name="Topic").fill("profits")
    page.get_by_role("spinbutton", name="Max articles").fill("20")
    page.get_by_role("button", name="Write briefing").click()
    briefing = page.locator("#briefing")
    expect(briefing.get_by_role("heading", name="Overview")).to_be_visible(timeout=60_000)
    expected = open_server.post("/briefings", json={"topic": "profits", "max_articles": 20}).json()
    expect(briefing.get_by_role("heading", level=2)).to_have_text(expected["title"])
    expect(briefing.locator(".points > li")).to_have_count(len(expected["points"]))
    expect(briefing.locator(".brief-sources > li")).to_have_count(len(expected["sources"]))
    point = expected["points"][0]
    briefing.locator(".points > li").first.get_by_role("link", name=f"[{point['citations'][0]}]").click()
    evidence = next(e for e in point["evidence"] if e["n"] == point["citations"][0])
    source = next(s for s in expected["sources"] if s["n"] == evidence["n"])
    expect(page.get_by_role("region", name=source["title"]).locator("mark")).to_have_text(evidence["quote"])
    page.keyboard.press("Escape")
    page.screenshot(path=artifacts / "briefing.png", full_page=True)
    assert not axe(page, "briefing")

    with page.expect_download() as download:
        briefing.get_by_role("button", name="Download Markdown").click()
    saved = tmp_path / "briefing.md"
    download.value.save_as(saved)
    markdown = open_server.post("/briefings", json={"topic": "profits", "max_articles": 20, "format": "md"}).text
    assert saved.read_text() == markdown and markdown.startswith("# ")

    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", name="Views")).to_be_hidden()
    expect(page.locator("#brief-form")).to_be_hidden()
    expect(briefing).to_be_visible()
    page.screenshot(path=artifacts / "briefing-print.png", full_page=True)
    page.pdf(path=artifacts / "briefing-print.pdf")  # what printing gives


# -- articles, keys and scopes ----------------------------------------------------------------
def sign_in(browser, server, key: str) -> Page:
    page = open_page(browser, server)
    dialog = page.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()
    dialog.get_by_label("API key").fill(key)
    dialog.get_by_role("button", name="Use this key").click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


def test_a_wrong_key_is_told_so_and_a_read_key_sees_no_upload(browser, keyed_server, artifacts):
    page = open_page(browser, keyed_server)
    dialog = page.get_by_role("dialog", name="API key")
    expect(dialog).to_be_visible()
    assert not axe(page, "key dialog")
    page.screenshot(path=artifacts / "key-dialog.png")
    dialog.get_by_label("API key").fill("not-a-key-of-ours-at-all")
    dialog.get_by_role("button", name="Use this key").click()
    expect(dialog.get_by_role("alert")).to_contain_text("not recognised")
    dialog.get_by_label("API key").fill(READER)
    dialog.get_by_role("button", name="Use this key").click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#who")).to_contain_text("read")
    page.get_by_role("link", name="Articles").click()
    expect(page.locator("#articles-table tbody tr").first).to_be_visible()
    expect(page.get_by_role("region", name="Upload articles")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Delete "))).to_have_count(0)
    # The server enforces the scope whatever the page shows.
    refused = keyed_server.post("/articles/files", params={"name": "a.txt"}, content=b"Title\n\nBody text.",
                                headers={"Authorization": f"Bearer {READER}"})
    assert refused.status_code == 403
    # The key is kept for the session: a reload does not ask again.
    page.reload()
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.get_by_role("dialog", name="API key")).to_be_hidden()
    page.context.close()


def test_upload_several_files_then_delete_with_an_ingest_key(browser, keyed_server, artifacts):
    page = sign_in(browser, keyed_server, EDITOR)
    page.get_by_role("link", name="Articles").click()
    upload = page.get_by_role("region", name="Upload articles")
    expect(upload).to_be_visible()
    good = "Orrin council adopts a flag\n\nThe Orrin council adopted a green and white flag on Monday after " \
           "a debate that lasted nine hours in the old town hall.\n"
    records = "\n".join(json.dumps({"id": f"page-test-{n}", "title": f"Record {n} about the Orrin ferry",
                                    "text": f"The Orrin ferry carried {n}00 passengers on its first day.",
                                    "published_at": f"2005-03-0{n}", "source": "Orrin Gazette", "url": url})
                        for n, url in ((1, "javascript:alert(1)"), (2, "https://example.org/orrin/ferry")))
    upload.get_by_label("Files").set_input_files([
        {"name": "orrin-flag.txt", "mimeType": "text/plain", "buffer": good.encode()},
        {"name": "ferry.jsonl", "mimeType": "application/jsonl", "buffer": records.encode()},
        {"name": "broken.json", "mimeType": "application/json", "buffer": b"{not json"},
    ])
    upload.get_by_role("button", name="Upload").click()
    rows = upload.locator("#upload-list > li")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("1 stored")
    expect(rows.nth(1)).to_contain_text("2 stored")
    expect(rows.nth(2)).to_contain_text("failed")
    expect(rows.nth(2)).to_contain_text("invalid JSON")
    for n in range(3):
        assert rows.nth(n).locator("progress").evaluate("p => p.value") == 1
    page.get_by_role("searchbox", name="Search titles").fill("Orrin")
    page.get_by_role("button", name="Search", exact=True).click()
    table = page.locator("#articles-table tbody")
    expect(table.locator("tr")).to_have_count(3)
    expect(table).to_contain_text("Orrin Gazette")
    page.screenshot(path=artifacts / "articles-upload.png", full_page=True)
    assert not axe(page, "articles, with upload")
    table.get_by_role("button", name="Orrin council adopts a flag", exact=True).click()
    expect(page.get_by_role("region", name="Orrin council adopts a flag")).to_contain_text("nine hours")
    page.keyboard.press("Escape")
    for n, linked in ((1, 0), (2, 1)):  # an ingested URL becomes a link only if it is a web address
        table.get_by_role("button", name=f"Record {n} about the Orrin ferry", exact=True).click()
        expect(page.get_by_role("region", name=f"Record {n} about the Orrin ferry")
               .get_by_role("link", name="original")).to_have_count(linked)
        page.keyboard.press("Escape")

    page.once("dialog", lambda d: d.accept())
    table.get_by_role("button", name="Delete Orrin council adopts a flag").click()
    expect(table.locator("tr")).to_have_count(2)
    for article_id in ("page-test-1", "page-test-2"):
        page.once("dialog", lambda d: d.accept())
        title = keyed_server.get(f"/articles/{article_id}", headers={"Authorization": f"Bearer {EDITOR}"}).json()["title"]
        table.get_by_role("button", name=f"Delete {title}").click()
        expect(table.get_by_role("button", name=title, exact=True)).to_have_count(0)
    expect(page.locator("#articles-count")).to_contain_text("No article matches")
    found = keyed_server.get("/articles", params={"q": "Orrin"}, headers={"Authorization": f"Bearer {EDITOR}"})
    assert found.json()["total"] == 0
    page.context.close()


# -- feedback ---------------------------------------------------------------------------------
def test_feedback_is_stored_with_the_answer_and_exported(page, keyed_server, seeds_service, tmp_path):
    turn = ask(page, VETO)
    turn.get_by_label("Comment (optional)").fill("Right countries, but say which resolution.")
    turn.get_by_role("button", name="Bad answer").click()
    expect(turn.get_by_role("status")).to_contain_text("feedback stored")
    expect(turn.get_by_role("button", name="Bad answer")).to_have_attribute("aria-pressed", "true")
    admin = {"Authorization": f"Bearer {ADMIN}"}
    stored = keyed_server.get("/feedback", headers=admin).json()["feedback"]
    mine = [f for f in stored if f["comment"] == "Right countries, but say which resolution."]
    assert len(mine) == 1
    f = mine[0]
    assert f["question"] == VETO and f["verdict"] == "down" and f["backend"] == "extractive"
    assert "Russia and China" in f["answer"] and f["citations"][0]["quote"].startswith("At the United Nations")
    assert keyed_server.get("/feedback", headers={"Authorization": f"Bearer {READER}"}).status_code == 403

    out = tmp_path / "feedback.jsonl"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([RAG, "--index-dir", str(seeds_service.settings.index_dir), "feedback", "export",
                           "--since", f["created_at"][:10], "--output", str(out)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(line["comment"] == f["comment"] and line["citations"] == f["citations"] for line in lines)
    later = subprocess.run([RAG, "--index-dir", str(seeds_service.settings.index_dir), "feedback", "export",
                            "--since", "2999-01-01"], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert later.returncode == 0 and later.stdout == ""


# -- quality of the page ----------------------------------------------------------------------
def test_views_at_375_px_fit_and_pass_axe(browser, open_server, artifacts):
    page = open_page(browser, open_server, width=375, height=812)
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    fits = "() => document.documentElement.scrollWidth <= window.innerWidth"
    problems = {}
    turn = ask(page, VETO)
    assert page.evaluate(fits)
    page.screenshot(path=artifacts / "narrow-ask.png", full_page=True)
    problems["ask (375 px)"] = axe(page, "ask (375 px)")
    turn.get_by_role("link", name="[1]", exact=True).click()
    expect(page.locator("#panel mark")).to_be_in_viewport()
    page.screenshot(path=artifacts / "narrow-panel.png")
    problems["panel (375 px)"] = axe(page, "panel (375 px)")
    page.keyboard.press("Escape")
    for view in ("Briefing", "Articles"):
        page.get_by_role("link", name=view).click()
        expect(page.get_by_role("heading", level=1, name=view)).to_be_visible()
        if view == "Articles":
            expect(page.locator("#articles-table tbody tr").first).to_be_visible()
        assert page.evaluate(fits), view
        page.screenshot(path=artifacts / f"narrow-{view.lower()}.png", full_page=True)
        problems[f"{view} (375 px)"] = axe(page, f"{view} (375 px)")
    assert not any(problems.values()), problems
    page.context.close()


def test_the_page_loads_only_its_own_small_assets(browser, open_server, artifacts):
    context = browser.new_context(base_url=str(open_server.base_url))
    page = context.new_page()
    sizes: dict[str, int] = {}
    page.on("response", lambda r: sizes.__setitem__(r.url, len(r.body())) if r.request.resource_type in
            ("document", "stylesheet", "script", "image", "font") else None)
    page.goto("/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    assert all(url.startswith(str(open_server.base_url)) for url in sizes), sizes
    assert {u.rsplit("/", 1)[-1] for u in sizes} >= {"", "app.css", "app.js", "api.js", "markdown.js"}
    total = sum(sizes.values())
    assert total < 200_000, sizes
    (artifacts / "page-report.json").write_text(json.dumps(
        {"assets_bytes": sizes, "assets_total_bytes": total, "first_event_ms": sorted(FIRST_EVENT_MS),
         "llm_first_event_ms": LLM_FIRST_EVENT_MS,
         "axe": AXE_RESULTS}, indent=1))
    csp = open_server.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in csp
    context.close()


# -- sources ----------------------------------------------------------------------------------
@pytest.fixture
def sources_server(seeds_service, embedder, tmp_path) -> Iterator[httpx.Client]:
    """Keys on and polling off, on a copy of the seed index (its own docstore of sources): nothing
    is fetched, so a source may name any URL; `localhost` is allowed so that one is accepted
    without a name lookup leaving the machine, and 127.0.0.1 is still refused."""
    folder = tmp_path / "index"
    shutil.copytree(seeds_service.settings.index_dir, folder)
    settings = Settings(index_dir=folder, api_keys=json.dumps(KEYS), poll_sources=False, fetch_allow_hosts="localhost")
    service = build_service(settings, embedder)
    try:
        with live_server(create_app(settings, service)) as http:
            yield http
    finally:
        service.close()


def test_sources_are_listed_to_a_read_key_and_added_and_removed_by_an_admin(browser, sources_server, artifacts):
    admin = {"Authorization": f"Bearer {ADMIN}"}
    listed = sources_server.post("/sources", json={"url": "http://localhost:9/gazette/sitemap.xml", "every": "1d"},
                                 headers=admin)
    assert listed.status_code == 201, listed.text

    page = sign_in(browser, sources_server, ADMIN)
    page.get_by_role("link", name="Articles").click()
    sources = page.get_by_role("region", name="Sources")
    rows = sources.locator("#sources-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("http://localhost:9/gazette/sitemap.xml")
    expect(rows.first).to_contain_text("new")
    expect(rows.first).to_contain_text("1d")
    expect(rows.first).to_contain_text("never")

    # Added from the keyboard alone: type, Tab to the next field, Enter submits.
    sources.get_by_role("textbox", name="URL").fill("http://localhost:9/orrin/feed.xml")
    every = sources.get_by_role("textbox", name="Every")
    every.fill("1h30m")
    every.press("Tab")
    expect(sources.get_by_role("textbox", name="Category")).to_be_focused()
    page.keyboard.type("Politics")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(2)
    added = rows.filter(has_text="http://localhost:9/orrin/feed.xml")
    expect(added).to_contain_text("1h30m")
    expect(added).to_contain_text("politics")
    expect(sources.get_by_role("status")).to_contain_text("Added http://localhost:9/orrin/feed.xml")
    stored = sources_server.get("/sources", headers=admin).json()["sources"]
    assert {(s["url"], s["every_s"], s["category"]) for s in stored} == {
        ("http://localhost:9/gazette/sitemap.xml", 86_400, None), ("http://localhost:9/orrin/feed.xml", 5_400, "politics")}

    # What the server refuses is said plainly, next to the form, and nothing is stored.
    sources.get_by_role("textbox", name="URL").fill("http://127.0.0.1/feed.xml")
    sources.get_by_role("button", name="Add source").click()
    alert = sources.get_by_role("alert")
    expect(alert).to_contain_text("Not added:")
    expect(alert).to_contain_text("refused")
    sources.get_by_role("textbox", name="URL").fill("http://localhost:9/other.xml")
    every.fill("soon")
    sources.get_by_role("button", name="Add source").click()
    expect(alert).to_contain_text("every")
    expect(rows).to_have_count(2)
    assert len(sources_server.get("/sources", headers=admin).json()["sources"]) == 2
    page.screenshot(path=artifacts / "articles-sources-admin.png", full_page=True)
    assert not axe(page, "articles, sources as admin")
    page.set_viewport_size({"width": 375, "height": 812})
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    page.screenshot(path=artifacts / "narrow-sources-admin.png", full_page=True)
    assert not axe(page, "articles, sources as admin (375 px)")

    page.once("dialog", lambda d: d.accept())
    sources.get_by_role("button", name="Remove http://localhost:9/orrin/feed.xml").click()
    expect(rows).to_have_count(1)
    expect(sources.get_by_role("status")).to_contain_text("Removed http://localhost:9/orrin/feed.xml")
    assert [s["url"] for s in sources_server.get("/sources", headers=admin).json()["sources"]] == [
        "http://localhost:9/gazette/sitemap.xml"]
    page.context.close()

    # A read key sees the list, and neither the form nor a Remove button.
    page = sign_in(browser, sources_server, READER)
    page.get_by_role("link", name="Articles").click()
    sources = page.get_by_role("region", name="Sources")
    expect(sources.locator("#sources-table tbody tr")).to_have_count(1)
    expect(sources).to_contain_text("http://localhost:9/gazette/sitemap.xml")
    expect(sources.get_by_role("button", name="Add source")).to_have_count(0)
    expect(sources.get_by_role("textbox", name="URL")).to_have_count(0)
    expect(sources.get_by_role("button", name=re.compile("^Remove "))).to_have_count(0)
    assert not axe(page, "articles, sources as reader")
    page.context.close()


# -- time windows -----------------------------------------------------------------------------
WPP_LAST_WEEK = "What profits did WPP report last week?"


def test_a_time_window_shows_as_a_chip_that_clear_removes_and_citations_show_their_dates(page, open_server, artifacts):
    """The seed WPP record is dated 25 Feb 2005: asked as of 2 Mar 2005, "last week" covers it."""
    expected = open_server.post("/ask", json={"question": WPP_LAST_WEEK, "as_of": "2005-03-02"}).json()
    window = expected["time_window"]
    assert window["phrase"] == "last week" and window["start"] <= "2005-02-25" <= window["end"]
    page.get_by_label("As of").first.fill("2005-03-02")
    turn = ask(page, WPP_LAST_WEEK)
    chip = turn.get_by_role("group", name="Time window")
    start, end = (date.fromisoformat(window[k]) for k in ("start", "end"))
    days = f"{start.day} {start:%b} – {end.day} {end:%b %Y}"
    expect(chip).to_contain_text(f"last week: {days}")
    expect(turn.locator(".meta")).to_contain_text("as of 2 Mar 2005")
    wpp = next(c for c in expected["citations"] if c["article_id"] == "bbc-business-035")
    expect(turn.locator(".sources li").filter(has_text=wpp["title"])).to_contain_text("25 Feb 2005 · record")
    assert not axe(page, "ask, with a time window")
    # Edit opens the window's days in date inputs, from the keyboard; Cancel gives the focus back.
    chip.get_by_role("button", name=re.compile("^Edit the window")).press("Enter")
    expect(chip.get_by_label("From")).to_be_focused()
    expect(chip.get_by_label("From")).to_have_value(window["start"])
    expect(chip.get_by_label("To")).to_have_value(window["end"])
    page.screenshot(path=artifacts / "ask-time-window.png", full_page=True)
    chip.get_by_role("button", name="Cancel").click()

    chip.get_by_role("button", name=re.compile("^Clear the window")).click()
    cleared = page.locator("#turns > li").nth(1)
    expect(cleared.locator(".meta")).to_be_visible(timeout=30_000)
    expect(cleared.locator(".question")).to_contain_text("What profits did WPP report?")
    expect(cleared.get_by_role("group", name="Time window")).to_have_count(0)
    expect(cleared.locator(".meta")).to_contain_text("without “last week”")
    # What the page re-asked names no window on the server either.
    again = open_server.post("/ask", json={"question": "What profits did WPP report?", "as_of": "2005-03-02"}).json()
    assert again["time_window"] is None
    expect(cleared.locator(".sources")).to_contain_text("25 Feb 2005")

    page.set_viewport_size({"width": 375, "height": 812})
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert not axe(page, "ask, with a time window (375 px)")
