"""Answers that say when their evidence was true, and, for "latest" questions, give the newest
value on or before the asking date with the one it replaced.

A news index holds every earlier version of a fact (a prime rate of 7-1/2 pct in March, 7-3/4 pct
from April, 9-1/4 pct in October). The extractive answerer picks the sentence most like the
question, whatever its date; here a "latest" question also asks it about each newer article among
the retrieved ones, newest first, and takes the first of those that answers about as well.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, tzinfo

from rag.types import Answer, Passage

_MARKERS = re.compile(r"\s*\[\d+\]")

# A newer article's answer replaces the best one when its answer score is at least this share of
# the best one's: a newer passage that merely mentions the subject scores far lower.
AS_GOOD = 0.3
NEWER_TRIED = 4  # newer articles asked at most


def day_text(moment: datetime, zone: tzinfo | None = None) -> str:
    """`1 April 1987`: unambiguous in every locale the newsroom reads."""
    local = moment.astimezone(zone) if zone else moment
    return f"{local.day} {local.strftime('%B %Y')}"


def latest_answer(answer: Callable[[str, list[Passage]], Answer], question: str, passages: Sequence[Passage],
                  top_k: int, zone: tzinfo | None = None) -> Answer:
    """The answer from the newest article that answers; when it differs from the best-matching
    (older) one, both, each with its date: "As of 1 April 1987: 7-3/4 pct [1]; earlier
    (31 March 1987): 7-1/2 pct [2]". The best answer is drawn from the first `top_k` passages as
    any answer is; newer articles are looked for among all of `passages`."""
    best = answer(question, list(passages[:top_k]))
    if best.abstained or not best.citations or best.citations[0].published_at is None:
        return stamped(best, zone)
    cited = best.citations[0]
    cited_day = _day(cited.published_at, zone)
    newer: dict[str, list[Passage]] = {}
    for p in passages:
        # A later day: stories of the same day are not told apart by the hour they were filed at
        # (a follow-up that mentions the fact in passing would replace the story about it).
        if p.published_at is not None and _day(p.published_at, zone) > cited_day:
            newer.setdefault(p.article_id, []).append(p)
    order = sorted(newer.values(), key=lambda ps: ps[0].published_at, reverse=True)[:NEWER_TRIED]
    for group in order:
        candidate = answer(question, group)
        if candidate.abstained or not candidate.citations:
            continue
        if candidate.citations[0].score >= AS_GOOD * cited.score:
            return _with_earlier(candidate, best, zone)
    return stamped(best, zone)


def _day(moment: datetime, zone: tzinfo | None) -> date:
    return (moment.astimezone(zone) if zone else moment).date()


def stamped(answer: Answer, zone: tzinfo | None = None) -> Answer:
    """An extractive answer (`span [1]`) with the date of its evidence: `As of 1 April 1987: span [1]`."""
    if answer.abstained or len(answer.citations) != 1 or answer.citations[0].published_at is None:
        return answer
    return replace(answer, text=f"As of {day_text(answer.citations[0].published_at, zone)}: {answer.text}")


def _with_earlier(latest: Answer, earlier: Answer, zone: tzinfo | None) -> Answer:
    new_span, old_span = _span(latest), _span(earlier)
    first = latest.citations[0]
    text = f"As of {day_text(first.published_at, zone)}: {new_span} [1]"
    if (_normal(new_span) == _normal(old_span) or earlier.citations[0].article_id == first.article_id
            or _day(earlier.citations[0].published_at, zone) == _day(first.published_at, zone)):
        return replace(latest, text=text, citations=(first,))
    old = replace(earlier.citations[0], n=2)
    text += f"; earlier ({day_text(old.published_at, zone)}): {old_span} [2]"
    return replace(latest, text=text, citations=(first, old))


def _span(answer: Answer) -> str:
    return _MARKERS.sub("", answer.text).strip()


def _normal(text: str) -> str:
    return " ".join(text.lower().split())

