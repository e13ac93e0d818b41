"""Words and terms: one tokenizer of words, one stop-word list, one stemmer, key terms, and one
IDF-weighted overlap, shared by retrieval, the answerers, citation checks, briefings and chat."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Container, Iterable, Mapping, Sequence
from functools import cache, lru_cache

# English stop words: the words a question shares with any text, which matching leaves out.
# Common function words, plus words news text repeats everywhere ("said", "told", "according").
STOPWORDS = frozenset(["a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "whose", "why", "will", "with", "would", "you", "your", "yours", "yourself", "yourselves", "also", "said", "says", "say", "tell", "told", "according"])

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’.-]*[A-Za-z0-9]|[A-Za-z0-9]")
_POSSESSIVE = re.compile(r"['’]s$", re.IGNORECASE)
_QUESTION_OPENERS = frozenset(["what", "who", "whom", "whose", "when", "where", "which", "why", "how", "is", "are", "was", "were", "do", "does", "did", "can", "could", "will", "would", "should", "has", "have", "had", "in", "on", "at", "according"])
# Runs of capitalised words, allowing a few lower-case joiners inside ("Bank of England").
NAME = re.compile(
    r"\b[A-Z][\w'’.-]*[\w]?(?:\s+(?:(?:of|the|de|du|van|von|al|bin|and|for|&)\s+)?[A-Z][\w'’.-]*[\w]?)*"
)


def words(text: str) -> list[str]:
    return [w.lower().strip(".'’") for w in _WORD.findall(text)]


def content_terms(text: str) -> list[str]:
    """Lower-cased words minus stopwords, in order, without repeats."""
    seen: dict[str, None] = {}
    for w in words(text):
        if w not in STOPWORDS and (len(w) > 1 or w.isdigit()):
            seen.setdefault(w, None)
    return list(seen)


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


def key_pattern(key: str) -> re.Pattern[str]:
    """A key term (`key_terms`) where a word starts: "iii" in "charles iii", not in "viii"."""
    return re.compile(rf"(?<!\w){re.escape(key)}")


def missing_keys(keys: Iterable[str], lowered_text: str) -> list[str]:
    """The key terms (`key_terms`) that `lowered_text` lacks, accents aside: a question typed
    "Beausejour" asks about the "Beauséjour" of the text. The text is folded once for all keys."""
    folded = without_accents(lowered_text)
    return [key for key in keys if key_pattern(without_accents(key)).search(folded) is None]


def without_accents(text: str) -> str:
    """`text` without its accents: NFKD splits them off as combining marks, which are dropped.
    The marks are found among the text's distinct characters, not tested one character at a time
    in Python: news text is seldom pure ASCII ("£", curly quotes), and that took ~1 ms an answer."""
    if text.isascii():
        return text
    normalized = unicodedata.normalize("NFKD", text)
    marks = [ch for ch in set(normalized) if unicodedata.combining(ch)]
    if not marks:
        return normalized
    return re.sub("[" + "".join(map(re.escape, marks)) + "]", "", normalized)


@cache
def stemmer():
    """English Snowball (Porter2) stemmer from PyStemmer: the one that BM25 indexes with, so that
    every matcher agrees on what counts as the same word."""
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    """Porter2 stem of a lower-cased word, so that "conquered" meets "conquest"-less "conquer"."""
    return stemmer().stemWord(word)


def stems(text: str) -> set[str]:
    """The stems of the text's content terms."""
    return {stem(w) for w in content_terms(text)}


def idf(terms: Iterable[str], bags: Sequence[Container[str]]) -> dict[str, float]:
    """Each term's inverse document frequency over `bags` (the texts compared, as sets of terms):
    log(1 + n / (1 + df)), so a term every text holds says little and none is negative."""
    n = len(bags)
    return {t: idf_weight(sum(t in b for b in bags), n) for t in terms}


def idf_weight(document_frequency: int, documents: int) -> float:
    return math.log(1 + documents / (1 + document_frequency))


def weighted_overlap(weights: Mapping[str, float], bag: Container[str]) -> float:
    """The share of the terms' weight (`idf`) that `bag` holds: 1.0 when it holds them all."""
    total = sum(weights.values()) or 1.0
    return sum(w for t, w in weights.items() if t in bag) / total
