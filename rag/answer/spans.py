"""Question typing and answer-span candidates: small pure functions over plain text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.stopwords import STOPWORDS

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’.-]*[A-Za-z0-9]|[A-Za-z0-9]")

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
    r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|"
    r"hundred|thousand|dozens?|hundreds|thousands|millions)(?:\s(?:million|billion|thousand|hundred|mln|bln)"
    r"(?:\s(?:dlrs?|shares|barrels|tonnes))?)?\b",
    re.IGNORECASE,
)
# Runs of capitalised words, allowing a few lower-case joiners inside ("Bank of England").
NAME = re.compile(
    r"\b[A-Z][\w'’.-]*[\w]?(?:\s+(?:(?:of|the|de|du|van|von|al|bin|and|for)\s+)?[A-Z][\w'’.-]*[\w]?)*"
)


@dataclass(frozen=True, slots=True)
class QuestionType:
    kind: str  # "date", "number", "name", "place", "other"


# News questions about figures that change ask for a number as "what rate" does, though worded
# otherwise: "What is Citibank's prime rate?", "what was the top accepted rate of discount", "what did
# ANZ cut its prime rate to?", "what pay increase were they seeking?", "what is their offer per share?"
# (the learned span scorer otherwise picks "effective immediately" beside "7-3/4 pct").
_VALUE = r"(?:rates?|prices?|ceiling|yield|level|quota|target)"
_VALUE_OF = re.compile(
    rf"\bwhat (?:is|was|are|were|will be|has been) (?:[\w.&'’-]+ ){{0,5}}?{_VALUE}\b"
    rf"|\bwhat (?:did|has|have|had|will|does|do) .*\b{_VALUE}\b.* to\??$"
    r"|\bwhat (?:[\w-]+ )?(?:increase|rise|raise|cut|hike|reduction)\b"
    r"|\b(?:offer|bid|paid|pay|price)\w* per (?:[\w.-]+ )?share\b")


def question_type(question: str) -> QuestionType:
    q = question.lower().strip()
    if re.search(r"\b(how (?:many|much|long|old|far|big|large|tall|often)|what (?:percentage|proportion|"
                 r"number|amount|share|price|rate)|how much)\b", q) or _VALUE_OF.search(q):
        return QuestionType("number")
    if re.search(r"\b(when|what (?:year|date|day|month|time|century|decade)|which (?:year|date|day|month|"
                 r"century|decade)|since when)\b", q):
        return QuestionType("date")
    if re.search(r"\bwhere\b|\b(?:what|which) (?:country|countries|city|cities|town|region|state|place|"
                 r"continent|area)\b", q):
        return QuestionType("place")
    if re.search(r"\b(who|whom|whose|which (?:company|companies|firm|group|team|party|person|people|man|"
                 r"woman|organi[sz]ation|countries|country|nations?))\b|\bwhat (?:company|firm|team|group|"
                 r"party|organi[sz]ation|name)\b", q):
        return QuestionType("name")
    return QuestionType("other")


def words(text: str) -> list[str]:
    return [w.lower().strip(".'’") for w in _WORD.findall(text)]


def content_terms(text: str) -> list[str]:
    """Lower-cased words minus stopwords, in order, without repeats."""
    seen: dict[str, None] = {}
    for w in words(text):
        if w not in STOPWORDS and (len(w) > 1 or w.isdigit()):
            seen.setdefault(w, None)
    return list(seen)


_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
_QUESTION_OPENERS = frozenset(["what", "who", "whom", "whose", "when", "where", "which", "why", "how", "is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should", "has", "have", "had", "in", "on", "at", "according"])


def key_terms(question: str) -> list[str]:
    """Terms a passage must contain to answer: names (capitalised words past the question's first
    word), numbers and quoted phrases. SQuAD 2.0's unanswerable questions are often the answerable
    ones with such a term swapped, so a missing key term is strong evidence to abstain."""
    terms: list[str] = []
    tokens = _WORD.findall(question)
    for i, token in enumerate(tokens):
        # A possessive is the name itself: "Time Warner's profits" asks about "Time Warner".
        bare = _POSSESSIVE.sub("", token).strip(".'’")
        if i == 0 and bare.lower() in _QUESTION_OPENERS:
            continue
        if bare[:1].isupper() and bare.lower() not in STOPWORDS and bare.lower() not in _QUESTION_OPENERS or any(ch.isdigit() for ch in bare):
            terms.append(bare.lower())
    terms.extend(q.lower() for q in re.findall(r"[\"“]([^\"”]{2,60})[\"”]", question))
    return list(dict.fromkeys(terms))


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
            if text.strip():
                spans.append((start, start + len(text)))
    return spans


_ASKS_TO = re.compile(r"\bto\s*\??\s*$", re.IGNORECASE)
_ASKS_SHARE = re.compile(r"\b(?:rates?|increase|rise|raise|cut|hike|reduction|percentage|pct|per ?cent)\b",
                         re.IGNORECASE)
_BEFORE_TO = re.compile(r"\b(?:to|at)\s+$", re.IGNORECASE)
_BEFORE_FROM = re.compile(r"\bfrom\s+$", re.IGNORECASE)
_ASKS_FROM = re.compile(r"\bfrom\b|\bbefore\b|\bprevious|\bold\b", re.IGNORECASE)
_PERCENT = re.compile(r"%|\bpct\b|\bper ?cent\b", re.IGNORECASE)
# A price asked ("offer per share", "how much did it pay") is an amount of money.
_ASKS_MONEY = re.compile(r"\b(?:per (?:[\w.-]+ )?share|offer|bid|pay|paid|cost|price|worth|sell for|sold for)\b",
                         re.IGNORECASE)
_PER_SHARE = re.compile(r"\bper (?:[\w.-]+ )?share\b|\ba share\b", re.IGNORECASE)
_PER_SHARE_AFTER = re.compile(r"[\s-]*(?:cash\s+)?(?:a|per)[\s-]+share\b", re.IGNORECASE)  # "100 dlr-per-share"
_MONEY = re.compile(r"[$£€¥]|\b(?:dlrs?|cts|stg|yen|marks|francs|pounds|dollars|euros?)\b", re.IGNORECASE)


def nearest_typed_span(question: str, sentence: str) -> tuple[int, int] | None:
    """The typed candidate (`candidate_spans`) nearest the question's words in the sentence, not
    itself made of them, as character offsets: the hand-set span choice, and a feature of the
    learned one."""
    kind = question_type(question).kind
    asked = set(content_terms(question))
    anchors = [m.start() for m in re.finditer(r"[A-Za-z0-9]+", sentence) if m.group().lower() in asked]
    # "What did ANZ cut its prime rate to?": the figure after "to" (not the one after "from");
    # a rate, or a rise or cut, is a percentage ("275 pct", not "40,000 seamen").
    wants_to = kind == "number" and _ASKS_TO.search(question) is not None
    wants_share = kind == "number" and _ASKS_SHARE.search(question) is not None
    wants_money = kind == "number" and _ASKS_MONEY.search(question) is not None
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
        if wants_to and _BEFORE_TO.search(sentence[:start]):
            cost -= 60
        if kind == "number" and _BEFORE_FROM.search(sentence[:start]) and not _ASKS_FROM.search(question):
            cost += 30  # "raised it to 110 dlrs from 100 dlrs": the figure after "from" is the old one
        if wants_share and _PERCENT.search(sentence[start:end]):
            cost -= 40
        if wants_money and _MONEY.search(sentence[start:end]):
            cost -= 40
            if _PER_SHARE.search(question) and _PER_SHARE_AFTER.match(sentence[end:]):
                cost -= 30  # "100 dlrs a share", not the 2.2 billion dlrs the offer comes to
        if best is None or cost < best[0]:
            best = (cost, (start, end))
    return best[1] if best else None
