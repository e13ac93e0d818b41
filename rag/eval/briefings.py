"""`rag eval briefings`: does a briefing lead with the news? For topics whose main story was
chosen by reading (`tests/data/briefing-topics.json`), the rank of the first point that belongs to
it (its headline or its sentence matches the topic's `main` pattern). Target: among the first two."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.briefing.types import Briefing
from rag.errors import InvalidInput
from rag.service import Service

LEADS = 2  # the main story must be among the first two points


@dataclass(frozen=True, slots=True)
class TopicResult:
    topic: str
    main_story: str
    rank: int | None  # 1-based rank of the first point of the main story; None: no point of it
    points: tuple[tuple[str, str], ...]  # (headline of its first citation, point text)

    @property
    def leads(self) -> bool:
        return self.rank is not None and self.rank <= LEADS


def load_topics(path: Path) -> list[dict]:
    try:
        topics = json.loads(path.read_text(encoding="utf-8"))["topics"]
        for t in topics:
            re.compile(t["main"])
            t["topic"], t["main_story"]
    except (OSError, ValueError, KeyError, TypeError, re.error) as error:
        raise InvalidInput(f"{path}: not a briefing topics file ({error})") from None
    return topics


def evaluate(service: Service, topics: list[dict]) -> list[TopicResult]:
    out = []
    for t in topics:
        briefing = service.brief(t["topic"])
        points = _points(briefing)
        main = re.compile(t["main"], re.IGNORECASE)
        rank = next((i for i, (title, text) in enumerate(points, 1) if main.search(title) or main.search(text)),
                    None)
        out.append(TopicResult(t["topic"], t["main_story"], rank, tuple(points)))
    return out


def _points(briefing: Briefing) -> list[tuple[str, str]]:
    titles = {s.n: s.title for s in briefing.sources}
    return [(titles.get(p.citations[0], "") if p.citations else "", p.text) for p in briefing.points]


def lines(results: list[TopicResult]) -> Iterator[str]:
    for r in results:
        where = f"point {r.rank}" if r.rank else "absent"
        yield f"{'ok ' if r.leads else 'NO '} {r.topic!r}: main story ({r.main_story}) at {where}"
        for title, text in r.points[:3]:
            yield f"      [{title}] {text[:140]}"
    yield f"main story among the first {LEADS} points: {sum(r.leads for r in results)} of {len(results)}"
