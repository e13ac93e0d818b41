"""A briefing as people read it: its title and overview lines, and the whole note as Markdown."""

from __future__ import annotations

from rag.briefing.types import Briefing, Doc, Story
from rag.types import Filters


def title(topic: str, filters: Filters) -> str:
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


def overview(topic: str, docs: list[Doc], stories: list[Story], read: int, merged: int) -> str:
    span = date_range(docs)
    copies = f" ({merged} near-duplicate {'copy' if merged == 1 else 'copies'} merged)" if merged else ""
    lead = sorted(stories, key=lambda s: -s.articles)[:3]
    told = "; ".join(f"“{s.title}” ({s.articles} article{'s' if s.articles > 1 else ''})" for s in lead)
    return (f"{read} article{'s' if read != 1 else ''} on “{topic}”{span}{copies}, in {len(stories)} "
            f"stor{'ies' if len(stories) != 1 else 'y'}. Leading: {told}.")


def date_range(docs: list[Doc]) -> str:
    """When the articles were published, from the dated ones only, saying how many had no date: one
    dated article among 309 is no range."""
    dates = sorted(d.article.published_at.date() for d in docs if d.article.published_at)
    undated = len(docs) - len(dates)
    if not dates:
        return ", none of them dated" if len(docs) > 1 else ", undated"
    when = (f"published {dates[0].isoformat()}" if dates[0] == dates[-1]
            else f"published {dates[0].isoformat()} to {dates[-1].isoformat()}")
    if not undated:
        return f", {when}"
    return f", {len(dates)} of them dated ({when}), {undated} undated"


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
