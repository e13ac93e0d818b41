"""Text normalisation that every reader applies, and page-furniture removal for scraped plain text.

The furniture heuristic is in the spirit of jusText (Pomikálek, "Removing Boilerplate and
Duplicate Content from Web Corpora", 2011): classify blank-line-separated blocks by length and
sentence punctuation, then keep the densest run of prose with the context around it. Unlike
jusText it never drops a short paragraph that stands alone between prose or at the page edge,
because clean articles (all 2,225 BBC files) end with team sheets, rankings and credits.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# A prose line has this many words and ends a sentence somewhere, or is long enough regardless.
PROSE_MIN_WORDS = 8
LONG_LINE_WORDS = 20
# Interface labels ("Settings", "Select your Gender", "Accept all cookies") are this short.
UI_MAX_WORDS = 4
# Cost of one furniture line against one word of prose when choosing the main region: a
# share bar of four buttons (-20) inside an article is absorbed, a menu of six links (-30)
# cuts off a cookie banner of 23 words.
FURNITURE_LINE_COST = 5

_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*(?:\s|$)")
# Glyph bullets only: BBC writes lists of quotes and awards as " - item", which are content.
_BULLET = re.compile(r"^[•·▪◦●○■□►▶▸‣⁃✓✔➤→*]")
_MENU_SEPARATORS = re.compile(r"\s[|·•]\s.*\s[|·•]\s")
_NEWLINES = re.compile(r"\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# Zero-width space, word joiner, BOM and soft hyphen are invisible and only split words; joiners
# (U+200C/U+200D) stay because emoji and some scripts need them. The bidirectional embeddings,
# overrides and isolates (U+202A-U+202E, U+2066-U+2069) reorder what a reader sees, so that a
# cited quote can display reversed or otherwise than it reads ("Trojan Source", Boucher and
# Anderson 2021); the implicit marks (U+200E, U+200F, U+061C) only steer neutral characters and
# stay for right-to-left text.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"))
_CONTROL = dict.fromkeys(
    c for c in range(0x100) if unicodedata.category(chr(c)) == "Cc" and chr(c) not in "\n\t"
)
_SPACES = re.compile(r"[^\S\n]+")  # every Unicode space except the newline
_BLANK_RUNS = re.compile(r"\n{3,}")
# `crisis.Israel` → `crisis. Israel`, `Gaza.At` → `Gaza. At`: the word before the stop is lower
# case (2+ letters) or capitalised (4+ letters), so `U.S.Army`, `3.5`, `e.g.` and the company
# `One.Tel` are left alone; a dot after the next word (`Halo.Bungie.Org`) marks a domain name.
_GLUED = re.compile(r"(?<![\w.])((?:[a-z]{2,}|[A-Z][a-z]{3,})[.!?])([A-Z][a-z]+)(?![\w-]*\.\w)")


def normalize_text(raw: str) -> str:
    """NFC, `\\n` line ends, no control characters, single spaces, stripped lines, at most one
    blank line between paragraphs, and glued sentences repaired."""
    text = unicodedata.normalize("NFC", raw)
    text = _NEWLINES.sub("\n", text)
    text = text.translate(_CONTROL).translate(_INVISIBLE)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BLANK_RUNS.sub("\n\n", text).strip("\n")
    return repair_glued_sentences(text)


def repair_glued_sentences(text: str) -> str:
    """Put back the space that scraping removed between two sentences (`crisis.Israel`)."""
    return _GLUED.sub(r"\1 \2", text)


def one_line(text: str) -> str:
    """A title or label: normalised and on one line."""
    return " ".join(normalize_text(text).split())


def fallback_title(text: str, max_chars: int = 100) -> str:
    """A title for an article that has none: its first sentence, cut at a word boundary."""
    first = text.strip().split("\n", 1)[0]
    match = _SENTENCE_END.search(first)
    if match:
        first = first[: match.start() + 1]
    if len(first) <= max_chars:
        return first
    return first[:max_chars].rsplit(" ", 1)[0] + "…"


Kind = Literal["prose", "neutral", "furniture"]


@dataclass(frozen=True, slots=True)
class _Block:
    """A unit of the page: a blank-line paragraph, or a piece of one written line by line."""

    lines: tuple[str, ...]
    kind: Kind
    score: int
    paragraph: int  # pieces of one paragraph are joined back with single newlines


def clean_text(raw: str) -> tuple[str, str]:
    """A plain-text page → (title, body text) without page furniture.

    1. Lines: prose has 8+ words and a sentence end, or 20+ words; an interface line is a
       non-prose line of at most 4 words, a glyph bullet, a `|` menu, or a repeated line.
    2. Blocks are blank-line paragraphs; one holding 2+ prose lines is a body written line by
       line and is cut into its lines and runs of interface lines. A block (or run) of 2+ lines,
       at least half interface lines, is furniture: menus, cookie banners with their buttons,
       share bars, footers; so is a lone repeated short line.
    3. The main region is the run of blocks with the largest sum of prose words minus 5 per
       furniture line (maximum subarray), so a share bar inside an article stays and prose
       beyond a menu does not join it.
    4. Non-prose blocks next to the region join it only if they reach the page edge without
       crossing furniture (BBC layout: title, venue and date lines, team sheets at the end).
    5. The title is the region's first line if it is not prose (BBC: title, then body),
       otherwise the nearest heading-like line before the region.
    """
    text = normalize_text(raw)
    if not text:
        return "", ""
    blocks = _classify(text)
    span = _main_region(blocks)
    if span is None:
        return "", ""
    start, end = span
    region = list(blocks[start : end + 1])
    first = region[0]
    if not _is_prose(first.lines[0]) and (len(region) > 1 or len(first.lines) > 1):
        title = first.lines[0]
        region[0] = _Block(first.lines[1:], first.kind, first.score, first.paragraph)
    else:
        title = _title_before(blocks[:start])
    return title, _join(region)


def _join(blocks: Sequence[_Block]) -> str:
    parts: list[str] = []
    previous = None
    for block in blocks:
        if not block.lines:
            continue
        if parts:
            parts.append("\n" if block.paragraph == previous else "\n\n")
        parts.append("\n".join(block.lines))
        previous = block.paragraph
    return "".join(parts)


def _classify(text: str) -> list[_Block]:
    """Blocks with their kind and region score."""
    paragraphs = [tuple(p.split("\n")) for p in text.split("\n\n")]
    seen = Counter(line.casefold() for lines in paragraphs for line in lines)
    blocks = []
    for n, lines in enumerate(paragraphs):
        if sum(map(_is_prose, lines)) >= 2:
            blocks.extend(_split_lines(lines, seen, n))
        else:
            blocks.append(_block(lines, seen, n))
    return blocks


def _split_lines(lines: Sequence[str], seen: Counter[str], paragraph: int) -> list[_Block]:
    """A paragraph written line by line: each content line on its own, interface lines in runs."""
    pieces: list[list[str]] = []
    run_is_ui = False
    for line in lines:
        is_ui = _is_ui(line, seen)
        if pieces and is_ui and run_is_ui:
            pieces[-1].append(line)
        else:
            pieces.append([line])
        run_is_ui = is_ui
    return [_block(piece, seen, paragraph) for piece in pieces]


def _block(lines: Sequence[str], seen: Counter[str], paragraph: int) -> _Block:
    ui = sum(_is_ui(line, seen) for line in lines)
    lone_repeat = (
        len(lines) == 1 and len(lines[0].split()) <= UI_MAX_WORDS and seen[lines[0].casefold()] > 1
    )
    if (len(lines) > 1 and 2 * ui >= len(lines)) or lone_repeat:
        return _Block(tuple(lines), "furniture", -FURNITURE_LINE_COST * len(lines), paragraph)
    prose_words = sum(len(line.split()) for line in lines if _is_prose(line))
    return _Block(tuple(lines), "prose" if prose_words else "neutral", prose_words, paragraph)


def _main_region(blocks: Sequence[_Block]) -> tuple[int, int] | None:
    """Indexes of the first and last block of the main region (inclusive); None if all is furniture."""
    scores = [block.score for block in blocks]
    if not any(score > 0 for score in scores):
        # No prose at all (a short note): the largest furniture-free run of paragraphs.
        scores = [1 if block.kind == "neutral" else score for block, score in zip(blocks, scores)]
    if not any(score > 0 for score in scores):
        return None
    start, end = _max_subarray(scores)
    before = start
    while before > 0 and blocks[before - 1].kind == "neutral":
        before -= 1
    after = end
    while after < len(blocks) - 1 and blocks[after + 1].kind == "neutral":
        after += 1
    # Neutral paragraphs belong to the article only when nothing but the page edge lies beyond
    # them; between furniture and prose they are bylines, dates and related-story headlines.
    if before == 0:
        start = 0
    if after == len(blocks) - 1:
        end = after
    return start, end


def _max_subarray(scores: Sequence[int]) -> tuple[int, int]:
    """Start and end (inclusive) of the contiguous run with the largest sum (Kadane's algorithm,
    Bentley, "Programming Pearls", CACM 1984); the run starts and ends on a positive score."""
    best, best_span = scores[0], (0, 0)
    total, start = 0, 0
    for i, score in enumerate(scores):
        if total <= 0:
            total, start = score, i
        else:
            total += score
        if total > best:
            best, best_span = total, (start, i)
    return best_span


def _title_before(blocks: Sequence[_Block]) -> str:
    """The nearest heading-like line before the main region; headings standing as their own
    paragraph win over lines inside furniture (a title above a byline and date)."""
    for wanted in ("neutral", "furniture"):
        for block in reversed(blocks):
            if block.kind != wanted:
                continue
            for line in reversed(block.lines):
                if _is_heading(line, min_words=1 if wanted == "neutral" else UI_MAX_WORDS + 1):
                    return line
    return ""


def _is_heading(line: str, *, min_words: int) -> bool:
    words = len(line.split())
    return (
        min_words <= words <= 30
        and not line.endswith((".", ",", ":", ";"))
        and not _BULLET.match(line)
        and not _MENU_SEPARATORS.search(line)
    )


def _is_prose(line: str) -> bool:
    words = len(line.split())
    return words >= LONG_LINE_WORDS or (
        words >= PROSE_MIN_WORDS and bool(_SENTENCE_END.search(line))
    )


def _is_ui(line: str, seen: Counter[str]) -> bool:
    if _is_prose(line):
        return False
    return (
        len(line.split()) <= UI_MAX_WORDS
        or bool(_BULLET.match(line))
        or bool(_MENU_SEPARATORS.search(line))
        or seen[line.casefold()] > 1
    )
