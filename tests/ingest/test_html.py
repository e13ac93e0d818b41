"""rag.ingest.html: the article's visible text, and nothing hidden in the page."""

from __future__ import annotations

import pytest

from rag.ingest import html_to_text
from tests.support.ingest_samples import ARTICLE_PARAGRAPHS, SECRET, page

HIDING = {
    "hidden attribute": f"<div hidden>{SECRET}</div>",
    "aria-hidden": f'<span aria-hidden=" TRUE ">{SECRET}</span>',
    "display none": f'<div style="display:none">{SECRET}</div>',
    "display none spaced": f'<p style="color: red; DISPLAY : None !important">{SECRET}</p>',
    "visibility hidden": f'<p style="visibility: hidden">{SECRET}</p>',
    "font-size 0": f'<p style="font-size:0">{SECRET}</p>',
    "font-size 0px": f'<p style="font-size : 0.0PX;">{SECRET}</p>',
    "opacity 0": f'<p style="opacity:0">{SECRET}</p>',
    "opacity 0.0": f'<p style="opacity: .0 ">{SECRET}</p>',
    "comment": f"<!-- {SECRET} -->",
    "script": f"<script>// {SECRET}</script>",
    "style": f"<style>/* {SECRET} */</style>",
    "noscript": f"<noscript><p>{SECRET}</p></noscript>",
    "template": f"<template><p>{SECRET}</p></template>",
    "iframe": f"<iframe>{SECRET}</iframe>",
    "svg": f"<svg><text>{SECRET}</text></svg>",
    "hidden parent": f'<div style="display:none"><p>Visible? No.</p><p>{SECRET}</p></div>',
    "stylesheet class": f'<p class="note x-hide">{SECRET}</p>',
}


@pytest.mark.parametrize("hidden", HIDING.values(), ids=HIDING.keys())
def test_hidden_html_text_never_reaches_the_text(hidden: str) -> None:
    head = "<style>.x-hide { display : none }</style>"
    title, text = html_to_text(page(hidden=hidden + " tail words stay.", head=head))
    assert "ZEBRA42" not in text and "Ignore previous" not in text
    assert title == "Markets rally as bank holds rates"
    assert ARTICLE_PARAGRAPHS[0] in text and ARTICLE_PARAGRAPHS[2] in text
    # The same element in a page trafilatura finds nothing in (a comments section), so that the
    # fallback to the visible body text, which drops nothing by itself, is checked too.
    fallback = (
        f"<html><head>{head}</head><body><div class='comments'>"
        f"<p>Readers say the tram line is overdue.</p>{hidden}</div></body></html>"
    )
    assert html_to_text(fallback) == (None, "Readers say the tram line is overdue.")


def test_visible_styles_are_kept() -> None:
    visible = (
        '<p style="opacity:0.5; font-size:10px; display:block">Half-transparent text is still '
        "read by people, so the article keeps this sentence.</p>"
    )
    head = "<style>@media print { p { display: none } }</style>"
    _, text = html_to_text(page(hidden=visible, head=head))
    assert "Half-transparent text is still read by people" in text
    assert ARTICLE_PARAGRAPHS[1] in text


def test_html_fallback_to_visible_body_text() -> None:
    # trafilatura keeps nothing from a comments section; the visible body text is used instead.
    html = (
        '<html><body><div class="comments"><p>Readers say the tram line is overdue.</p>'
        f'<p style="display:none">{SECRET}</p></div></body></html>'
    )
    title, text = html_to_text(html)
    assert (title, text) == (None, "Readers say the tram line is overdue.")


def test_empty_html_gives_no_text() -> None:
    assert html_to_text("   ") == (None, "")


# --- bad input -----------------------------------------------------------------------------
