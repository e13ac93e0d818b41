"""Briefing notes over every article that matches a topic and the filters, not a top-k
(llama_index#19573: top-k retrieval cannot summarise a topic).

Offline: score every chunk inside the filters against the topic (dense cosine and the topic's
terms), keep the articles that are about it, merge near-duplicate copies (`rag.dedup`), group the
rest into stories, and pick salient, non-redundant sentences verbatim: salience is closeness to
the topic plus centrality (closeness to the centroid of all candidate sentences, as in MEAD:
Radev et al. 2004), and maximal marginal relevance (Carbonell and Goldstein 1998) keeps them from
repeating one another. A point also cites the other articles that say the same thing.

With an LLM: map-reduce over all of those articles, in batches that fit the prompt, keeping the
articles' [n] markers through the combine steps; every point's citations are checked (numbers
that were given, and a sentence of the cited article close to the point), and the offline
points are used when too few survive.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

import numpy as np

from rag.answer.features import stem
from rag.answer.spans import content_terms, words
from rag.dedup import duplicate_groups
from rag.embedding import Embedder
from rag.errors import InvalidInput
from rag.prompts import render
from rag.store import Store
from rag.types import NO_FILTERS, Article, Filters, Span, TimeWindow

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

# (stage, done, total): "matching", "reading", "embedding", "map", "combine"
Progress = Callable[[str, int, int], None]

MIN_POINTS, MAX_POINTS = 3, 10
DEFAULT_MAX_ARTICLES = 500
MAX_MAX_ARTICLES = 10_000
# An article is about the topic when it holds half the topic's (IDF-weighted) terms and is not
# semantically unrelated, or when it is close in meaning without the words. Set on BBC topics.
MIN_COVERAGE = 0.5
MIN_DENSE_WITH_TERMS = 0.15
MIN_DENSE_ALONE = 0.45
MIN_DENSE_SOME_TERMS = 0.3  # a topic listing several things ("film, music and television")
STORY_COSINE = 0.6  # article vectors this close belong to one story
SENTENCES_PER_ARTICLE = 5
POOL_MAX = 600  # candidate sentences embedded at most, whatever the number of articles
LEAD_SENTENCES = 2  # news puts the essentials first (the "lead" baseline of summarisation)
MMR_LAMBDA = 0.7
REDUNDANT = 0.85  # a sentence this close to a chosen one says the same thing
CORROBORATES = 0.75  # a sentence of another article this close supports the same point
MAX_CITATIONS = 3
MAX_PER_ARTICLE = 2
TIMELINE_MAX = 12
# LLM map-reduce budgets, in characters (about four per token).
MAP_ARTICLE_CHARS = 2_000
MAP_BATCH_CHARS = 8_000
REDUCE_NOTES_CHARS = 8_000
NOTES_PER_BATCH = 6
SUPPORT_COSINE = 0.5
SUPPORT_COVERAGE = 0.6
_MARKER = re.compile(r"\s*\[(\d+)\]")
_DANGLING = re.compile(r"^[\"“']?(?:It|Its|This|That|These|Those|They|Their|He|His|She|Her|But|And|However|"
                       r"Also|Such|The move|The firm|The company)\b")


@dataclass(frozen=True, slots=True)
class Evidence:
    """The sentence of a cited article that supports a point, verbatim (article.text[start:end])."""

    n: int
    article_id: str
    quote: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class BriefPoint:
    text: str  # ends with its [n] markers
    citations: tuple[int, ...]
    story: int  # index into Briefing.stories
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    date: date
    text: str
    citations: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Change:
    """How one story moved across the briefing's window: its first and its last dated article."""

    story: int  # index into Briefing.stories
    first: date
    last: date
    before: str  # the first article's headline
    after: str  # the last article's headline
    citations: tuple[int, int]  # their source numbers


@dataclass(frozen=True, slots=True)
class BriefSource:
    n: int
    article_id: str
    title: str
    source: str | None
    published_at: object  # datetime | None
    category: str | None
    url: str | None
    duplicates: tuple[str, ...] = ()  # ids of the merged copies of this article


@dataclass(frozen=True, slots=True)
class Story:
    title: str  # the headline of its most relevant article
    articles: int


@dataclass(frozen=True, slots=True)
class Briefing:
    topic: str
    title: str
    overview: str
    points: tuple[BriefPoint, ...]
    timeline: tuple[TimelineEntry, ...]
    sources: tuple[BriefSource, ...]
    stories: tuple[Story, ...]
    articles_matched: int
    articles_read: int
    duplicates_merged: int
    backend: str = "extractive"
    fallback_reason: str | None = None
    changes: tuple[Change, ...] = ()  # with a window: what changed across it, story by story
    as_of: datetime | None = None  # the asking date: nothing dated after it was read
    time_window: TimeWindow | None = None  # the window the topic's time words named


# -- internal records ----------------------------------------------------------------------------
@dataclass(slots=True)
class _Doc:
    article: Article
    spans: list[Span]
    relevance: float
    vector: np.ndarray
    duplicates: list[str] = field(default_factory=list)
    story: int = 0


@dataclass(frozen=True, slots=True)
class _Sentence:
    doc: int  # index into the docs
    span: Span
    text: str
    position: int  # in its article


@dataclass(slots=True)
class _Point:
    text: str  # without markers
    docs: list[int]  # cited docs, first is the main one
    evidence: dict[int, _Sentence]  # doc → supporting sentence
    story: int


@dataclass
class Briefer:
    """Briefings over the store; `llm` (a llama-index LLM) switches on map-reduce, None is offline."""

    store: Store
    embedder: Embedder
    llm: LLM | None = None
    default_max_articles: int = DEFAULT_MAX_ARTICLES
    map_batch_chars: int = MAP_BATCH_CHARS
    reduce_notes_chars: int = REDUCE_NOTES_CHARS

    def brief(self, topic: str, filters: Filters = NO_FILTERS, max_articles: int | None = None,
              progress: Progress | None = None, windowed: bool = False) -> Briefing:
        """`windowed`: the filters name a time window, and the briefing says what changed across it."""
        topic = topic.strip()
        if not topic:
            raise InvalidInput("topic must not be empty")
        max_articles = self.default_max_articles if max_articles is None else max_articles
        if not 1 <= max_articles <= MAX_MAX_ARTICLES:
            raise InvalidInput(f"max_articles must be between 1 and {MAX_MAX_ARTICLES}, got {max_articles}")
        report = progress or (lambda stage, done, total: None)

        report("matching", 0, 1)
        topic_vector = self.embedder.embed([topic])[0]
        ranked = self._matching(topic, topic_vector, filters)
        report("matching", 1, 1)
        if not ranked:
            return _empty(topic, filters)
        chosen = ranked[:max_articles]
        docs = self._read(chosen, report)
        docs, merged = _merge_duplicates(docs)
        stories = _stories(docs)
        pool, vectors = self._pool(docs, topic, report)
        points = _select(docs, pool, vectors, topic_vector, _point_count(len(docs)))
        backend, fallback = "extractive", None
        title = _title(topic, filters)
        overview = _overview(topic, docs, stories, len(chosen), merged)
        if self.llm is not None:
            try:
                llm_title, llm_overview, llm_points = self._map_reduce(topic, docs, report)
                if len(llm_points) >= MIN_POINTS:
                    points, backend = llm_points, f"llm:{_model_name(self.llm)}"
                    title = llm_title or title
                    overview = llm_overview or overview
                else:
                    fallback = f"the LLM gave {len(llm_points)} supported points; extractive points used"
            except Exception as error:  # noqa: BLE001 - an LLM failure falls back, and says why
                fallback = f"LLM briefing failed ({type(error).__name__}: {error}); extractive points used"
        return _assemble(topic, title, overview, docs, stories, points, len(ranked), len(chosen), merged,
                         backend, fallback, windowed)

    # -- matching -------------------------------------------------------------------------------
    def _matching(self, topic: str, topic_vector: np.ndarray, filters: Filters) -> list[tuple[str, float, np.ndarray]]:
        """(article id, relevance, article vector) of every article inside the filters that is about
        the topic, most relevant first."""
        rowids, article_ids, vectors = self.store.docstore.chunk_vectors_matching(filters)
        if len(rowids) == 0:
            return []
        cosines = vectors @ topic_vector
        dense: dict[str, float] = {}
        sums: dict[str, np.ndarray] = {}
        for aid, cos, vec in zip(article_ids, cosines, vectors):
            dense[aid] = max(dense.get(aid, -1.0), float(cos))
            sums[aid] = sums[aid] + vec if aid in sums else vec.copy()
        article_of = dict(zip(rowids.tolist(), article_ids))
        keywords = self.store.indexes().keywords
        # Which articles hold each topic term (title included, as BM25 indexes it), for coverage.
        terms = list(dict.fromkeys(stem(t) for t in content_terms(topic)))
        holders: dict[str, set[str]] = {}
        for term in terms:
            hits = keywords.search(term, len(keywords), rowids)
            holders[term] = {article_of[r] for r, _ in hits if r in article_of}
        n = len(dense)
        idf = {t: math.log(1 + n / (1 + len(holders[t]))) for t in terms}
        total_idf = sum(idf.values())
        bm25: dict[str, float] = {}
        for rowid, score in keywords.search(topic, len(keywords), rowids):
            aid = article_of.get(rowid)
            if aid is not None:
                bm25[aid] = max(bm25.get(aid, 0.0), score)
        top_bm25 = max(bm25.values(), default=0.0) or 1.0
        ranked = []
        for aid, cos in dense.items():
            coverage = sum(w for t, w in idf.items() if aid in holders[t]) / total_idf if total_idf else 0.0
            if ((coverage >= MIN_COVERAGE and cos >= MIN_DENSE_WITH_TERMS) or cos >= MIN_DENSE_ALONE
                    or (coverage > 0 and cos >= MIN_DENSE_SOME_TERMS)):
                relevance = 0.5 * cos + 0.3 * coverage + 0.2 * bm25.get(aid, 0.0) / top_bm25
                vec = sums[aid]
                ranked.append((aid, relevance, vec / (np.linalg.norm(vec) or 1.0)))
        ranked.sort(key=lambda item: (-item[1], item[0]))
        return ranked

    def _read(self, chosen: list[tuple[str, float, np.ndarray]], report: Progress) -> list[_Doc]:
        by_id = {aid: (rel, vec) for aid, rel, vec in chosen}
        docs = []
        ids = [aid for aid, _, _ in chosen]
        for start in range(0, len(ids), 200):
            for article, spans in self.store.docstore.articles_with_sentences(ids[start : start + 200]):
                rel, vec = by_id[article.id]
                docs.append(_Doc(article, spans, rel, vec))
            report("reading", min(start + 200, len(ids)), len(ids))
        return docs

    # -- candidate sentences --------------------------------------------------------------------
    def _pool(self, docs: list[_Doc], topic: str, report: Progress) -> tuple[list[_Sentence], np.ndarray]:
        """Candidate sentences, embedded: of each article its lead sentences and those holding the
        topic's terms (SENTENCES_PER_ARTICLE at most), then the POOL_MAX best of all by a cheap
        prior (article relevance, on topic, lead), so the embedding cost is bounded whatever the
        number of articles (embedding is nearly all of a briefing's time)."""
        topic_stems = {stem(t) for t in content_terms(topic)}
        scored: list[tuple[float, _Sentence]] = []
        for d, doc in enumerate(docs):
            title = doc.article.title.strip().lower()
            picked = 0
            for i, span in enumerate(doc.spans):
                text = doc.article.text[span.start : span.end].strip()
                n_words = len(text.split())
                if n_words < 6 or n_words > 80 or text.lower() == title:
                    continue
                on_topic = bool(topic_stems & {stem(w) for w in content_terms(text)})
                lead = picked < LEAD_SENTENCES
                if lead or on_topic:
                    prior = doc.relevance + 0.1 * on_topic + 0.1 * (picked == 0)
                    scored.append((prior, _Sentence(d, span, text, i)))
                    picked += 1
                if picked >= SENTENCES_PER_ARTICLE:
                    break
        scored.sort(key=lambda item: -item[0])
        pool = sorted((s for _, s in scored[:POOL_MAX]), key=lambda s: (s.doc, s.position))
        texts = [s.text for s in pool]
        chunks = []
        step = 64  # small enough that a long briefing shows progress often
        for start in range(0, len(texts), step):
            chunks.append(self.embedder.embed(texts[start : start + step]))
            report("embedding", min(start + step, len(texts)), len(texts))
        vectors = np.vstack(chunks) if chunks else np.zeros((0, self.embedder.dimension), dtype=np.float32)
        return pool, vectors

    # -- LLM map-reduce -------------------------------------------------------------------------
    def _map_reduce(self, topic: str, docs: list[_Doc], report: Progress) -> tuple[str, str, list[_Point]]:
        """Map: notes from batches of articles, each article under its number (its index + 1), so
        that a note's [n] names one article whatever batch it came from. Combine: merge notes
        until they fit one prompt. Reduce: title, overview and points. Then check every point."""
        batches: list[list[int]] = [[]]
        size = 0
        for d, doc in enumerate(docs):
            cost = min(len(doc.article.text), MAP_ARTICLE_CHARS) + len(doc.article.title) + 80
            if batches[-1] and size + cost > self.map_batch_chars:
                batches.append([])
                size = 0
            batches[-1].append(d)
            size += cost
        notes: list[tuple[str, list[int]]] = []
        for b, batch in enumerate(batches):
            articles = "\n\n".join(_article_block(d + 1, docs[d]) for d in batch)
            reply = self._complete("brief_map", topic=topic, articles=articles, max_points=NOTES_PER_BATCH)
            notes.extend(_parse_points(reply, {d + 1 for d in batch}))
            report("map", b + 1, len(batches))
        rounds = 0
        # Combine rounds until the notes fit one reduce prompt; stop when a round no longer shrinks them.
        while _notes_chars(notes) > self.reduce_notes_chars and len(notes) > 1 and rounds < 4:
            rounds += 1
            groups = _split_notes(notes, self.reduce_notes_chars)
            merged: list[tuple[str, list[int]]] = []
            for g, group in enumerate(groups):
                allowed = {n for _, ns in group for n in ns}
                reply = self._complete("brief_combine", topic=topic, notes=_render_notes(group),
                                       max_points=MAX_POINTS)
                merged.extend(_parse_points(reply, allowed))
                report("combine", g + 1, len(groups))
            shrunk = _notes_chars(merged) < _notes_chars(notes)
            notes = merged
            if not shrunk:
                break
        if not notes:
            return "", "", []
        allowed = {n for _, ns in notes for n in ns}
        reply = self._complete("brief_reduce", topic=topic, notes=_render_notes(notes),
                               min_points=MIN_POINTS, max_points=MAX_POINTS)
        title = _field(reply, "TITLE")
        overview = _MARKER.sub("", _field(reply, "OVERVIEW")).strip()
        points = self._checked([(text, [n - 1 for n in ns]) for text, ns in _parse_points(reply, allowed)],
                               docs)
        return title, overview, points[:MAX_POINTS]

    def _complete(self, prompt: str, **values: object) -> str:
        assert self.llm is not None
        return self.llm.complete(render(prompt, **values)).text

    def _checked(self, claims: list[tuple[str, list[int]]], docs: list[_Doc]) -> list[_Point]:
        """Keep the citations whose article holds a sentence close to the claim (in meaning or in
        words); a claim left without one is dropped, as /ask drops unsupported claims."""
        cache: dict[int, tuple[list[_Sentence], np.ndarray]] = {}

        def sentences_of(d: int) -> tuple[list[_Sentence], np.ndarray]:
            if d not in cache:
                doc = docs[d]
                sents = [_Sentence(d, s, doc.article.text[s.start : s.end], i) for i, s in enumerate(doc.spans)]
                cache[d] = (sents, self.embedder.embed([s.text for s in sents]))
            return cache[d]

        points = []
        for text, cited in claims:
            claim_vector = self.embedder.embed([text])[0]
            claim_stems = {stem(w) for w in content_terms(text)}
            kept: list[int] = []
            evidence: dict[int, _Sentence] = {}
            for d in dict.fromkeys(cited):
                sents, vectors = sentences_of(d)
                if not sents:
                    continue
                cos = vectors @ claim_vector
                best = int(np.argmax(cos))
                article_stems = {stem(w) for w in content_terms(docs[d].article.title + " " + docs[d].article.text)}
                coverage = len(claim_stems & article_stems) / max(1, len(claim_stems))
                if cos[best] >= SUPPORT_COSINE or coverage >= SUPPORT_COVERAGE:
                    kept.append(d)
                    evidence[d] = sents[best]
            if kept:
                points.append(_Point(text, kept[:MAX_CITATIONS], evidence, docs[kept[0]].story))
        return points


# -- pure steps ------------------------------------------------------------------------------------
def _merge_duplicates(docs: list[_Doc]) -> tuple[list[_Doc], int]:
    """One doc per group of copies: the earliest published (the original), then the longest; it
    keeps the group's best relevance and lists the copies' ids."""
    groups = duplicate_groups([d.article.text for d in docs])
    kept = []
    for group in groups:
        members = [docs[i] for i in group]
        members.sort(key=lambda d: (d.article.published_at is None,
                                    d.article.published_at.timestamp() if d.article.published_at else 0,
                                    -len(d.article.text), d.article.id))
        head = members[0]
        head.relevance = max(m.relevance for m in members)
        head.duplicates = [m.article.id for m in members[1:]]
        kept.append(head)
    kept.sort(key=lambda d: (-d.relevance, d.article.id))
    return kept, len(docs) - len(kept)


def _stories(docs: list[_Doc]) -> list[Story]:
    """Leader clustering in relevance order: an article joins the story whose centroid is closest,
    if within STORY_COSINE, else starts one. One pass, deterministic, O(articles × stories)."""
    centroids: list[np.ndarray] = []
    members: list[list[int]] = []
    for d, doc in enumerate(docs):
        best, best_cos = -1, STORY_COSINE
        for s, centroid in enumerate(centroids):
            cos = float(centroid @ doc.vector) / (float(np.linalg.norm(centroid)) or 1.0)
            if cos >= best_cos:
                best, best_cos = s, cos
        if best < 0:
            centroids.append(doc.vector.copy())
            members.append([d])
            doc.story = len(members) - 1
        else:
            centroids[best] = centroids[best] + doc.vector
            members[best].append(d)
            doc.story = best
    return [Story(docs[m[0]].article.title, len(m)) for m in members]


def _point_count(n_docs: int) -> int:
    """More articles, more points: 4 for one article, 8 for seven, 10 from fifteen on."""
    return max(MIN_POINTS, min(MAX_POINTS, math.ceil(2 + 2 * math.log2(1 + n_docs))))


def _select(docs: list[_Doc], pool: list[_Sentence], vectors: np.ndarray, topic_vector: np.ndarray,
            k: int) -> list[_Point]:
    """Salient sentences by MMR; each cites its article and up to two others saying the same."""
    if not pool:
        return []
    to_topic = vectors @ topic_vector
    centroid = vectors.mean(axis=0)
    centrality = vectors @ (centroid / (np.linalg.norm(centroid) or 1.0))
    lead = np.array([1.0 / (1 + s.position) for s in pool])
    relevance = np.array([docs[s.doc].relevance for s in pool])
    # A sentence that opens on a pronoun or connective leans on the one before: weak out of context.
    dangling = np.array([bool(_DANGLING.match(s.text)) for s in pool])
    salience = 0.45 * to_topic + 0.3 * centrality + 0.1 * lead + 0.15 * relevance - 0.1 * dangling
    chosen: list[int] = []
    per_doc: dict[int, int] = {}
    closest = np.full(len(pool), -1.0, dtype=np.float32)  # max similarity to a chosen sentence
    cap = MAX_PER_ARTICLE if len(docs) > 1 else k
    while len(chosen) < k:
        score = MMR_LAMBDA * salience - (1 - MMR_LAMBDA) * np.maximum(closest, 0)
        score[chosen] = -np.inf
        for i, s in enumerate(pool):
            if per_doc.get(s.doc, 0) >= cap or closest[i] >= REDUNDANT:
                score[i] = -np.inf
        best = int(np.argmax(score))
        if not np.isfinite(score[best]):
            break
        chosen.append(best)
        per_doc[pool[best].doc] = per_doc.get(pool[best].doc, 0) + 1
        closest = np.maximum(closest, vectors @ vectors[best])
    points = []
    for i in chosen:
        s = pool[i]
        cited, evidence = [s.doc], {s.doc: s}
        similar = vectors @ vectors[i]
        for j in np.argsort(-similar):
            if len(cited) >= MAX_CITATIONS or similar[j] < CORROBORATES:
                break
            other = pool[int(j)]
            if other.doc not in evidence:
                cited.append(other.doc)
                evidence[other.doc] = other
        points.append(_Point(s.text, cited, evidence, docs[s.doc].story))
    return points


def _assemble(topic: str, title: str, overview: str, docs: list[_Doc], stories: list[Story],
              points: list[_Point], matched: int, read: int, merged: int, backend: str,
              fallback: str | None, windowed: bool = False) -> Briefing:
    """Points grouped by story (stories in the order of their best point), sources numbered in
    order of first citation (points, then timeline, then changes)."""
    story_order = list(dict.fromkeys(p.story for p in points))
    timeline_docs = _timeline_days(docs)
    change_docs = _change_docs(docs) if windowed else []
    for story, _, _ in change_docs:
        if story not in story_order:
            story_order.append(story)
    ordered = sorted(points, key=lambda p: story_order.index(p.story))
    numbers: dict[int, int] = {}
    for d in ([d for p in ordered for d in p.docs] + [d for _, ds in timeline_docs for d in ds]
              + [d for _, first, last in change_docs for d in (first, last)]):
        numbers.setdefault(d, len(numbers) + 1)
    story_index = {s: i for i, s in enumerate(story_order)}
    out_points = tuple(
        BriefPoint(
            text=_with_markers(p.text, [numbers[d] for d in p.docs]),
            citations=tuple(numbers[d] for d in p.docs),
            story=story_index[p.story],
            evidence=tuple(Evidence(numbers[d], docs[d].article.id, s.text, s.span.start, s.span.end)
                           for d, s in p.evidence.items() if d in p.docs),
        )
        for p in ordered
    )
    timeline = tuple(
        TimelineEntry(day, _day_text(docs, ds), tuple(numbers[d] for d in ds)) for day, ds in timeline_docs
    )
    sources = tuple(
        BriefSource(n, docs[d].article.id, docs[d].article.title, docs[d].article.source,
                    docs[d].article.published_at, docs[d].article.category, docs[d].article.url,
                    tuple(docs[d].duplicates))
        for d, n in numbers.items()
    )
    used_stories = tuple(stories[s] for s in story_order)
    changes = tuple(
        Change(story_index[s], docs[a].article.published_at.date(), docs[b].article.published_at.date(),
               docs[a].article.title, docs[b].article.title, (numbers[a], numbers[b]))
        for s, a, b in change_docs
    )
    return Briefing(topic, title, overview, out_points, timeline, sources, used_stories, matched, read, merged,
                    backend, fallback, changes)


def _change_docs(docs: list[_Doc], most: int = 5) -> list[tuple[int, int, int]]:
    """(story, its earliest dated doc, its latest dated doc) for the `most` largest stories whose
    articles span more than one day, largest first: what each story said first and last."""
    by_story: dict[int, list[int]] = {}
    for d, doc in enumerate(docs):
        if doc.article.published_at is not None:
            by_story.setdefault(doc.story, []).append(d)
    out = []
    for story, ds in sorted(by_story.items(), key=lambda item: (-len(item[1]), item[0])):
        # Docs are in relevance order: min/max keep the most relevant of a day's articles.
        first = min(ds, key=lambda d: docs[d].article.published_at.date())
        last = max(ds, key=lambda d: docs[d].article.published_at.date())
        if docs[first].article.published_at.date() < docs[last].article.published_at.date():
            out.append((story, first, last))
        if len(out) == most:
            break
    return out


def _timeline_days(docs: list[_Doc]) -> list[tuple[date, list[int]]]:
    """The TIMELINE_MAX days with the most relevant dated articles, in date order, each with up to
    three of its articles (most relevant first)."""
    days: dict[date, list[int]] = {}
    for d, doc in enumerate(docs):  # docs are in relevance order
        if doc.article.published_at is not None:
            days.setdefault(doc.article.published_at.date(), []).append(d)
    best = sorted(days, key=lambda day: -docs[days[day][0]].relevance)[:TIMELINE_MAX]
    return [(day, days[day][:MAX_CITATIONS]) for day in sorted(best)]


def _day_text(docs: list[_Doc], ds: list[int]) -> str:
    head = docs[ds[0]].article.title
    return head if len(ds) == 1 else f"{head} (and {len(ds) - 1} more)"


def _with_markers(text: str, numbers: Sequence[int]) -> str:
    return text.rstrip() + " " + "".join(f"[{n}]" for n in numbers)


def _title(topic: str, filters: Filters) -> str:
    parts = [f"Briefing: {topic}"]
    if filters.category:
        parts.append(f"in {filters.category}")
    if filters.source:
        parts.append(f"from {filters.source}")
    if filters.since and filters.until:
        parts.append(f"{filters.since.isoformat()} to {filters.until.isoformat()}")
    elif filters.since:
        parts.append(f"since {filters.since.isoformat()}")
    elif filters.until:
        parts.append(f"until {filters.until.isoformat()}")
    return ", ".join(parts)


def _overview(topic: str, docs: list[_Doc], stories: list[Story], read: int, merged: int) -> str:
    dates = sorted(d.article.published_at.date() for d in docs if d.article.published_at)
    span = f", published {dates[0].isoformat()} to {dates[-1].isoformat()}" if dates else ""
    copies = f" ({merged} near-duplicate {'copy' if merged == 1 else 'copies'} merged)" if merged else ""
    lead = sorted(stories, key=lambda s: -s.articles)[:3]
    told = "; ".join(f"“{s.title}” ({s.articles} article{'s' if s.articles > 1 else ''})" for s in lead)
    return (f"{read} article{'s' if read != 1 else ''} on “{topic}”{span}{copies}, in {len(stories)} "
            f"stor{'ies' if len(stories) != 1 else 'y'}. Leading: {told}.")


def _empty(topic: str, filters: Filters) -> Briefing:
    where = "" if filters.empty else " inside the filters"
    return Briefing(topic, _title(topic, filters), f"No article{where} is about “{topic}”; nothing to brief.",
                    (), (), (), (), 0, 0, 0)


def _article_block(n: int, doc: _Doc) -> str:
    a = doc.article
    meta = f' date="{a.published_at.date().isoformat()}"' if a.published_at else ""
    meta += f' source="{a.source}"' if a.source else ""
    text = a.text if len(a.text) <= MAP_ARTICLE_CHARS else a.text[:MAP_ARTICLE_CHARS].rsplit(" ", 1)[0] + " …"
    # Fence the article as data; a closing tag inside it must not end the fence early.
    body = f"Title: {a.title}\n{text}".replace("</article>", "</ article>")
    return f'<article n="{n}"{meta}>\n{body}\n</article>'


def _parse_points(reply: str, allowed: set[int]) -> list[tuple[str, list[int]]]:
    """Lines `- text [n][m]` → (text without markers, cited numbers inside `allowed`); a line whose
    numbers all point nowhere is dropped (field-notes: citations that point nowhere)."""
    out = []
    for line in reply.splitlines():
        line = line.strip()
        if not re.match(r"^(?:[-*•]|\d+[.)])\s+", line):
            continue
        line = re.sub(r"^(?:[-*•]|\d+[.)])\s+", "", line)
        numbers = [int(n) for n in re.findall(r"\[(\d+)\]", line)]
        cited = list(dict.fromkeys(n for n in numbers if n in allowed))
        text = re.sub(r"\s+", " ", _MARKER.sub("", line)).strip()
        if cited and len(words(text)) >= 3:
            out.append((text, cited))
    return out


def _render_notes(notes: list[tuple[str, list[int]]]) -> str:
    return "\n".join(_with_markers(f"- {text}", ns) for text, ns in notes)


def _notes_chars(notes: list[tuple[str, list[int]]]) -> int:
    return len(_render_notes(notes))


def _split_notes(notes: list[tuple[str, list[int]]], budget: int) -> list[list[tuple[str, list[int]]]]:
    groups: list[list[tuple[str, list[int]]]] = [[]]
    size = 0
    for note in notes:
        cost = len(note[0]) + 8 * len(note[1])
        if groups[-1] and size + cost > budget:
            groups.append([])
            size = 0
        groups[-1].append(note)
        size += cost
    return groups


def _field(reply: str, name: str) -> str:
    match = re.search(rf"^\s*{name}\s*:\s*(.+)$", reply, re.MULTILINE | re.IGNORECASE)
    return match.group(1).strip() if match else ""


def _model_name(llm: LLM) -> str:
    try:
        return str(llm.metadata.model_name)
    except Exception:  # noqa: BLE001 - metadata is optional for custom LLMs
        return type(llm).__name__


def to_markdown(b: Briefing) -> str:
    """The briefing as Markdown: points under story headings, [n] markers, a timeline, sources."""
    lines = [f"# {b.title}", "", b.overview, ""]
    if b.points:
        lines.append("## Key points")
        for s, story in enumerate(b.stories):
            story_points = [p for p in b.points if p.story == s]
            if not story_points:
                continue  # a story shown only under "What changed"
            if len(b.stories) > 1:
                lines += ["", f"### {story.title}"]
            lines += [f"- {p.text}" for p in story_points]
        lines.append("")
    if b.timeline:
        lines.append("## Timeline")
        lines += [f"- **{e.date.isoformat()}**: {e.text} " + "".join(f"[{n}]" for n in e.citations)
                  for e in b.timeline]
        lines.append("")
    if b.changes:
        window = f" ({b.time_window.phrase})" if b.time_window else ""
        lines.append(f"## What changed{window}")
        lines += [f"- {b.stories[c.story].title}: **{c.first.isoformat()}** {c.before} [{c.citations[0]}] → "
                  f"**{c.last.isoformat()}** {c.after} [{c.citations[1]}]" for c in b.changes]
        lines.append("")
    if b.sources:
        lines.append("## Sources")
        for s in b.sources:
            meta = ", ".join(x for x in (s.source, s.published_at.date().isoformat() if s.published_at else None)
                             if x)
            copies = f"; also published as {', '.join(s.duplicates)}" if s.duplicates else ""
            lines.append(f"[{s.n}] {s.title} ({s.article_id}{', ' + meta if meta else ''}{copies})")
        lines.append("")
    lines.append(f"_{b.articles_read} articles read, {b.duplicates_merged} near-duplicates merged._")
    return "\n".join(lines) + "\n"


__all__ = [
    "BriefPoint",
    "BriefSource",
    "Briefer",
    "Briefing",
    "Change",
    "Evidence",
    "Story",
    "TimelineEntry",
    "to_markdown",
]
