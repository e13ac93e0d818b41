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

    # extensive=False: dates from meta tags only, never guessed from the text.
    meta = extract_metadata(root, extensive=False)
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
        published_at=declared or (parse_iso(meta.date) if meta.date else None),
    )


def strip_invisible(root: lxml.html.HtmlElement) -> None:
    """Remove in place comments, processing instructions, non-text elements and every element
    hidden by `hidden`, `aria-hidden="true"`, or a style (inline or a simple class/id rule in a
    <style> sheet) with display:none, visibility:hidden, font-size:0 or opacity:0."""
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
    """Whether CSS declarations (`display : NONE !important; ...`) hide the element."""
    for declaration in _CSS_COMMENT.sub("", style).split(";"):
        name, sep, value = declaration.partition(":")
        if not sep:
            continue
        name = "".join(name.split()).lower()
        value = "".join(value.split()).lower().removesuffix("!important")
        if (
            (name == "display" and value == "none")
            or (name == "visibility" and value in ("hidden", "collapse"))
            or (name in ("font-size", "opacity") and _is_zero(value))
        ):
            return True
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
