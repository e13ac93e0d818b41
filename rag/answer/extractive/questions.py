"""What a question asks for: its answer type (`question_type`), finer form and focus noun
(`question_form`), and everything the extractive answerer reads from it, computed once
(`QuestionInfo`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.text.terms import content_terms, key_terms, stem

KINDS = ("date", "number", "name", "place", "other")
# Finer than `question_type`, for the span scorer: "other" questions (over half of SQuAD's) ask for
# reasons, manners, or a noun phrase of a named sort, and each has its own shape of answer.
FORMS = ("date", "number", "name", "place", "why", "how", "what_noun", "other")
_AUX = ("is", "was", "are", "were", "did", "does", "do", "has", "had", "have", "can", "could", "would", "will",
        "should", "may", "might", "must")
_WHY = re.compile(r"\bwhy\b|\bfor what (?:reason|purpose)\b|\bwhat (?:was|is|were|are) the (?:reason|cause|"
                  r"purpose|motivation|goal)s?\b|\bwhat (?:caused|led to|prompted)\b", re.IGNORECASE)
_HOW = re.compile(r"^\s*(?:\w+\s+){0,3}?how\b(?! (?:many|much|long|old|far|big|large|tall|often))", re.IGNORECASE)
_WHAT_NOUN = re.compile(rf"\b(?:what|which)\s+(?!(?:{'|'.join(_AUX)})\b)([a-z][\w-]*(?:\s+of)?(?:\s+[a-z][\w-]*)?)"
                        rf"|\bname (?:a|an|one|two|the|some)\b\s*([a-z][\w-]*)?", re.IGNORECASE)
_NEGATION = re.compile(r"\b(?:not|never|n't|no|without|neither|nor|least|fail(?:ed)?)\b", re.IGNORECASE)


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
                 r"number|amount|share|price|rate|level)|how much)\b", q) or _VALUE_OF.search(q):
        return QuestionType("number")
    # "What was the average house price …?", "What is the new target …?" ask for an amount too.
    if re.search(r"^what (?:is|was|were|are|will be) the (?:\w+ ){0,2}(?:price|cost|number|rate|level|figure|"
                 r"amount|value|total|salary|fee|budget|target|majority|population|score)\b", q):
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


@dataclass(frozen=True, slots=True)
class QuestionInfo:
    text: str
    kind: str
    form: str  # one of FORMS
    focus: frozenset[str]  # stems of the noun after "what"/"which" ("what type of engines" → engin)
    terms: tuple[str, ...]  # content terms, lower-cased
    term_stems: frozenset[str]
    keys: tuple[str, ...]  # names, numbers, quoted phrases
    negated: bool


def question_form(question: str, kind: str) -> tuple[str, frozenset[str]]:
    """The question's FORMS entry and the stems of its focus noun, if it names one."""
    match = _WHAT_NOUN.search(question)
    focus = frozenset(stem(w) for w in content_terms(match.group(1) or match.group(2) or "")) if match else frozenset()
    if kind != "other":
        return kind, focus
    if _WHY.search(question):
        return "why", focus
    if _HOW.search(question):
        return "how", focus
    return ("what_noun" if focus else "other"), focus


def question_info(question: str) -> QuestionInfo:
    terms = tuple(content_terms(question))
    kind = question_type(question).kind
    form, focus = question_form(question, kind)
    return QuestionInfo(question, kind, form, focus, terms, frozenset(stem(t) for t in terms),
                        tuple(key_terms(question)), bool(_NEGATION.search(question)))
