"""Briefings written by an LLM: map-reduce over every matched article, in batches that fit the
prompt, keeping the articles' [n] numbers through the combine steps (prompts `brief_map`,
`brief_combine`, `brief_reduce`); every point is then checked against the articles it cites with
the same calibrated support check that `/ask` applies to an LLM's answer (`SupportScorer`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rag.answer.citations import SupportScorer
from rag.briefing.select import MAX_CITATIONS, MAX_POINTS, MIN_POINTS
from rag.briefing.types import Doc, DocSentence, Point, Progress
from rag.prompts import render
from rag.text.markers import MARKER, markers, with_markers
from rag.text.terms import words

if TYPE_CHECKING:
    from llama_index.core.llms import LLM

# LLM map-reduce budgets, in characters (about four per token).
MAP_ARTICLE_CHARS = 2_000
MAP_BATCH_CHARS = 8_000
REDUCE_NOTES_CHARS = 8_000
NOTES_PER_BATCH = 6
_BULLET = re.compile(r"^(?:[-*•]|\d+[.)])\s+")

Note = tuple[str, list[int]]  # a note's text without markers, and the article numbers it cites


@dataclass
class MapReduce:
    """Title, overview and checked points of a briefing, written by `llm`."""

    llm: LLM
    support: SupportScorer
    map_batch_chars: int = MAP_BATCH_CHARS
    reduce_notes_chars: int = REDUCE_NOTES_CHARS

    @property
    def backend(self) -> str:
        try:
            return f"llm:{self.llm.metadata.model_name}"
        except Exception:  # noqa: BLE001 - metadata is optional for custom LLMs
            return f"llm:{type(self.llm).__name__}"

    def write(self, topic: str, docs: list[Doc], report: Progress) -> tuple[str, str, list[Point]]:
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
        notes: list[Note] = []
        for b, batch in enumerate(batches):
            articles = "\n\n".join(article_block(d + 1, docs[d]) for d in batch)
            reply = self._complete("brief_map", topic=topic, articles=articles, max_points=NOTES_PER_BATCH)
            notes.extend(parse_points(reply, {d + 1 for d in batch}))
            report("map", b + 1, len(batches))
        rounds = 0
        # Combine rounds until the notes fit one reduce prompt; stop when a round no longer shrinks them.
        while _notes_chars(notes) > self.reduce_notes_chars and len(notes) > 1 and rounds < 4:
            rounds += 1
            groups = _split_notes(notes, self.reduce_notes_chars)
            merged: list[Note] = []
            for g, group in enumerate(groups):
                allowed = {n for _, ns in group for n in ns}
                reply = self._complete("brief_combine", topic=topic, notes=_render_notes(group),
                                       max_points=MAX_POINTS)
                merged.extend(parse_points(reply, allowed))
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
        overview = MARKER.sub("", _field(reply, "OVERVIEW")).strip()
        points = self.checked([(text, [n - 1 for n in ns]) for text, ns in parse_points(reply, allowed)], docs)
        return title, overview, points[:MAX_POINTS]

    def checked(self, claims: list[tuple[str, list[int]]], docs: list[Doc]) -> list[Point]:
        """Keep the citations whose article supports the claim by the calibrated support score (the
        best cosine to one of its sentences mixed with the share of the claim's words it holds, as
        for `/ask`), each with its best-supporting sentence; a claim left without one is dropped,
        as `/ask` drops unsupported claims."""
        points = []
        for text, cited in claims:
            cited = [d for d in dict.fromkeys(cited) if docs[d].spans]
            sentences = {d: [DocSentence(d, s, docs[d].article.text[s.start : s.end], i)
                             for i, s in enumerate(docs[d].spans)] for d in cited}
            supports = self.support.score([(text, [s.text for s in sentences[d]]) for d in cited])
            kept: list[int] = []
            evidence: dict[int, DocSentence] = {}
            for d, support in zip(cited, supports):
                if support.score >= self.support.threshold:
                    best = max(range(len(support.per_sentence)), key=support.per_sentence.__getitem__)
                    kept.append(d)
                    evidence[d] = sentences[d][best]
            if kept:
                points.append(Point(text, kept[:MAX_CITATIONS], evidence, docs[kept[0]].story))
        return points

    def _complete(self, prompt: str, **values: object) -> str:
        return self.llm.complete(render(prompt, **values)).text


def article_block(n: int, doc: Doc) -> str:
    a = doc.article
    meta = f' date="{a.published_at.date().isoformat()}"' if a.published_at else ""
    meta += f' source="{a.source}"' if a.source else ""
    text = a.text if len(a.text) <= MAP_ARTICLE_CHARS else a.text[:MAP_ARTICLE_CHARS].rsplit(" ", 1)[0] + " …"
    # Fence the article as data; a closing tag inside it must not end the fence early.
    body = f"Title: {a.title}\n{text}".replace("</article>", "</ article>")
    return f'<article n="{n}"{meta}>\n{body}\n</article>'


def parse_points(reply: str, allowed: set[int]) -> list[Note]:
    """Lines `- text [n][m]` → (text without markers, cited numbers inside `allowed`); a line whose
    numbers all point nowhere is dropped (field-notes: citations that point nowhere)."""
    out = []
    for line in reply.splitlines():
        line = line.strip()
        if not _BULLET.match(line):
            continue
        line = _BULLET.sub("", line)
        cited = list(dict.fromkeys(n for n in markers(line) if n in allowed))
        text = re.sub(r"\s+", " ", MARKER.sub("", line)).strip()
        if cited and len(words(text)) >= 3:
            out.append((text, cited))
    return out


def _render_notes(notes: list[Note]) -> str:
    return "\n".join(with_markers(f"- {text}", ns) for text, ns in notes)


def _notes_chars(notes: list[Note]) -> int:
    return len(_render_notes(notes))


def _split_notes(notes: list[Note], budget: int) -> list[list[Note]]:
    groups: list[list[Note]] = [[]]
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
