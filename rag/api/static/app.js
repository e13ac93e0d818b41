// The staff page: ask (streamed, in threads), read the quoted passage, brief, manage articles.
// Everything goes through the public HTTP API; article text is only ever set as text, never as HTML.

import * as api from "./api.js";
import { answerMarkdown, threadMarkdown } from "./markdown.js";

const $ = (selector, root = document) => root.querySelector(selector);

// Build an element: el("a", {href: "#"}, "text", child, ...). Attributes starting with "on" are listeners.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

const state = {
  scopes: [],
  facets: null,
  modelId: null,
  articles: new Map(), // id → article (with text), fetched once
  articleOffset: 0,
};
const PAGE_SIZE = 50;

const day = (iso) => (iso ? iso.slice(0, 10) : null);
// An article's URL comes from whoever ingested it: only web addresses become links.
const webUrl = (url) => (url && /^https?:\/\//i.test(url) ? url : null);

function showError(error) {
  const box = $("#error");
  if (!error) { box.hidden = true; box.textContent = ""; return; }
  if (error instanceof api.ApiError && error.status === 401) { askForKey("That key is not recognised."); return; }
  box.textContent = error.message || String(error);
  box.hidden = false;
}

// -- keys --------------------------------------------------------------------------------------
async function askForKey(message = "") {
  const dialog = $("#key-dialog");
  $("#key-error").textContent = message;
  if (!dialog.open) dialog.showModal();
  $("#key-input").focus();
}

async function whoAmI() {
  try {
    const me = await api.get("/me");
    state.scopes = me.scopes;
    $("#who").textContent = me.keys_required ? `Key ${me.key}: ${me.scopes.join(", ")}` : "No API keys configured";
    $("#forget-key").hidden = !me.keys_required;
    document.body.classList.toggle("can-ingest", me.scopes.includes("ingest"));
    $("#upload").hidden = !me.scopes.includes("ingest");
    document.body.classList.toggle("can-admin", me.scopes.includes("admin"));
    $("#source-form").hidden = !me.scopes.includes("admin");
    return true;
  } catch (error) {
    if (error.status === 401) {
      const had = api.key.get();
      api.key.clear();
      await askForKey(had ? "That key is not recognised. Check it and try again." : "");
      return false;
    }
    throw error;
  }
}

$("#key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = $("#key-input").value.trim();
  if (!value) return;
  api.key.set(value);
  $("#key-error").textContent = "";
  if (await whoAmI()) {
    $("#key-dialog").close();
    $("#key-input").value = "";
    await start();
  }
});
$("#key-dialog").addEventListener("cancel", (event) => event.preventDefault()); // nothing works without a key
$("#forget-key").addEventListener("click", () => { api.key.clear(); location.reload(); });

// -- filters -----------------------------------------------------------------------------------
function fillFilters() {
  const f = state.facets;
  for (const fieldset of document.querySelectorAll("fieldset[data-filters]")) {
    const p = fieldset.dataset.filters;
    const option = (v) => el("option", { value: v.value }, `${v.value} (${v.articles})`);
    fieldset.replaceChildren(
      el("legend", {}, "Filters"),
      el("p", { class: "filter" }, el("label", { for: `${p}-since` }, "From"),
        el("input", { id: `${p}-since`, type: "date", min: day(f.first_published), max: day(f.last_published) })),
      el("p", { class: "filter" }, el("label", { for: `${p}-until` }, "To"),
        el("input", { id: `${p}-until`, type: "date", min: day(f.first_published), max: day(f.last_published) })),
      el("p", { class: "filter" }, el("label", { for: `${p}-category` }, "Category"),
        el("select", { id: `${p}-category` }, el("option", { value: "" }, "Any"), f.categories.map(option))),
      el("p", { class: "filter" }, el("label", { for: `${p}-source` }, "Source"),
        el("select", { id: `${p}-source` }, el("option", { value: "" }, "Any"), f.sources.map(option))),
      p === "articles" ? null : el("p", { class: "filter" }, el("label", { for: `${p}-as-of` }, "As of"),
        el("input", { id: `${p}-as-of`, type: "date", "aria-describedby": `${p}-as-of-help` }),
        el("span", { id: `${p}-as-of-help`, class: "sr-only" }, "The asking date: time words such as last week are read from it")),
      f.undated ? el("p", { class: "quiet small" },
        `${f.undated} of ${f.articles} articles have no date: a date range leaves them out.`) : null,
    );
  }
}

function filtersOf(prefix) {
  const value = (name) => $(`#${prefix}-${name}`)?.value || null;
  const filters = { since: value("since"), until: value("until"), category: value("category"), source: value("source") };
  return Object.fromEntries(Object.entries(filters).filter(([, v]) => v));
}

// The asking date of the view's "As of" input (the end of that day), or null for now.
const asOfOf = (prefix) => $(`#${prefix}-as-of`)?.value || null;

// -- views -------------------------------------------------------------------------------------
const VIEWS = ["ask", "brief", "articles"];

function showView() {
  const name = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : "ask";
  for (const v of VIEWS) {
    $(`#view-${v}`).hidden = v !== name;
    const link = $(`a[data-view="${v}"]`);
    if (v === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (name === "articles") {
    loadArticles().catch(showError);
    loadSources().catch(showError);
  }
  document.title = `${$(`#view-${name} h1`).textContent} · rag`;
}
window.addEventListener("hashchange", () => { showView(); $("#main").focus(); });

// -- the article panel -------------------------------------------------------------------------
let panelOpener = null;

async function article(id) {
  if (!state.articles.has(id)) state.articles.set(id, await api.get(`/articles/${encodeURIComponent(id)}`));
  return state.articles.get(id);
}

// Open the article beside the answer, the quoted span [start, end) marked and scrolled to. The
// mark is the article's own text at those offsets, so it is the citation's quote verbatim.
async function openArticle(id, span = null, note = null) {
  panelOpener = document.activeElement;
  let a;
  try { a = await article(id); } catch (error) { showError(error); return; }
  const panel = $("#panel");
  $("#panel-title").textContent = a.title;
  const meta = [day(a.published_at) ?? "undated", a.source, a.category].filter(Boolean).join(" · ");
  const url = webUrl(a.url);
  $("#panel-meta").replaceChildren(meta, url ? " · " : "", url ? el("a", { href: url, rel: "noreferrer" }, "original") : "");
  $("#panel-note").hidden = !note;
  $("#panel-note").textContent = note ?? "";
  const body = $("#panel-text");
  if (span && span.start >= 0 && span.end <= a.text.length && span.start < span.end) {
    const mark = el("mark", {}, a.text.slice(span.start, span.end));
    body.replaceChildren(a.text.slice(0, span.start), mark, a.text.slice(span.end));
  } else {
    body.replaceChildren(a.text);
  }
  panel.hidden = false;
  document.body.classList.add("panel-open");
  $("#panel-title").focus();
  const mark = $("mark", body);
  if (mark) mark.scrollIntoView({ block: "center" });
  else body.scrollTop = 0;
}

function closePanel() {
  const panel = $("#panel");
  if (panel.hidden) return;
  panel.hidden = true;
  document.body.classList.remove("panel-open");
  if (panelOpener && document.contains(panelOpener)) panelOpener.focus();
}
$("#panel-close").addEventListener("click", closePanel);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("#key-dialog").open) closePanel();
});

// Dates as the page shows them, the same in every locale: "2 Mar 1987".
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
function humanDay(iso, withYear = true) {
  const [y, m, d] = day(iso).split("-").map(Number);
  return `${d} ${MONTHS[m - 1]}${withYear ? ` ${y}` : ""}`;
}

// A window's days: "2 Mar – 8 Mar 1987" (the year once when both ends share it), or open on one side.
function windowDays(w) {
  if (w.start && w.end) return `${humanDay(w.start, w.start.slice(0, 4) !== w.end.slice(0, 4))} – ${humanDay(w.end)}`;
  return w.start ? `from ${humanDay(w.start)}` : w.end ? `until ${humanDay(w.end)}` : "any date";
}

// The question without the time words that named its window, so that re-asking it names none.
function withoutPhrase(question, phrase) {
  const at = question.toLowerCase().indexOf(phrase.toLowerCase());
  if (at < 0) return question;
  return (question.slice(0, at) + question.slice(at + phrase.length)).replace(/\s+/g, " ").replace(/\s+([?.!,])/g, "$1").trim();
}

// An answer's text: the short answer the service marks as **…** inside its sentence (shown when
// it is not sure of the short answer alone) in <strong>, [n] markers as links.
function answerText(text, hrefOf, open) {
  return text.split(/\*\*(.+?)\*\*/s).flatMap((part, i) =>
    i % 2 ? [el("strong", { class: "short-answer" }, part)] : withCitationLinks(part, hrefOf, open));
}

// How sure the service is of the short answer, in words a reader can act on.
function confidenceNote(extract) {
  const percent = Math.round(extract.confidence * 100);
  const doubt = extract.confidence >= 0.5 ? "" : ": check the sentence";
  return `short answer “${extract.answer}”, ${percent}% likely right${doubt}`;
}

// Text with its [n] markers as links; `open(n)` is called when one is activated.
function withCitationLinks(text, hrefOf, open) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(/\[(\d+)\]/g)) {
    const n = Number(match[1]);
    const href = hrefOf(n);
    if (!href) continue;
    parts.push(text.slice(last, match.index));
    parts.push(el("a", { href, class: "cite", onclick: (e) => { e.preventDefault(); open(n); } }, `[${n}]`));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}

// -- threads (kept in this browser) ------------------------------------------------------------
const THREADS = "rag.threads.v1";
const threads = {
  load() {
    try { return JSON.parse(localStorage.getItem(THREADS)) ?? { list: [], current: null }; }
    catch { return { list: [], current: null }; }
  },
  save(data) { localStorage.setItem(THREADS, JSON.stringify(data)); },
};
let store = threads.load();

function currentThread() {
  let thread = store.list.find((t) => t.id === store.current);
  if (!thread) {
    thread = { id: crypto.randomUUID(), name: "", created: new Date().toISOString(), turns: [] };
    store.list.unshift(thread);
    store.current = thread.id;
  }
  return thread;
}

function renderThreads() {
  const current = currentThread();
  const list = $("#thread-list");
  list.replaceChildren(...store.list.map((t) => {
    const name = t.name || t.turns[0]?.question || "New thread";
    return el("li", { class: t.id === current.id ? "current" : "" },
      el("button", { type: "button", class: "link", "aria-current": t.id === current.id ? "true" : null,
        onclick: () => { store.current = t.id; threads.save(store); renderThreads(); renderTurns(); } }, name),
      el("button", { type: "button", class: "small-button", "aria-label": `Delete thread ${name}`,
        onclick: () => deleteThread(t.id) }, "Delete"));
  }));
  $("#thread-name").value = current.name || "";
  $("#download-thread").disabled = !current.turns.some((t) => t.answer);
  $("#thread-name").placeholder = current.turns[0]?.question ?? "Named after its first question";
}

function deleteThread(id) {
  store.list = store.list.filter((t) => t.id !== id);
  if (store.current === id) store.current = store.list[0]?.id ?? null;
  threads.save(store);
  renderThreads();
  renderTurns();
  $("#new-thread").focus();
}

$("#new-thread").addEventListener("click", () => {
  store.current = null;
  currentThread();
  threads.save(store);
  renderThreads();
  renderTurns();
  $("#question").focus();
});
$("#download-thread").addEventListener("click", async () => {
  const thread = currentThread();
  try {
    const text = await threadMarkdown(thread, article);
    const name = (thread.name || thread.turns[0]?.question || "thread").replace(/[^A-Za-z0-9]+/g, "-").toLowerCase();
    download(text, `${name.replace(/^-|-$/g, "").slice(0, 60) || "thread"}.md`);
  } catch (error) { showError(error); }
});
$("#thread-name").addEventListener("change", (event) => {
  currentThread().name = event.target.value.trim();
  threads.save(store);
  renderThreads();
});

function renderTurns() {
  const thread = currentThread();
  $("#turns").replaceChildren(...thread.turns.map((turn, i) => renderTurn(turn, `${thread.id.slice(0, 8)}-${i}`)));
}

// -- asking ------------------------------------------------------------------------------------
function renderTurn(turn, id) {
  const item = el("li", { class: "turn", id: `turn-${id}` });
  item.append(el("h3", { class: "question" }, el("span", { class: "sr-only" }, "Question: "), turn.question));
  const answerBox = el("div", { class: "answer", "aria-live": "polite" });
  item.append(answerBox);
  if (!turn.answer) {
    answerBox.append(el("p", { class: "quiet" }, turn.partial || "Looking in the articles…"));
    answerBox.setAttribute("aria-busy", "true");
    return item;
  }
  const a = turn.answer;
  const byN = new Map(a.citations.map((c) => [c.n, c]));
  const cite = (c) => openArticle(c.article_id, c, null);
  if (a.abstained) {
    answerBox.append(el("p", { class: "abstained" }, el("strong", {}, "The articles do not answer this.")),
      el("p", { class: "quiet small" }, a.answer));
    if (a.closest) {
      answerBox.append(el("div", { class: "closest" },
        el("p", { class: "small" }, el("strong", {}, "Closest passage found, not an answer: "),
          el("cite", {}, a.closest.title)),
        el("blockquote", {}, a.closest.quote),
        el("button", { type: "button", class: "link", onclick: () => openArticle(a.closest.article_id, a.closest,
          "Closest passage found; it does not answer the question.") }, "Show it in the article")));
    }
  } else {
    answerBox.append(el("p", { class: "answer-text" },
      answerText(a.answer, (n) => (byN.has(n) ? `#cite-${id}-${n}` : null), (n) => cite(byN.get(n)))));
  }
  const quiet = [`Answered by ${a.backend}`];
  if (a.fallback_reason) quiet.push(`fallback: ${a.fallback_reason}`);
  if (a.extract && !a.abstained) quiet.push(confidenceNote(a.extract));
  if (a.standalone && a.standalone !== turn.question) quiet.push(`read as “${a.standalone}”`);
  if (turn.filters && Object.keys(turn.filters).length) {
    quiet.push(`filters: ${Object.entries(turn.filters).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  }
  if (turn.as_of) quiet.push(`as of ${humanDay(turn.as_of)}`);
  if (turn.note) quiet.push(turn.note);
  if (a.time_window) item.insertBefore(windowChip(turn, id), answerBox);
  item.append(el("p", { class: "meta quiet small" }, quiet.join(" · ")));
  if (a.citations.length) {
    item.append(el("ol", { class: "sources", "aria-label": "Sources" }, a.citations.map((c) =>
      el("li", { id: `cite-${id}-${c.n}`, value: c.n },
        el("button", { type: "button", class: "link", onclick: () => cite(c) }, c.title),
        el("span", { class: "cite-date quiet small" }, c.published_at ? humanDay(c.published_at) : "undated",
          c.published_at && c.date_source && c.date_source !== "none" ? ` · ${c.date_source}` : ""),
        el("q", {}, c.quote)))));
  }
  item.append(actions(turn));
  return item;
}

// The window the question's time words named, as a chip: Edit re-asks with the question's
// time words taken out and the edited days as its date filters (a window from the time words
// would still narrow any date filter); Clear re-asks with the time words taken out and no date
// filter at all. Either way a new turn in the thread, asked as a standalone question.
function windowChip(turn, id) {
  const w = turn.answer.time_window;
  const question = withoutPhrase(turn.answer.standalone || turn.question, w.phrase);
  const others = Object.fromEntries(Object.entries(turn.filters || {}).filter(([k]) => k !== "since" && k !== "until"));
  const reask = (filters, note) => ask(question, filters, turn.as_of, { standalone: true, note }).catch(showError);
  const label = `${w.phrase}: ${windowDays(w)}`;
  const since = el("input", { id: `w-${id}-since`, type: "date", value: w.start });
  const until = el("input", { id: `w-${id}-until`, type: "date", value: w.end });
  const editor = el("form", { class: "window-edit", hidden: true, "aria-label": `Edit the window ${label}`,
    onsubmit: (event) => {
      event.preventDefault();
      if (since.value && until.value && since.value > until.value) { since.setCustomValidity("After To"); since.reportValidity(); return; }
      reask({ ...others, ...(since.value ? { since: since.value } : {}), ...(until.value ? { until: until.value } : {}) },
        `window edited from “${w.phrase}”`);
    } },
    el("label", { for: since.id }, "From"), since, el("label", { for: until.id }, "To"), until,
    el("button", { type: "submit", class: "small-button" }, "Re-ask"),
    el("button", { type: "button", class: "small-button", onclick: () => { editor.hidden = true; edit.focus(); } }, "Cancel"));
  since.addEventListener("input", () => since.setCustomValidity(""));
  const edit = el("button", { type: "button", class: "small-button", "aria-expanded": "false",
    "aria-label": `Edit the window ${label}`, onclick: () => {
      editor.hidden = !editor.hidden;
      edit.setAttribute("aria-expanded", String(!editor.hidden));
      if (!editor.hidden) since.focus();
    } }, "Edit");
  const clear = el("button", { type: "button", class: "small-button", "aria-label": `Clear the window ${label}`,
    title: `Re-asks “${question}”: without its time words and with no date filter`,
    onclick: () => reask(others, `without “${w.phrase}”`) }, "Clear");
  return el("div", { class: "window", role: "group", "aria-label": "Time window" },
    el("p", { class: "chip" }, el("span", { class: "sr-only" }, "Time window: "), label, " ", edit, " ", clear),
    editor);
}

function actions(turn) {
  const status = el("span", { class: "quiet small", role: "status" });
  const comment = el("textarea", { rows: 1, maxlength: 5000 });
  const commentId = `c-${crypto.randomUUID().slice(0, 8)}`;
  comment.id = commentId;
  const verdictButton = (verdict, label, glyph) => el("button", {
    type: "button", class: "verdict", "aria-pressed": turn.verdict === verdict ? "true" : "false",
    onclick: async (event) => {
      const pressed = event.currentTarget;
      try {
        const a = turn.answer;
        await api.post("/feedback", { question: turn.question, answer: a.answer, citations: a.citations,
          backend: a.backend, verdict, comment: comment.value.trim() || null });
        turn.verdict = verdict;
        threads.save(store);
        for (const b of pressed.closest(".feedback").querySelectorAll(".verdict")) {
          b.setAttribute("aria-pressed", b === pressed ? "true" : "false");
        }
        status.textContent = "Thank you: feedback stored.";
      } catch (error) { status.textContent = `Feedback not stored: ${error.message}`; }
    },
  }, el("span", { "aria-hidden": "true" }, glyph), " ", label);
  return el("div", { class: "actions" },
    el("button", { type: "button", onclick: async () => {
      try {
        const text = await answerMarkdown(turn, article);
        await navigator.clipboard.writeText(text);
        status.textContent = "Copied the answer with its sources as Markdown.";
      } catch (error) { status.textContent = `Could not copy: ${error.message}`; }
    } }, "Copy with sources"),
    el("div", { class: "feedback", role: "group", "aria-label": "Feedback on this answer" },
      verdictButton("up", "Good answer", "✓"), verdictButton("down", "Bad answer", "✗"),
      el("label", { for: commentId, class: "small" }, "Comment (optional)"), comment),
    status);
}

async function modelId() {
  if (!state.modelId) state.modelId = (await api.get("/v1/models")).data[0].id;
  return state.modelId;
}

// The first question of a thread streams from /ask; a follow-up goes to /v1/chat/completions with
// the thread so far, which rewrites it into a standalone question.
async function ask(question, filters, asOf = null, { standalone = false, note = null } = {}) {
  const thread = currentThread();
  const turn = { question, filters, as_of: asOf, note, answer: null, asked: new Date().toISOString() };
  const previous = standalone ? [] : thread.turns.filter((t) => t.answer);
  const when = asOf ? { as_of: asOf } : {};
  thread.turns.push(turn);
  const id = `${thread.id.slice(0, 8)}-${thread.turns.length - 1}`;
  const node = renderTurn(turn, id);
  $("#turns").append(node);
  const started = performance.now();
  let firstEvent = null;
  const live = $(".answer", node);
  const seen = () => {
    if (firstEvent === null) {
      firstEvent = performance.now() - started;
      node.dataset.firstEventMs = firstEvent.toFixed(0);
    }
  };
  try {
    if (!previous.length) {
      await api.stream("/ask", { question, stream: true, filters, ...when }, (name, data) => {
        seen();
        if (name === "token") {
          node.dataset.tokenEvents = Number(node.dataset.tokenEvents || 0) + 1;
          turn.partial = (turn.partial || "") + data.text;
          live.replaceChildren(el("p", { class: "answer-text" }, turn.partial));
        } else if (name === "answer") {
          turn.answer = data;
        }
      });
    } else {
      const messages = previous.flatMap((t) => [{ role: "user", content: t.question },
        { role: "assistant", content: t.answer.answer }]);
      messages.push({ role: "user", content: question });
      let content = "";
      let final = null;
      await api.stream("/v1/chat/completions", { model: await modelId(), messages, stream: true, filters, ...when },
        (name, chunk) => {
          seen();
          const delta = chunk.choices?.[0]?.delta ?? {};
          if (delta.content) {
            content += delta.content;
            live.replaceChildren(el("p", { class: "answer-text" }, content.split(/\n+Sources:\n/)[0]));
          }
          if (chunk.rag) final = chunk;
        });
      // The content ends with a "Sources:" list; the structured citations replace it here.
      turn.answer = { answer: content.split(/\n+Sources:\n/)[0], abstained: final.rag.abstained,
        backend: final.rag.backend, citations: final.citations, standalone: final.rag.standalone_question,
        fallback_reason: null, closest: null, as_of: final.rag.as_of ?? null, time_window: final.rag.time_window ?? null };
    }
    if (!turn.answer) throw new Error("the answer did not arrive");
    delete turn.partial;
  } catch (error) {
    thread.turns.pop();
    node.remove();
    throw error;
  }
  threads.save(store);
  const done = renderTurn(turn, id);
  Object.assign(done.dataset, node.dataset); // how the answer arrived, for whoever measures it
  node.replaceWith(done);
  renderThreads();
  return done;
}

$("#ask-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("#question").value.trim();
  if (!question) return;
  const button = $("#ask-button");
  button.disabled = true;
  showError(null);
  try {
    await ask(question, filtersOf("ask"), asOfOf("ask"));
    $("#question").value = "";
  } catch (error) { showError(error); } finally {
    button.disabled = false;
    $("#question").focus();
  }
});
$("#question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("#ask-form").requestSubmit();
  }
});

// -- briefings ---------------------------------------------------------------------------------
let lastBriefRequest = null;

function briefRequest() {
  const max = $("#max-articles").value;
  const asOf = asOfOf("brief");
  return { topic: $("#topic").value.trim(), ...filtersOf("brief"), ...(max ? { max_articles: Number(max) } : {}),
    ...(asOf ? { as_of: asOf } : {}) };
}

$("#brief-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = briefRequest();
  if (!body.topic) return;
  showError(null);
  $("#brief-status").textContent = "Reading the articles…";
  try {
    const briefing = await api.post("/briefings", body);
    lastBriefRequest = body;
    renderBriefing(briefing);
    $("#brief-status").textContent = `Briefing written from ${briefing.articles_read} articles.`;
  } catch (error) {
    $("#brief-status").textContent = "";
    showError(error);
  }
});

function renderBriefing(b) {
  const box = $("#briefing");
  const sources = new Map(b.sources.map((s) => [s.n, s]));
  const openPoint = (point) => (n) => {
    const evidence = point.evidence.find((e) => e.n === n);
    if (evidence) openArticle(evidence.article_id, evidence);
    else if (sources.has(n)) openArticle(sources.get(n).article_id);
  };
  const openDated = (entry) => async (n) => {
    const source = sources.get(n);
    if (!source) return;
    const text = (await article(source.article_id)).text;
    const at = text.indexOf(entry.text.replace(/\s*\[\d+\]/g, ""));
    openArticle(source.article_id, at >= 0 ? { start: at, end: at + entry.text.replace(/\s*\[\d+\]/g, "").length } : null);
  };
  const href = (n) => (sources.has(n) ? `#source-${n}` : null);
  box.replaceChildren(
    el("header", {},
      el("h2", {}, b.title),
      el("p", { class: "quiet small" },
        `${b.articles_matched} articles matched, ${b.articles_read} read, ${b.duplicates_merged} near-duplicates merged`
        + ` · written by ${b.backend}${b.fallback_reason ? ` (fallback: ${b.fallback_reason})` : ""}`),
      el("p", { class: "buttons no-print" },
        el("button", { type: "button", onclick: downloadBriefing }, "Download Markdown"),
        el("button", { type: "button", onclick: () => window.print() }, "Print"))),
    el("h3", {}, "Overview"), el("p", {}, b.overview),
    b.points.length ? el("h3", {}, "Points") : null,
    b.points.length ? el("ol", { class: "points" }, b.points.map((p) =>
      el("li", {}, withCitationLinks(p.text, href, openPoint(p))))) : null,
    b.timeline.length ? el("h3", {}, "Timeline") : null,
    b.timeline.length ? el("ol", { class: "timeline" }, b.timeline.map((t) =>
      el("li", {}, el("time", { datetime: t.date }, t.date), " ", withCitationLinks(t.text, href, openDated(t))))) : null,
    el("h3", {}, "Sources"),
    el("ol", { class: "brief-sources" }, b.sources.map((s) =>
      el("li", { id: `source-${s.n}`, value: s.n },
        el("button", { type: "button", class: "link", onclick: () => openArticle(s.article_id) }, s.title),
        el("span", { class: "quiet small" }, ` ${[day(s.published_at) ?? "undated", s.source, s.category]
          .filter(Boolean).join(" · ")}`),
        s.url ? el("span", { class: "small" }, " · ", webUrl(s.url) ? el("a", { href: s.url, rel: "noreferrer" }, s.url) : s.url) : null,
        s.duplicates.length ? el("span", { class: "quiet small" }, ` · ${s.duplicates.length} near-duplicate`
          + `${s.duplicates.length > 1 ? "s" : ""} merged`) : null))),
  );
  box.hidden = false;
}

async function downloadBriefing() {
  try {
    const text = await api.post("/briefings", { ...lastBriefRequest, format: "md" }, { as: "text" });
    download(text, `briefing-${lastBriefRequest.topic.replace(/[^A-Za-z0-9]+/g, "-").toLowerCase().slice(0, 60)}.md`);
  } catch (error) { showError(error); }
}

// Save `text` as a Markdown file the browser downloads.
function download(text, name) {
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/markdown" })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// -- articles ----------------------------------------------------------------------------------
async function loadArticles() {
  const params = new URLSearchParams({ limit: PAGE_SIZE, offset: state.articleOffset, ...filtersOf("articles") });
  const q = $("#articles-q").value.trim();
  if (q) params.set("q", q);
  const page = await api.get(`/articles?${params}`);
  const canIngest = state.scopes.includes("ingest");
  $("#articles-table tbody").replaceChildren(...page.articles.map((a) => el("tr", {},
    el("th", { scope: "row" }, el("button", { type: "button", class: "link", onclick: () => openArticle(a.id) }, a.title)),
    el("td", {}, day(a.published_at) ?? el("span", { class: "quiet" }, "undated")),
    el("td", {}, a.source ?? ""),
    el("td", {}, a.category ?? ""),
    el("td", { class: "ingest-only" }, canIngest ? el("button", { type: "button", class: "small-button danger",
      "aria-label": `Delete ${a.title}`, onclick: () => deleteArticle(a) }, "Delete") : ""))));
  const last = Math.min(page.offset + page.articles.length, page.total);
  $("#articles-count").textContent = page.total
    ? `${page.offset + 1}–${last} of ${page.total} articles` : "No article matches.";
  $("#prev-page").disabled = page.offset === 0;
  $("#next-page").disabled = last >= page.total;
}

async function deleteArticle(a) {
  if (!window.confirm(`Delete “${a.title}” from the index?`)) return;
  try {
    await api.del(`/articles/${encodeURIComponent(a.id)}`);
    state.articles.delete(a.id);
    $("#articles-count").textContent = `Deleted “${a.title}”.`;
    await loadArticles();
    await refreshFacets();
  } catch (error) { showError(error); }
}

$("#articles-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.articleOffset = 0;
  loadArticles().catch(showError);
});
$("#prev-page").addEventListener("click", () => {
  state.articleOffset = Math.max(0, state.articleOffset - PAGE_SIZE);
  loadArticles().catch(showError);
});
$("#next-page").addEventListener("click", () => {
  state.articleOffset += PAGE_SIZE;
  loadArticles().catch(showError);
});

$("#upload-button").addEventListener("click", async () => {
  const files = [...$("#upload-files").files];
  if (!files.length) { $("#upload-files").focus(); return; }
  const list = $("#upload-list");
  const rows = files.map((file) => {
    const progress = el("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
    const status = el("span", { class: "small", role: "status" }, "waiting");
    list.append(el("li", {}, el("span", { class: "file-name" }, file.name), progress, status));
    return { file, progress, status };
  });
  for (const { file, progress, status } of rows) { // one at a time: the index has one writer
    status.textContent = "sending";
    try {
      const report = await api.upload(file, (share) => { progress.value = share; });
      progress.value = 1;
      const parts = [];
      if (report.ingested.length) parts.push(`${report.ingested.length} stored`);
      if (report.unchanged.length) parts.push(`${report.unchanged.length} unchanged`);
      if (report.failed.length) parts.push(`${report.failed.length} failed: ${report.failed.map((f) => `${f.origin}: ${f.reason}`).join("; ")}`);
      status.textContent = parts.join(", ");
      status.className = report.failed.length ? "small error" : "small ok";
    } catch (error) {
      status.textContent = `failed: ${error.message}`;
      status.className = "small error";
    }
  }
  $("#upload-files").value = "";
  await loadArticles().catch(showError);
  await refreshFacets();
});

// -- sources (polled feeds, sitemaps and pages) -------------------------------------------------
// 5400 → "1h30m": the way the interval is typed in.
function every(seconds) {
  const units = [["d", 86_400], ["h", 3_600], ["m", 60], ["s", 1]];
  let left = seconds;
  const parts = [];
  for (const [unit, size] of units) {
    if (left >= size) { parts.push(`${Math.floor(left / size)}${unit}`); left %= size; }
  }
  return parts.join("") || "0s";
}

const when = (iso) => (iso ? el("time", { datetime: iso }, iso.slice(0, 16).replace("T", " ")) : el("span", { class: "quiet" }, "never"));

async function loadSources() {
  const { sources } = await api.get("/sources");
  const canAdmin = state.scopes.includes("admin");
  $("#sources-table tbody").replaceChildren(...sources.map((s) => el("tr", {},
    el("th", { scope: "row", class: "source-url" }, webUrl(s.url) ? el("a", { href: s.url, rel: "noreferrer" }, s.url) : s.url),
    el("td", {}, el("span", { class: `status status-${s.status}` }, s.status),
      s.failures ? el("span", { class: "quiet small" }, ` (${s.failures} in a row)`) : null),
    el("td", {}, every(s.every_s)),
    el("td", {}, s.category ?? ""),
    el("td", {}, when(s.last_fetched_at)),
    el("td", {}, when(s.last_new_article_at)),
    el("td", { class: s.last_error ? "error small" : "" }, s.last_error ?? ""),
    el("td", { class: "admin-only" }, canAdmin ? el("button", { type: "button", class: "small-button danger",
      "aria-label": `Remove ${s.url}`, onclick: () => removeSource(s) }, "Remove") : ""))));
  $("#sources-table").hidden = !sources.length;
  $("#sources-count").textContent = sources.length
    ? `${sources.length} source${sources.length > 1 ? "s" : ""} polled.` : "No sources are polled.";
}

async function removeSource(s) {
  if (!window.confirm(`Stop polling ${s.url}? The articles it brought stay.`)) return;
  try {
    await api.del(`/sources/${encodeURIComponent(s.id)}`);
    await loadSources();
    $("#sources-count").textContent = `Removed ${s.url}. ${$("#sources-count").textContent}`;
    $("#source-url").focus();
  } catch (error) { showError(error); }
}

$("#source-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.currentTarget;
  const category = $("#source-category").value.trim();
  const body = { url: $("#source-url").value.trim(), every: $("#source-every").value.trim() || "15m",
    ...(category ? { category } : {}) };
  $("#source-error").textContent = "";
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const added = await api.post("/sources", body);
    $("#source-url").value = "";
    $("#source-category").value = "";
    await loadSources();
    $("#sources-count").textContent = `Added ${added.url}. ${$("#sources-count").textContent}`;
  } catch (error) {
    if (error.status === 401) showError(error);
    else $("#source-error").textContent = `Not added: ${error.message}`;
  } finally {
    button.disabled = false;
    $("#source-url").focus();
  }
});

// -- start -------------------------------------------------------------------------------------
async function refreshFacets() {
  state.facets = await api.get("/facets");
  const kept = [...document.querySelectorAll("fieldset[data-filters] :is(input, select)")].map((c) => [c.id, c.value]);
  fillFilters();
  for (const [id, value] of kept) { const c = document.getElementById(id); if (c) c.value = value; }
}

async function start() {
  try {
    await refreshFacets();
    renderThreads();
    renderTurns();
    showView();
    document.body.dataset.ready = "true";
  } catch (error) { showError(error); }
}

if (await whoAmI().catch((error) => { showError(error); return false; })) await start();
