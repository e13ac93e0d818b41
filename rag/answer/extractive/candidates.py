"""Where an answer can come from: the candidate sentences of the retrieved passages (`sentences`),
and inside a sentence the spans of the type a question asks for (dates, numbers, names), with the
one nearest the question's words. Small pure functions over plain text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.answer.extractive.questions import QuestionInfo
from rag.text.terms import NAME, STOPWORDS, words
from rag.types import Passage, Span

_MONTHS = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
           r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?")
_WEEKDAYS = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
DATE = re.compile(
    rf"\b(?:\d{{1,2}}\s+{_MONTHS}(?:\s+\d{{4}})?|{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?"
    rf"|{_MONTHS}\s+\d{{4}}|(?:early |late |mid-)?(?:1[0-9]|20)\d{{2}}s?|\d{{1,2}}(?:st|nd|rd|th) century"
    rf"|{_WEEKDAYS}|(?:last|next|this) (?:week|month|year)|yesterday|today|tomorrow)\b"
)
# Wire copy writes "7-3/4 pct", "15.8 mln bpd", "100 dlrs": fractions and the agencies' units too.
NUMBER = re.compile(
    r"(?:[$£€¥]\s?)?\b\d[\d,]*(?:\.\d+)?(?:-\d/\d\d?)?(?:\s?(?:%|per ?cent|pct|bn|m|mln|million|billion|"
    r"trillion|thousand|hundred|km|miles|kg|tonnes|years?|months?|days?|hours?|minutes?|people|times|dlrs?|cts|"
    r"stg|bpd|barrels|shares|ships)(?:\s(?:dlrs?|stg|bpd|barrels|tonnes|shares|yen|marks))?)?\b%?"
    r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|\d+) in (?:every )?(?:\d+|two|three|four|five|six|"
    r"seven|eight|nine|ten|a hundred|a thousand)\b"  # "one in 10 adult Americans"
    r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|thousand|dozens?|hundreds|thousands|millions)(?:\s(?:million|billion|thousand|hundred|mln|bln)"
    r"(?:\s(?:dlrs?|shares|barrels|tonnes))?)?\b",
    re.IGNORECASE,
)
# "What did ANZ cut its prime rate to?": the figure after "to" (not the one after "from"); a rate,
# or a rise or cut, is a percentage ("275 pct", not "40,000 seamen"); a price asked ("offer per
# share", "how much did it pay") is an amount of money, per share if asked so.
_ASKS_TO = re.compile(r"\bto\s*\??\s*$", re.IGNORECASE)
_ASKS_SHARE = re.compile(r"\b(?:rates?|increase|rise|raise|cut|hike|reduction|percentage|pct|per ?cent)\b",
                         re.IGNORECASE)
_ASKS_MONEY = re.compile(r"\b(?:per (?:[\w.-]+ )?share|offer|bid|pay|paid|cost|price|worth|sell for|sold for)\b",
                         re.IGNORECASE)
_ASKS_FROM = re.compile(r"\bfrom\b|\bbefore\b|\bprevious|\bold\b", re.IGNORECASE)
_BEFORE_TO = re.compile(r"\b(?:to|at)\s+$", re.IGNORECASE)
_BEFORE_FROM = re.compile(r"\bfrom\s+$", re.IGNORECASE)
_PERCENT = re.compile(r"%|\bpct\b|\bper ?cent\b", re.IGNORECASE)
_PER_SHARE = re.compile(r"\bper (?:[\w.-]+ )?share\b|\ba share\b", re.IGNORECASE)
_PER_SHARE_AFTER = re.compile(r"[\s-]*(?:cash\s+)?(?:a|per)[\s-]+share\b", re.IGNORECASE)  # "100 dlr-per-share"
_MONEY = re.compile(r"[$£€¥]|\b(?:dlrs?|cts|stg|yen|marks|francs|pounds|dollars|euros?)\b", re.IGNORECASE)

@dataclass(frozen=True, slots=True)
class Sentence:
    """A candidate sentence: where it is, its verbatim text, and its neighbours' text."""

    passage: Passage
    span: Span
    text: str
    rank: int  # of its passage in retrieval order
    window: str  # the sentence with the one before and after it in the same passage
    before: str  # the sentence before it in the same passage ("" for the first)


def sentences(passages: list[Passage]) -> list[Sentence]:
    """Every sentence of the passages once (chunks overlap), in retrieval order."""
    seen: set[tuple[str, int]] = set()
    out: list[Sentence] = []
    for rank, passage in enumerate(passages):
        texts = [passage.quote(s) for s in passage.sentences]
        for i, span in enumerate(passage.sentences):
            key = (passage.article_id, span.start)
            if key in seen or len(texts[i].split()) < 3:
                continue
            seen.add(key)
            window = " ".join(texts[max(0, i - 1): i + 2])
            out.append(Sentence(passage, span, texts[i], rank, window, texts[i - 1] if i else ""))
    return out


def candidate_spans(sentence: str, kind: str) -> list[tuple[int, int]]:
    """Character spans in `sentence` that could answer a question of type `kind`."""
    patterns = {"date": [DATE], "number": [NUMBER], "name": [NAME], "place": [NAME]}.get(kind, [])
    spans: list[tuple[int, int]] = []
    for pattern in patterns:
        for match in pattern.finditer(sentence):
            start, end = match.span()
            text = match.group()
            if kind in ("name", "place") and start == 0 and text.split()[0].lower() in STOPWORDS:
                # A sentence-initial "The" or "In" is capitalised by position, not by name.
                first = text.split()[0]
                start += len(first)
                while start < end and sentence[start] == " ":
                    start += 1
            text = sentence[start:end].rstrip(".,;:")
            if kind == "number" and _CONVERSION.search(sentence[:start]):
                continue  # "$280bn (£155bn)": the amount in brackets restates the one before it
            if text.strip():
                spans.append((start, start + len(text)))
    return spans


# An amount, then an opening bracket: what follows converts it into another currency or unit.
_CONVERSION = re.compile(r"(?:[$£€¥]\s?\d[\d,.]*\s?(?:bn|m|million|billion|trillion)?|\d[\d,.]*\s?(?:km|miles|kg|lb|"
                         r"tonnes|metres|feet))\s?\(\s?(?:US)?$")


def nearest_typed_span(question: QuestionInfo, sentence: str) -> tuple[int, int] | None:
    """The typed candidate (`candidate_spans`) nearest the question's words in the sentence, not
    itself made of them, as character offsets: the hand-set span choice, and a feature of the
    learned one."""
    kind = question.kind
    asked = set(question.terms)
    anchors = [m.start() for m in re.finditer(r"[A-Za-z0-9]+", sentence) if m.group().lower() in asked]
    number = kind == "number"
    if number:
        # The question's words as they end, plurals too ("loan" in "reference rate for loans to 15.75
        # pct"): a figure follows the words it measures.
        ends = [m.end() for m in re.finditer(r"[A-Za-z0-9]+", sentence)
                if m.group().lower() in asked or m.group().lower().removesuffix("s") in asked]
    wants_to = number and _ASKS_TO.search(question.text) is not None
    wants_share = number and _ASKS_SHARE.search(question.text) is not None
    wants_money = number and _ASKS_MONEY.search(question.text) is not None
    old_too = _ASKS_FROM.search(question.text) is not None
    best: tuple[float, tuple[int, int]] | None = None
    for start, end in candidate_spans(sentence, kind):
        span_words = words(sentence[start:end])
        if kind in ("number", "date"):  # "how many people" → "32,070 people": units may echo
            span_words = [w for w in span_words if any(ch.isdigit() for ch in w)] or span_words
        echoed = sum(w in asked for w in span_words) / max(1, len(span_words))
        if echoed == 1:
            continue  # the question's own words are not its answer
        # Near the question's words, and not repeating them (in characters, as distance is).
        cost = min((min(abs(a - start), abs(a - end)) for a in anchors), default=0) + 100 * echoed
        if number and ends:
            cost = min(cost, min((start - e for e in ends if e <= start), default=cost))
        if wants_to and _BEFORE_TO.search(sentence[:start]):
            cost -= 60
        if number and not old_too and _BEFORE_FROM.search(sentence[:start]):
            cost += 30  # "raised it to 110 dlrs from 100 dlrs": the figure after "from" is the old one
        if wants_share and _PERCENT.search(sentence[start:end]):
            cost -= 40
        if wants_money and _MONEY.search(sentence[start:end]):
            cost -= 40
            if _PER_SHARE.search(question.text) and _PER_SHARE_AFTER.match(sentence[end:]):
                cost -= 30  # "100 dlrs a share", not the 2.2 billion dlrs the offer comes to
        if best is None or cost < best[0]:
            best = (cost, (start, end))
    return best[1] if best else None
