"""HTML page → (title, main text).

Everything a reader cannot see is removed with lxml *before* extraction, so hidden text (a
common carrier of prompt injections: "ignore previous instructions") never reaches the index,
whatever the extractor would keep. The main text then comes from trafilatura (Barbaresi, ACL
2021 demo), which drops navigation, share bars and footers; a page it finds nothing in falls
back to the visible text of <body>.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import lxml.etree
import lxml.html

from rag.ingest.cleaning import normalize_text, one_line
from rag.ingest.dates import date_from_meta, parse_iso

# Elements whose content is never visible text.
_INVISIBLE_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "object", "embed")
# Page chrome dropped in the fallback path (trafilatura does its own, better, job of this).
_CHROME_TAGS = ("nav", "header", "footer", "aside", "form", "button", "select", "dialog")
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "details", "dialog", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5",
    "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})  # fmt: skip
_CSS_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_SIMPLE_SELECTOR = re.compile(r"([a-z][a-z0-9]*)?(?:([.#])([A-Za-z_][\w-]*))?", re.IGNORECASE)
_ZERO = re.compile(r"[+-]?0*\.?0*(?:[a-z%]+)?")


@dataclass(frozen=True, slots=True)
class HtmlPage:
    """What a page says about itself, besides its main text (all from its metadata)."""

    title: str | None
    text: str
    source: str | None = None  # og:site_name and the like
    url: str | None = None  # canonical link or og:url
    published: str | None = None  # YYYY-MM-DD from meta tags, as htmldate reads them
    canonical: str | None = None  # <link rel=canonical> as written (maybe relative: resolve it)
    author: str | None = None  # byline metadata (meta author, article:author, JSON-LD), as trafilatura reads it
    # From the page's own publication metadata (`rag.ingest.dates.date_from_meta`), else `published`
    published_at: datetime | None = None


def html_to_text(html: str) -> tuple[str | None, str]:
    """An HTML page → (its title if found, its main text, normalised)."""
    page = read_html(html)
    return page.title, page.text


def read_html(html: str) -> HtmlPage:
    """An HTML page → title, main text and metadata, with every hidden element removed first."""
    root = _parse(html)
    if root is None:
        return HtmlPage(None, "")
    declared = date_from_meta(root)  # before JSON-LD <script>s go with the invisible elements
    strip_invisible(root)
    from trafilatura import extract_metadata  # heavy import: only when HTML is read
    from trafilatura.settings import set_date_params

    # extensive=False: dates from meta tags only, never guessed from the text. htmldate refuses
    # dates before 1995 by default; news archives are older (the Reuters corpus is from 1987).
    meta = extract_metadata(root, date_config={**set_date_params(extensive=False), "min_date": "1900-01-01"},
                            extensive=False)
    title = _title(root, meta.title)
    text = normalize_text(_main_text(root) or _visible_body_text(root))
    if title:
        # Extractors often keep the <h1>; the title is stored apart from the body.
        first, _, rest = text.partition("\n")
        if one_line(first).casefold() == title.casefold():
            text = rest.strip("\n")
    return HtmlPage(
        title=title,
        text=text,
        source=one_line(meta.sitename or "") or None,
        url=(meta.url or "").strip() or None,
        published=meta.date or None,
        canonical=_canonical(root),
        author=one_line(meta.author or "") or None,
        published_at=declared or (parse_iso(meta.date) if meta.date else None),
    )


def _canonical(root: lxml.html.HtmlElement) -> str | None:
    for link in root.iter("link"):
        if "canonical" in link.get("rel", "").lower().split() and link.get("href", "").strip():
            return link.get("href").strip()
    return None


def strip_invisible(root: lxml.html.HtmlElement) -> None:
    """Remove in place comments, processing instructions, non-text elements, every element hidden
    by `hidden`, `aria-hidden="true"`, or a style (inline or a simple class/id rule in a <style>
    sheet) that hides it (see `_hides`), and the body of every closed <details>."""
    hidden_selectors = _hidden_selectors(root)
    doomed = []
    for el in root.iter():
        if (
            not isinstance(el.tag, str)  # comment or processing instruction
            or el.tag in _INVISIBLE_TAGS
            or el.get("hidden") is not None
            or el.get("aria-hidden", "").strip().lower() == "true"
            or (el.tag == "input" and el.get("type", "").strip().lower() == "hidden")
            or _hides(el.get("style", ""))
            or _matches_any(el, hidden_selectors)
        ):
            doomed.append(el)
    for el in doomed:
        _remove_keeping_tail(el)
    for el in list(root.iter("details")):
        if el.get("open") is None:
            _collapse(el)


def _collapse(details: lxml.html.HtmlElement) -> None:
    """A closed <details> shows its <summary> only; the rest stays hidden until a click."""
    summary = next((child for child in details if child.tag == "summary"), None)
    details.text = None
    for child in list(details):
        if child is not summary:
            details.remove(child)  # its tail goes with it: also inside the closed <details>
    if summary is not None:
        summary.tail = None


def _parse(html: str) -> lxml.html.HtmlElement | None:
    if not html.strip():
        return None
    # Bytes with an explicit encoding: a str with an XML encoding declaration is refused by lxml,
    # and a <meta charset> must not override the UTF-8 the file was decoded from.
    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        return lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"), parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return None


def _title(root: lxml.html.HtmlElement, from_metadata: str | None) -> str | None:
    """trafilatura's metadata title (og:title, <title> without the site name, <h1>), else the
    first <h1>, else <title>."""
    title = from_metadata
    if not title:
        for xpath in ("//h1", "//title"):
            found = root.xpath(xpath)
            if found:
                title = found[0].text_content()
                break
    title = one_line(title or "")
    return title or None


def _main_text(root: lxml.html.HtmlElement) -> str:
    from trafilatura import extract

    # trafilatura writes one paragraph per line; keep the blank-line paragraphs of .txt files.
    text = extract(root, include_comments=False, include_tables=True, output_format="txt")
    return "\n\n".join(line for line in (text or "").split("\n") if line.strip())


def _visible_body_text(root: lxml.html.HtmlElement) -> str:
    body = root.find("body")
    if body is None:
        body = root
    for el in list(body.iter(*_CHROME_TAGS)):  # a list: removing while iterating skips nodes
        if el is not body:
            _remove_keeping_tail(el)
    return "".join(_render(body))


def _render(el: lxml.html.HtmlElement) -> Iterator[str]:
    """Text content with a paragraph break around every block element."""
    block = el.tag in _BLOCK_TAGS
    if block:
        yield "\n\n"
    if el.text:
        yield el.text
    for child in el:
        if isinstance(child.tag, str):
            yield from _render(child)
        if child.tail:
            yield child.tail
    if block:
        yield "\n\n"


def _remove_keeping_tail(el: lxml.etree._Element) -> None:
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        previous = el.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


def _hides(style: str) -> bool:
    """Whether CSS declarations (`display : NONE !important; ...`) hide the element: not
    displayed or not visible; text of zero size, transparent or scaled to nothing; pushed off the
    screen (`text-indent: -9999px`, an absolute position far to the left or top); clipped to
    nothing; or in a box of zero width or height whose overflow is hidden."""
    css = {}
    for declaration in _CSS_COMMENT.sub("", style).split(";"):
        name, sep, value = declaration.partition(":")
        if sep:
            css["".join(name.split()).lower()] = " ".join(value.lower().split()).removesuffix("!important").strip()
    squeezed = {name: value.replace(" ", "") for name, value in css.items()}
    offscreen = -_OFFSCREEN_PX
    return (
        squeezed.get("display") == "none"
        or squeezed.get("visibility") in ("hidden", "collapse")
        or any(_is_zero(squeezed.get(name, "")) for name in ("font-size", "opacity"))
        or squeezed.get("color") == "transparent"
        or bool(_SCALE_ZERO.fullmatch(squeezed.get("transform", "")))
        or _px(squeezed.get("text-indent", "")) <= offscreen
        or (squeezed.get("position") in ("absolute", "fixed")
            and min(_px(squeezed.get("left", "")), _px(squeezed.get("top", ""))) <= offscreen)
        or _clipped_away(css)
        or (squeezed.get("overflow") in ("hidden", "clip")
            and any(_is_zero(squeezed.get(name, "")) for name in ("width", "height", "max-width", "max-height")))
    )


# An offset at least this far beyond the top or left edge puts text where no screen shows it
# (`-9999px` is the classic value; a hanging indent of `-2em` is ordinary typography).
_OFFSCREEN_PX = 500.0
# Rough pixels per unit, enough to tell off-screen from typography (1% of a ~1000 px box).
_PX_PER_UNIT = {"": 1.0, "px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 37.8, "mm": 3.78, "q": 0.945,
                "em": 16.0, "rem": 16.0, "ch": 8.0, "ex": 8.0, "vw": 10.0, "vh": 10.0, "%": 10.0}
_LENGTH = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))([a-z%]*)")
_SCALE_ZERO = re.compile(r"scale[xy]?\(0*\.?0*(?:,0*\.?0*)?\)")
_RECT_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")


def _px(value: str) -> float:
    """A CSS length in rough pixels; +inf when it is not one (so it never counts as off-screen)."""
    match = _LENGTH.fullmatch(value)
    if not match or match.group(2) not in _PX_PER_UNIT:
        return float("inf")
    return float(match.group(1)) * _PX_PER_UNIT[match.group(2)]


def _clipped_away(css: dict[str, str]) -> bool:
    """`clip: rect(0 0 0 0)` / `rect(1px, 1px, 1px, 1px)` (the visually-hidden pattern) or
    `clip-path: inset(50%)` and wider: nothing of the element is painted."""
    clip = css.get("clip", "")
    if clip.startswith("rect("):
        numbers = [float(n) for n in _RECT_NUMBER.findall(clip)]
        if len(numbers) == 4 and max(numbers) <= 1:
            return True
    inset = css.get("clip-path", "").replace(" ", "")
    if inset.startswith("inset(") and inset.endswith("%)"):
        try:
            return float(inset[6:-2]) >= 50
        except ValueError:
            return False
    return False


def _is_zero(value: str) -> bool:
    """`0`, `0px`, `0.0em`, `0%`, `.0`: a CSS length or number equal to zero."""
    return bool(value) and any(c.isdigit() for c in value) and bool(_ZERO.fullmatch(value))


def _hidden_selectors(
    root: lxml.html.HtmlElement,
) -> list[tuple[str | None, str | None, str | None]]:
    """Simple selectors (`tag`, `.class`, `#id`, `tag.class`) that a <style> sheet hides."""
    selectors = []
    for style in root.iter("style"):
        sheet = _CSS_COMMENT.sub("", style.text_content())
        for group, declarations in _top_level_rules(sheet):
            if not _hides(declarations):
                continue
            for selector in group.split(","):
                match = _SIMPLE_SELECTOR.fullmatch(selector.strip())
                if match and (match.group(1) or match.group(3)):
                    tag, kind, name = match.groups()
                    selectors.append((tag.lower() if tag else None, kind, name))
    return selectors


def _top_level_rules(sheet: str) -> Iterator[tuple[str, str]]:
    """(selector group, declarations) of the rules outside any @media/@supports block: those
    inside apply only to some screens, and hiding visible text would lose article content."""
    depth, start, selector = 0, 0, ""
    for i, char in enumerate(sheet):
        if char == "{":
            if depth == 0:
                selector, start = sheet[start:i], i + 1
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                body, start = sheet[start:i], i + 1
                if not selector.lstrip().startswith("@") and "{" not in body:
                    yield selector, body


def _matches_any(
    el: lxml.html.HtmlElement, selectors: list[tuple[str | None, str | None, str | None]]
) -> bool:
    if not selectors:
        return False
    classes = set(el.get("class", "").split())
    element_id = el.get("id")
    for tag, kind, name in selectors:
        if tag and el.tag != tag:
            continue
        if kind == "." and name not in classes:
            continue
        if kind == "#" and name != element_id:
            continue
        return True
    return False
