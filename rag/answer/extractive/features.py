"""Features for the learned answerer: small pure functions from a question, the retrieved
passages and their sentence embeddings to numeric vectors, for three decisions — which sentence
answers, which span inside it, and whether to answer at all. They never see gold answers.

The feature set follows the classic pre-neural SQuAD baseline (Rajpurkar et al. 2016, §5:
lexicalised overlap, distance to question words, constituent type and length) and the
observation behind SQuAD 2.0 (Rajpurkar et al. 2018) that unanswerable questions are answerable
ones with a name, number or qualifier swapped for one the passage lacks."""

from __future__ import annotations

import bisect
import itertools
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag.answer.extractive.candidates import Sentence, candidate_spans, nearest_typed_span
from rag.answer.extractive.questions import FORMS, QuestionInfo
from rag.text.terms import (
    STOPWORDS,
    content_terms,
    idf,
    key_pattern,
    missing_keys,
    stem,
    stems,
    weighted_overlap,
)
from rag.types import Passage

# Words that introduce an example or a name of the sort asked for ("industries, such as automobiles").
_INTRODUCERS = frozenset(["such", "like", "including", "includes", "included", "namely", "called", "named",
                          "as", "known", "titled", "dubbed", "especially", "particularly", "notably"])
_CAUSES = frozenset(["to", "because", "due", "since", "so", "order", "response", "reason", "owing", "by"])
MAX_SPAN_TOKENS = 10  # 95% of SQuAD answers are at most ten words (Rajpurkar et al. 2016, fig. 2)
_TOKEN = re.compile(r"\w+(?:[-'’.,/]\w+)*|[^\w\s]")
_PREPOSITIONS = frozenset(["in", "on", "at", "by", "from", "of", "to", "for", "with", "as", "into", "during",
                           "since", "after", "before", "called", "named", "known", "than", "about"])


@lru_cache(maxsize=2048)
def _bigrams(text: str) -> frozenset[tuple[str, str]]:
    ws = [stem(w) for w in content_terms(text)]
    return frozenset(itertools.pairwise(ws))


SENTENCE_FEATURES = (
    "bias", "cosine", "cosine_gap", "cosine_rank", "overlap", "overlap_gap", "overlap_window",
    "overlap_passage", "bigrams", "passage_rank", "fused_score", "has_typed_span", "keys_in_sentence",
    "keys_in_window", "keys_in_passage", "first_in_passage", "log_words",
    "soft_overlap", "soft_overlap_gap", "soft_overlap_with_before", "soft_overlap_with_before_gap",
)


def sentence_features(question: QuestionInfo, cands: list[Sentence], cosines: np.ndarray,
                      soft: np.ndarray) -> np.ndarray:
    """One row of SENTENCE_FEATURES per candidate sentence. `soft` holds each candidate's soft
    overlap with the question, alone and read with the sentence before it
    (`rag.embedding.wordpieces.soft_overlaps`)."""
    sentence_bags = [bag(c.text) | bag(c.passage.title) for c in cands]
    windows = [window_bag(c) | bag(c.passage.title) for c in cands]
    weights = idf(question.term_stems, sentence_bags)
    overlaps = np.array([weighted_overlap(weights, b) for b in sentence_bags])
    order = np.argsort(-cosines)
    cos_rank = np.empty(len(cands))
    cos_rank[order] = np.arange(len(cands))
    q_bigrams = _bigrams(question.text)
    top_fused = max((c.passage.score for c in cands), default=1.0) or 1.0
    keys = [key_pattern(k) for k in question.keys]

    def key_share(text: str) -> float:
        lowered = text.lower()
        return sum(k.search(lowered) is not None for k in keys) / max(1, len(keys))

    passage_keys = {c.passage.chunk_id: key_share(f"{c.passage.title}\n{c.passage.text}") for c in cands}
    top_cosine, top_overlap, top_soft, top_soft_before = cosines.max(), overlaps.max(), soft[:, 0].max(), soft[:, 1].max()
    rows = []
    for i, c in enumerate(cands):
        rows.append([
            1.0, float(cosines[i]), float(cosines[i] - top_cosine), 1.0 / (1.0 + cos_rank[i]),
            overlaps[i], overlaps[i] - top_overlap, weighted_overlap(weights, windows[i]),
            weighted_overlap(weights, passage_bag(c.passage)),
            len(q_bigrams & _bigrams(c.text)) / max(1, len(q_bigrams)),
            1.0 / (1.0 + c.rank), c.passage.score / top_fused,
            float(bool(candidate_spans(c.text, question.kind))),
            key_share(c.text), key_share(c.window), passage_keys[c.passage.chunk_id],
            float(c.span.start == c.passage.sentences[0].start),
            math.log(1 + len(c.text.split())),
            soft[i, 0], soft[i, 0] - top_soft, soft[i, 1], soft[i, 1] - top_soft_before,
        ])
    return np.array(rows, dtype=np.float64).reshape(len(cands), len(SENTENCE_FEATURES))


@lru_cache(maxsize=2048)
def bag(text: str) -> frozenset[str]:
    """`stems(text)`, memoised: the same titles, passages and sentences recur across one question's
    candidates and its decision, and popular passages across questions."""
    return frozenset(stems(text))


def window_bag(c: Sentence) -> frozenset[str]:
    """`bag(c.window)`, as its sentences' bags joined: words never span the space joining them."""
    i = c.passage.sentences.index(c.span)
    return frozenset().union(*(bag(c.passage.quote(s)) for s in c.passage.sentences[max(0, i - 1): i + 2]))


def passage_bag(passage: Passage) -> frozenset[str]:
    return bag(passage.text) | bag(passage.title)


# --- spans inside a sentence ----------------------------------------------------------------------

_SPAN_BASE = (
    "typed_exact", "typed_inside", "typed_overlap", "echo_share", "echo_any", "anchor_near",
    "anchor_log_distance", "anchors_left", "anchors_right", "after_anchor", "before_anchor",
    "after_preposition", "starts_sentence", "ends_sentence", "len1", "len2", "len3", "len4_5", "len6plus",
    "capitalised_share", "has_digit", "before_comma_or_end", "in_brackets", "has_comma", "has_and",
    "lower_start", "left_bound", "right_bound", "whole_gap", "after_introducer", "focus_near",
    "focus_inside", "after_cause_word", "starts_cause_word", "new_capitalised", "clause_start", "verb_like_end", "nearest_typed",
)
SPAN_FEATURES = ("bias",) + tuple(f"{k}:{f}" for k in FORMS for f in _SPAN_BASE)


@dataclass(frozen=True, slots=True)
class SpanCandidate:
    start: int  # character offsets into the sentence
    end: int
    text: str


def _tokens(sentence: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(sentence)]


def span_candidates(question: QuestionInfo, sentence: str) -> tuple[list[SpanCandidate], np.ndarray]:
    """Every run of up to MAX_SPAN_TOKENS tokens that starts and ends on a content word (plus the
    typed regex matches), with one row of SPAN_FEATURES each. Runs made only of the question's
    own words are left out: a question does not contain its answer."""
    toks = _tokens(sentence)
    if not toks:
        return [], np.zeros((0, len(SPAN_FEATURES)))
    lower = [t[2].lower() for t in toks]
    is_word = [t[2][0].isalnum() for t in toks]
    content = [is_word[i] and (lower[i] not in STOPWORDS or lower[i].isdigit()) for i in range(len(toks))]
    anchor = [is_word[i] and lower[i] not in STOPWORDS and stem(lower[i]) in question.term_stems
              for i in range(len(toks))]
    anchors = [i for i, a in enumerate(anchor) if a]
    # Where a phrase can begin or end: punctuation, a question word, the sentence's edges. The
    # answer is often the whole stretch between two of them ("…, particularly in the Middle East.").
    stop = [not is_word[i] or anchor[i] for i in range(len(toks))]
    token_stems = [stem(w) if is_word[k] else "" for k, w in enumerate(lower)]
    typed = candidate_spans(sentence, question.kind)
    nearest = nearest_typed_span(question, sentence)
    # Token index ranges of the typed matches, to test candidates against.
    typed_tok = []
    for s, e in typed:
        idx = [i for i, t in enumerate(toks) if t[0] >= s and t[1] <= e]
        if idx:
            typed_tok.append((idx[0], idx[-1]))
    ranges: set[tuple[int, int]] = set(typed_tok)
    for i in range(len(toks)):
        if not content[i]:
            continue
        for j in range(i, min(len(toks), i + MAX_SPAN_TOKENS)):
            if content[j]:
                ranges.add((i, j))
    # Counts up to each token (prefix sums), so that each candidate's counts cost O(1).
    n = len(toks)
    words_before = _prefix(is_word)
    anchors_before = _prefix([is_word[k] and anchor[k] for k in range(n)])
    capitals_before = _prefix([is_word[k] and toks[k][2][0].isupper() for k in range(n)])
    digits_before = _prefix([is_word[k] and any(ch.isdigit() for ch in toks[k][2]) for k in range(n)])
    new_capitals_before = _prefix([k > 0 and is_word[k] and toks[k][2][0].isupper() and not anchor[k]
                                   for k in range(n)])
    commas_before = _prefix([w == "," for w in lower])
    ands_before = _prefix([w == "and" for w in lower])
    focus_before = _prefix([s in question.focus for s in token_stems])
    cands, rows = [], []
    for i, j in sorted(ranges):
        n_words = words_before[j + 1] - words_before[i]
        if not n_words:
            continue
        echoed = (anchors_before[j + 1] - anchors_before[i]) / n_words
        if echoed == 1.0:
            continue
        n_left = bisect.bisect_left(anchors, i)
        first_right = bisect.bisect_right(anchors, j)
        gaps = ([i - anchors[n_left - 1]] if n_left else []) + (
            [anchors[first_right] - j] if first_right < len(anchors) else [])
        distance = min(gaps, default=n)
        prev = lower[i - 1] if i > 0 else ""
        nxt = toks[j + 1][2] if j + 1 < n else ""
        caps = (capitals_before[j + 1] - capitals_before[i]) / n_words
        exact = float((i, j) in typed_tok)
        inside = float(any(s <= i and j <= e for s, e in typed_tok))
        overlap = float(any(not (j < s or e < i) for s, e in typed_tok))
        rows.append([
            exact, inside, overlap, echoed, float(echoed > 0), 1.0 / (1.0 + distance), math.log(1 + distance),
            min(n_left, 5) / 5, min(len(anchors) - first_right, 5) / 5, float(i > 0 and anchor[i - 1]),
            float(j + 1 < n and anchor[j + 1]), float(prev in _PREPOSITIONS), float(i == 0),
            float(j >= n - 2), float(n_words == 1), float(n_words == 2), float(n_words == 3),
            float(4 <= n_words <= 5), float(n_words >= 6), caps,
            float(digits_before[j + 1] > digits_before[i]),
            float(nxt in (",", ".", ";", ":", "") or j + 1 >= n),
            float(prev == "(" and nxt == ")"), float(commas_before[j + 1] > commas_before[i]),
            float(ands_before[j + 1] > ands_before[i]), float(toks[i][2][0].islower()),
            *_boundary_features(i, j, stop, lower, is_word, content),
            float(any(lower[k] in _INTRODUCERS for k in range(max(0, i - 2), i))),
            float(focus_before[i] > focus_before[max(0, i - 4)]),
            float(focus_before[j + 1] > focus_before[i]),
            float(i > 0 and lower[i - 1] in _CAUSES), float(lower[i] in _CAUSES),
            float(new_capitals_before[j + 1] > new_capitals_before[i]),
            float(i > 0 and lower[i - 1] in ("that", "which", "who", "where", "when", "whose")),
            float(lower[j].endswith(("ed", "ing")) and not toks[j][2][0].isupper()),
            float(nearest is not None and toks[i][0] <= nearest[0] < toks[i][1] and toks[j][0] < nearest[1] <= toks[j][1]),
        ])
        start, end = toks[i][0], toks[j][1]
        cands.append(SpanCandidate(start, end, sentence[start:end]))
    # Each question form has its own block of weights: the rest of the row stays zero.
    x = np.zeros((len(cands), len(SPAN_FEATURES)))
    x[:, 0] = 1.0
    offset = 1 + FORMS.index(question.form) * len(_SPAN_BASE)
    x[:, offset: offset + len(_SPAN_BASE)] = np.array(rows, dtype=np.float64).reshape(len(cands), len(_SPAN_BASE))
    return cands, x


def _prefix(flags: list[bool]) -> list[int]:
    """How many of `flags` are true before each index (len(flags) + 1 entries)."""
    return [0, *itertools.accumulate(map(int, flags))]


def _boundary_features(i: int, j: int, stop: list[bool], lower: list[str], is_word: list[bool],
                       content: list[bool]) -> tuple[float, float, float]:
    """Does the span start right after a phrase boundary (allowing a determiner or preposition
    between), end right before one, and so fill the whole gap between two?"""
    k = i - 1
    while k >= 0 and is_word[k] and not content[k] and not stop[k]:
        k -= 1  # "the", "of", "in" may stand between a boundary and the phrase
    left = k < 0 or stop[k]
    right = j + 1 >= len(stop) or stop[j + 1]
    return float(left), float(right), float(left and right)


# --- whether to answer -----------------------------------------------------------------------------

DECISION_FEATURES = (
    "bias", "sentence_prob", "sentence_logit", "sentence_margin", "cosine", "overlap", "overlap_window",
    "bigrams", "n_keys", "keys_missing_sentence", "keys_missing_window", "keys_missing_passage",
    "keys_missing_all", "terms_missing_all", "terms_missing_window", "span_prob", "span_logit",
    "span_typed", "negated", "fused_score_top", "dense_top", "log_question_words",
) + tuple(f"form:{k}" for k in FORMS)


def decision_features(question: QuestionInfo, cands: list[Sentence], sent_x: np.ndarray,
                      sent_logits: np.ndarray, best: int, span_logits: np.ndarray, span_x_row: np.ndarray | None
                      ) -> np.ndarray:
    """One row of DECISION_FEATURES: how well the best sentence and span fit, and what of the
    question the passages lack — the signature of SQuAD 2.0's unanswerable questions."""
    names = {n: i for i, n in enumerate(SENTENCE_FEATURES)}
    probs = np.exp(sent_logits - sent_logits.max())
    probs /= probs.sum()
    ranked = np.sort(sent_logits)[::-1]
    margin = float(ranked[0] - ranked[1]) if len(ranked) > 1 else 5.0
    chosen = cands[best]
    every = "\n".join(dict.fromkeys(f"{c.passage.title}\n{c.passage.text}" for c in cands)).lower()
    keys = question.keys
    missing_all = len(missing_keys(keys, every))
    all_stems = frozenset().union(*(passage_bag(c.passage) for c in cands))
    window_stems = window_bag(chosen) | bag(chosen.passage.title)
    n_terms = max(1, len(question.term_stems))
    if len(span_logits):
        sp = np.exp(span_logits - span_logits.max())
        span_prob = float(1.0 / sp.sum())
        span_logit = float(span_logits.max())
    else:
        span_prob, span_logit = 0.0, -5.0
    typed_cols = [i for i, n in enumerate(SPAN_FEATURES) if n.endswith(":typed_exact")]
    span_typed = float(span_x_row[typed_cols].sum()) if span_x_row is not None else 0.0
    dense = max((c.passage.scores.get("dense", 0.0) for c in cands), default=0.0)
    row = [
        1.0, float(probs[best]), float(sent_logits[best]), margin,
        sent_x[best, names["cosine"]], sent_x[best, names["overlap"]], sent_x[best, names["overlap_window"]],
        sent_x[best, names["bigrams"]], min(len(keys), 4) / 4,
        float(len(keys) and (1 - sent_x[best, names["keys_in_sentence"]])),
        float(len(keys) and (1 - sent_x[best, names["keys_in_window"]])),
        float(len(keys) and (1 - sent_x[best, names["keys_in_passage"]])),
        float(missing_all > 0), len(question.term_stems - all_stems) / n_terms,
        len(question.term_stems - window_stems) / n_terms, span_prob, span_logit, span_typed,
        float(question.negated), sent_x[best, names["fused_score"]], float(dense),
        math.log(1 + len(question.text.split())),
    ] + [float(question.form == k) for k in FORMS]
    return np.array(row, dtype=np.float64)
