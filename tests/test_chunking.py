from __future__ import annotations

import itertools

import pytest

from rag.chunking import Chunker
from rag.text.sentences import split_sentences
from rag.types import Article
from tests.support.paths import BBC


def _bbc_article(path) -> Article:
    title, body = path.read_text(encoding="utf-8").split("\n", 1)
    return Article(id=path.stem, title=title, text=body.strip())


def test_offsets_are_exact_and_sentences_whole():
    article = _bbc_article(BBC / "business" / "001.txt")
    chunks = Chunker().chunk(article)
    assert len(chunks) > 1
    sentence_starts = {s.start for s in split_sentences(article.text)}
    for chunk in chunks:
        assert article.text[chunk.start : chunk.end] == chunk.text
        assert chunk.start in sentence_starts  # chunks begin on a sentence boundary
        for span in chunk.sentences:
            assert chunk.start <= span.start < span.end <= chunk.end
    assert [c.id for c in chunks] == [f"{article.id}:{i}" for i in range(len(chunks))]


def test_consecutive_chunks_overlap_and_cover_the_text():
    article = _bbc_article(BBC / "politics" / "010.txt")
    chunks = Chunker(budget=80, overlap=30).chunk(article)
    assert len(chunks) >= 3
    assert chunks[0].start == 0
    assert chunks[-1].end == len(article.text.rstrip())
    overlapping = sum(1 for a, b in itertools.pairwise(chunks) if b.start < a.end)
    assert overlapping >= 1
    for a, b in itertools.pairwise(chunks):
        assert b.start <= a.end + 2  # no text skipped between chunks


def test_every_bbc_chunk_fits_the_model_window(embedder):
    """The real tokenizer, over a fifth of the corpus: no chunk is silently truncated."""
    chunker = Chunker()
    files = sorted(BBC.glob("*/*.txt"))[::5]
    longest = 0
    for path in files:
        for chunk in chunker.chunk(_bbc_article(path)):
            longest = max(longest, embedder.count_tokens(chunk.text))
    assert longest <= embedder.max_tokens, longest


def test_overlong_sentence_is_cut_at_words_within_budget():
    text = " ".join(f"word{i}" for i in range(3000)) + " " + "x" * 5000
    chunker = Chunker(budget=100, overlap=10)
    chunks = chunker.chunk(Article(id="long", title="t", text=text))
    assert len(chunks) > 10
    for chunk in chunks:
        assert chunker._count(chunk.text) <= 100
        assert text[chunk.start : chunk.end] == chunk.text


def test_glued_abbreviations_do_not_split_sentences():
    text = "Mr. Smith met Dr. Jones in the U.S. capital on Friday. They agreed."
    spans = split_sentences(text)
    assert [text[s.start : s.end] for s in spans] == [
        "Mr. Smith met Dr. Jones in the U.S. capital on Friday.", "They agreed."]


def test_bad_budget_is_refused_with_the_value():
    with pytest.raises(ValueError, match="overlap"):
        Chunker(budget=100, overlap=60)
