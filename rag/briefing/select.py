"""The extractive steps of a briefing, as pure functions: near-duplicates merged, articles grouped
into stories, candidate sentences, salient and non-redundant points (MMR), and the numbered result
with its timeline."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import date

import numpy as np

from rag.briefing.types import (
    Briefing,
    BriefPoint,
    BriefSource,
    Change,
    Doc,
    DocSentence,
    Evidence,
    Point,
    Progress,
    Story,
    TimelineEntry,
)
from rag.embedding import Embedder
from rag.text.dedup import duplicate_groups
from rag.text.markers import with_markers
from rag.text.terms import stems

MIN_POINTS, MAX_POINTS = 3, 10
# Article vectors this close belong to one story. 0.7 rather than 0.6: at 0.6 every Oscars article
# of the BBC corpus fell into one story, and the ceremony's result was not told apart from the
# nominations (10 BBC topics: main story among the first two points in 9, against 8).
STORY_COSINE = 0.7
SENTENCES_PER_ARTICLE = 5
POOL_MAX = 600  # candidate sentences embedded at most, whatever the number of articles
LEAD_SENTENCES = 2  # news puts the essentials first (the "lead" baseline of summarisation)
MMR_LAMBDA = 0.7
REDUNDANT = 0.85  # a sentence this close to a chosen one says the same thing
CORROBORATES = 0.75  # a sentence of another article this close supports the same point
MAX_CITATIONS = 3
MAX_PER_ARTICLE = 2
TIMELINE_MAX = 12
_DANGLING = re.compile(r"^[\"“']?(?:It|Its|This|That|These|Those|They|Their|He|His|She|Her|But|And|However|"
                       r"Also|Such|The move|The firm|The company)\b")


def candidate_pool(docs: list[Doc], topic: str, embedder: Embedder, report: Progress
                   ) -> tuple[list[DocSentence], np.ndarray]:
    """Candidate sentences, embedded: of each article its lead sentences and those holding the
    topic's terms (SENTENCES_PER_ARTICLE at most), then the POOL_MAX best of all by a cheap
    prior (article relevance, on topic, lead), so the embedding cost is bounded whatever the
    number of articles (embedding is nearly all of a briefing's time)."""
    topic_stems = stems(topic)
    scored: list[tuple[float, DocSentence]] = []
    for d, doc in enumerate(docs):
        title = doc.article.title.strip().lower()
        picked = 0
        for i, span in enumerate(doc.spans):
            text = doc.article.text[span.start : span.end].strip()
            n_words = len(text.split())
            if n_words < 6 or n_words > 80 or text.lower() == title:
                continue
            on_topic = bool(topic_stems & stems(text))
            lead = picked < LEAD_SENTENCES
            if lead or on_topic:
                prior = doc.relevance + 0.1 * on_topic + 0.1 * (picked == 0)
                scored.append((prior, DocSentence(d, span, text, i)))
                picked += 1
            if picked >= SENTENCES_PER_ARTICLE:
                break
    scored.sort(key=lambda item: -item[0])
    pool = sorted((s for _, s in scored[:POOL_MAX]), key=lambda s: (s.doc, s.position))
    texts = [s.text for s in pool]
    chunks = []
    step = 64  # small enough that a long briefing shows progress often
    for start in range(0, len(texts), step):
        chunks.append(embedder.embed(texts[start : start + step]))
        report("embedding", min(start + step, len(texts)), len(texts))
    vectors = np.vstack(chunks) if chunks else np.zeros((0, embedder.dimension), dtype=np.float32)
    return pool, vectors


def merge_duplicates(docs: list[Doc]) -> tuple[list[Doc], int]:
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


def group_stories(docs: list[Doc]) -> tuple[list[Story], list[int]]:
    """Leader clustering in relevance order: an article joins the story whose centroid is closest,
    if within STORY_COSINE, else starts one. One pass, deterministic, O(articles × stories). A
    story is titled by the headline of its most central article (closest to the centroid): the
    one that tells the story, not the one that happened to match the topic best. Returns the
    stories and, for each, that article's index."""
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
    stories, centrals = [], []
    for centroid, m in zip(centroids, members):
        central = max(m, key=lambda d: (float(docs[d].vector @ centroid), -d))
        stories.append(Story(docs[central].article.title, len(m)))
        centrals.append(central)
    return stories, centrals


def story_weights(docs: list[Doc], n_stories: int) -> list[int]:
    """How many articles tell each story, counting those that hold the whole topic (as much of it as
    any article does): "Manchester United takeover" matches every United match report, but the
    story of the takeover is the one most articles about the takeover tell."""
    best = max((d.coverage for d in docs), default=0.0)
    weights = [0] * n_stories
    for d in docs:
        weights[d.story] += d.coverage >= best - 1e-9
    return weights


def point_count(n_docs: int) -> int:
    """More articles, more points: 4 for one article, 8 for seven, 10 from fifteen on."""
    return max(MIN_POINTS, min(MAX_POINTS, math.ceil(2 + 2 * math.log2(1 + n_docs))))


def select_points(docs: list[Doc], pool: list[DocSentence], vectors: np.ndarray, topic_vector: np.ndarray,
                  k: int, stories: Sequence[Story] = (), centrals: Sequence[int] = ()) -> list[Point]:
    """Salient sentences by MMR; each cites its article and up to two others saying the same. The
    story most articles tell (the news: several outlets and follow-ups cover it) gets the first
    point: the lead of the article that tells it (its headline titles the story), whatever MMR
    would have picked first."""
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
    if stories:
        weights = story_weights(docs, len(stories))
        main = max(range(len(stories)), key=lambda s: (weights[s], -s))
        in_main = [i for i, s in enumerate(pool) if docs[s.doc].story == main]
        told = [i for i in in_main if centrals and pool[i].doc == centrals[main]]
        if told or in_main:
            first = min(told, key=lambda i: pool[i].position) if told else max(in_main, key=lambda i: salience[i])
            chosen.append(first)
            per_doc[pool[first].doc] = 1
            closest = np.maximum(closest, vectors @ vectors[first])
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
        points.append(Point(s.text, cited, evidence, docs[s.doc].story))
    return points


def assemble(topic: str, title: str, overview: str, docs: list[Doc], stories: list[Story],
              points: list[Point], matched: int, read: int, merged: int, backend: str,
              fallback: str | None, windowed: bool = False) -> Briefing:
    """Points grouped by story, the stories most articles tell first (ties: the order of their best
    point); sources numbered in order of first citation (points, then timeline, then changes); with
    `windowed`, what changed across the window, story by story."""
    first_point = list(dict.fromkeys(p.story for p in points))
    weights = story_weights(docs, len(stories))
    story_order = sorted(first_point, key=lambda s: (-weights[s], first_point.index(s)))
    timeline_docs = timeline_days(docs)
    change_docs = changes_across(docs) if windowed else []
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
            text=with_markers(p.text, [numbers[d] for d in p.docs]),
            citations=tuple(numbers[d] for d in p.docs),
            story=story_index[p.story],
            evidence=tuple(Evidence(numbers[d], docs[d].article.id, s.text, s.span.start, s.span.end)
                           for d, s in p.evidence.items() if d in p.docs),
        )
        for p in ordered
    )
    timeline = tuple(
        TimelineEntry(day, day_text(docs, ds), tuple(numbers[d] for d in ds)) for day, ds in timeline_docs
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


def changes_across(docs: list[Doc], most: int = 5) -> list[tuple[int, int, int]]:
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


def timeline_days(docs: list[Doc]) -> list[tuple[date, list[int]]]:
    """The TIMELINE_MAX days with the most relevant dated articles, in date order, each with up to
    three of its articles (most relevant first)."""
    days: dict[date, list[int]] = {}
    for d, doc in enumerate(docs):  # docs are in relevance order
        if doc.article.published_at is not None:
            days.setdefault(doc.article.published_at.date(), []).append(d)
    best = sorted(days, key=lambda day: -docs[days[day][0]].relevance)[:TIMELINE_MAX]
    return [(day, days[day][:MAX_CITATIONS]) for day in sorted(best)]


def day_text(docs: list[Doc], ds: list[int]) -> str:
    head = docs[ds[0]].article.title
    return head if len(ds) == 1 else f"{head} (and {len(ds) - 1} more)"
